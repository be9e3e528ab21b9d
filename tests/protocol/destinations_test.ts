/**
 * One destination rule per place (src/protocol's `DEST` and `slotError`),
 * and the three front ends that apply it: the broker's parser (TCP and
 * WebSocket), the gRPC front end's request checks and the client's
 * encoders. Each case feeds the same destination to every front end that
 * has the place and expects the same code and the same words.
 */
import assert from "node:assert/strict";
import { DEST, type Frame, Parser, slotError } from "../../src/protocol/mod.ts";
import { bindLine, declareLine, declareQueueLine } from "../../src/client/admin_lines.ts";
import { OutBuf } from "../../src/client/outbound.ts";
import { encodePub } from "../../src/client/pub_frame.ts";
import { checkSubscribe } from "../../src/client/sub_lines.ts";
import {
  checkPublish,
  type SubscribeOpen,
  toDeclare,
  toSubscribe,
} from "../../src/grpc/validate.ts";
import { PublishView } from "../../src/grpc/publish_codec.ts";

Deno.test("slotError: the name grammar first, then the kind the place takes", () => {
  const cases: [string, keyof typeof DEST, string | undefined][] = [
    ["queue:a", "PUBLISH", undefined],
    ["topic:a.*", "PUBLISH", "wildcards are only allowed in topic subscriptions"],
    ["topic:a.*", "SUBSCRIBE", undefined],
    ["queue:a.*", "SUBSCRIBE", "wildcards are only allowed in topic subscriptions"],
    ["nowhere", "REPLY_TO", 'reply_to: destination "nowhere" must start with "queue:" or "topic:"'],
    ["queue:a", "DECLARE", undefined],
    ["topic:a", "DECLARE", undefined],
    ["queue:a", "DECLARE_TOPIC", "declare takes a topic, not queue:a"],
    ["topic:a", "DECLARE_QUEUE", "declareQueue takes a queue, not topic:a"],
    ["topic:a.>", "BIND_PATTERN", undefined],
    ["queue:a", "BIND_PATTERN", "a binding takes a topic pattern first, not queue:a"],
    ["topic:a", "BIND_QUEUE", "a binding feeds a queue, not topic:a"],
    ["queue:a.*", "BIND_QUEUE", "wildcards are only allowed in topic subscriptions"],
    ["topic:dead", "DLQ", "dlq takes a queue, not topic:dead"],
    ["queue:a..b", "DLQ", 'dlq: destination "queue:a..b" has an empty token'],
  ];
  for (const [dest, slot, why] of cases) {
    assert.equal(slotError(dest, DEST[slot]), why, `${slot} ${dest}`);
  }
});

/** The parser's answer to one line: its ERR frame's code and text. */
function parserRefusal(line: string): [string, string] {
  const out: Frame[] = [];
  new Parser({}).push(new TextEncoder().encode(line), out);
  const f = out[0];
  assert.ok(f?.op === "ERR", `${JSON.stringify(line)} gave ${JSON.stringify(f)}`);
  return [f.code, f.message];
}

/**
 * The code and text a check throws: a gRPC `GrpcRefusal`'s message is the
 * text, a client `BrokerReplyError`'s is `CODE: text`, as the ERR line reads.
 */
function refusal(check: () => unknown): [string, string] {
  try {
    check();
  } catch (e) {
    const err = e as { code: string; message: string };
    const prefix = `${err.code}: `;
    return [
      err.code,
      err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message,
    ];
  }
  assert.fail("no refusal");
}

function view(destination: string, replyTo = ""): PublishView {
  const v = new PublishView();
  v.destination = destination;
  v.replyTo = replyTo;
  return v;
}

function open(destination: string): SubscribeOpen {
  return {
    destination,
    prefetch: 0,
    ack: "ACK_MODE_DEFAULT",
    ack_timeout_ms: 0,
    durable: "",
    start: null,
    filter: "",
  };
}

const body = new Uint8Array(2);
const pub = (dest: string, replyTo?: string) => () =>
  encodePub(new OutBuf(), dest, body, replyTo === undefined ? undefined : { replyTo }, 1 << 20);

Deno.test("the parser, the gRPC front end and the client refuse a destination alike", () => {
  const cases: { name: string; refusals: (() => [string, string])[] }[] = [
    {
      name: "a publish to a pattern",
      refusals: [
        () => parserRefusal("PUB topic:a.* 2\r\nhi\r\n"),
        () => refusal(() => checkPublish(view("topic:a.*"), 1 << 20)),
        () => refusal(pub("topic:a.*")),
      ],
    },
    {
      name: "a reply_to that is no destination",
      refusals: [
        () => parserRefusal("PUB queue:a reply_to:nowhere 2\r\nhi\r\n"),
        () => refusal(() => checkPublish(view("queue:a", "nowhere"), 1 << 20)),
        () => refusal(pub("queue:a", "nowhere")),
      ],
    },
    {
      name: "a subscription to a queue pattern",
      refusals: [
        () => parserRefusal("SUB queue:a.*\r\n"),
        () => refusal(() => toSubscribe(open("queue:a.*"), "s")),
        () => refusal(() => checkSubscribe("queue:a.*", {})),
      ],
    },
    {
      name: "a binding from a queue",
      refusals: [
        () => parserRefusal("BIND queue:a queue:b\r\n"),
        () => refusal(() => bindLine("queue:a", "queue:b")),
      ],
    },
    {
      name: "a binding into a topic",
      refusals: [
        () => parserRefusal("UNBIND topic:a topic:b\r\n"),
        () => refusal(() => bindLine("topic:a", "topic:b", {}, true)),
      ],
    },
    {
      name: "a dead-letter topic",
      refusals: [
        () => parserRefusal("DECLARE queue:q dlq:topic:dead\r\n"),
        () => refusal(() => declareQueueLine("queue:q", { dlq: "topic:dead" })),
      ],
    },
    {
      name: "a topic's retention on a queue",
      refusals: [
        () =>
          refusal(() =>
            toDeclare({
              destination: "queue:q",
              retain_messages: 5,
              retain_bytes: 0,
              retain_age_ms: 0,
            })
          ),
        () => refusal(() => declareLine("queue:q", { retainMessages: 5 })),
      ],
    },
  ];
  for (const c of cases) {
    const [first, ...rest] = c.refusals.map((r) => r());
    assert.equal(first[0], "BAD_DESTINATION", c.name);
    for (const r of rest) assert.deepEqual(r, first, c.name);
  }
});
