/**
 * The drivers' parsers against frames cut at every byte and at random
 * places, plus the answers they produce (ACKs, BRPOPs, replies). No server
 * needed: `deno test bench/`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Batcher, payload, seqAt, stampAt } from "../payload.ts";
import { concat, latin1 } from "./bytes.ts";
import { drivers, type Events, type Kind, Mode, type Protocol } from "./mod.ts";
import { PULL_BATCH } from "./natsjs.ts";

const PROTOCOLS: Protocol[] = ["relayr", "nats", "redis"];

/** Records what a parser reports. */
class Record implements Events {
  seqs: number[] = [];
  sizes: number[] = [];
  correlations: number[] = [];
  stamps: number[] = [];
  pongs = 0;
  errors: string[] = [];
  msg(buf: Uint8Array, start: number, size: number, correlation: number): void {
    this.seqs.push(seqAt(buf, start));
    this.sizes.push(size);
    this.correlations.push(correlation);
    if (seqAt(buf, start) === 0) this.stamps.push(stampAt(buf, start));
  }
  pong(): void {
    this.pongs++;
  }
  error(text: string): void {
    this.errors.push(text);
  }
}

/** Feeds `bytes` cut at `cuts`, carrying partial frames over as the wire does. */
function feedCut(
  protocol: Protocol,
  mode: Mode,
  bytes: Uint8Array,
  cuts: number[],
  ackUpto = false,
) {
  const events = new Record();
  const parser = drivers[protocol].parser(events, mode, "t1", 0, ackUpto);
  const out: Uint8Array[] = [];
  let buf: Uint8Array = new Uint8Array(0);
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    buf = concat(buf, bytes.subarray(from, to));
    from = to;
    const used = parser.feed(buf, 0, buf.length);
    buf = buf.slice(used);
    const o = parser.takeOutput();
    if (o) out.push(o);
  }
  assert.deepEqual(buf.length, 0, "bytes left over");
  return { events, parser, out: latin1(concat(...out), 0, concat(...out).length) };
}

function deliveries(protocol: Protocol, kind: Kind, size: number, count: number): Uint8Array {
  const b = new Batcher(drivers[protocol].deliveryFrame(kind, "t1", size), size, 1 << 20);
  return b.next(0, count, 1000, 1234.5).slice();
}

for (const protocol of PROTOCOLS) {
  Deno.test(`${protocol}: deliveries cut at every byte`, () => {
    const bytes = deliveries(protocol, "topic", 16, 3);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { events } = feedCut(protocol, Mode.plain, bytes, [cut]);
      assert.deepEqual(events.seqs, [0, 1, 2], `cut at ${cut}`);
      assert.deepEqual(events.sizes, [16, 16, 16]);
      assert.deepEqual(events.stamps, [1234.5]);
      assert.deepEqual(events.errors, []);
    }
  });

  Deno.test(`${protocol}: 4 KiB deliveries cut at random places`, () => {
    const bytes = deliveries(protocol, "topic", 4096, 50);
    for (let round = 0; round < 20; round++) {
      const cuts = Array.from({ length: 30 }, () => Math.floor(Math.random() * bytes.length));
      const { events } = feedCut(protocol, Mode.plain, bytes, cuts.sort((a, b) => a - b));
      assert.deepEqual(events.seqs, Array.from({ length: 50 }, (_, i) => i));
    }
  });

  Deno.test(`${protocol}: PONG and errors`, () => {
    const text = protocol === "redis"
      ? "+PONG\r\n-ERR wrong\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n:1\r\n"
      : protocol === "nats"
      ? "INFO {}\r\nPONG\r\n-ERR 'wrong'\r\n+OK\r\n"
      : "PONG\r\nERR BAD_ARGUMENT wrong\r\nOK\r\n";
    const bytes = new TextEncoder().encode(text);
    const { events, parser } = feedCut(protocol, Mode.plain, bytes, []);
    assert.deepEqual(events.pongs, protocol === "redis" ? 2 : 1);
    assert.deepEqual(events.errors.length, 1);
    assert.deepEqual(parser.replies, 1);
  });
}

Deno.test("relayr: server PING gets a PONG", () => {
  const bytes = new TextEncoder().encode("PING\r\n");
  assert.deepEqual(feedCut("relayr", Mode.plain, bytes, []).out, "PONG\r\n");
});

Deno.test("relayr: consume ACKs every msg_id, within the line limits", () => {
  const frames: string[] = [];
  for (let i = 0; i < 100; i++) {
    frames.push(`MSG queue:bench.t1 sub_id:c0 msg_id:${1830000000000000 + i} 16\r\n`);
    frames.push(`${latin1(payload(16, i), 0, 16)}\r\n`);
  }
  const bytes = new TextEncoder().encode(frames.join(""));
  const { events, out } = feedCut("relayr", Mode.consume, bytes, [1000, 2000]);
  assert.deepEqual(events.seqs.length, 100);
  const lines = out.split("\r\n").filter((l) => l !== "");
  const ids = lines.flatMap((l) => l.split(" ").slice(1));
  assert.deepEqual(ids, Array.from({ length: 100 }, (_, i) => `msg_id:${1830000000000000 + i}`));
  for (const l of lines) {
    assert.ok(l.startsWith("ACK msg_id:"));
    assert.ok(l.length <= 4096);
    assert.ok(l.split(" ").length - 1 <= 256);
  }
});

Deno.test("relayr: consume finds msg_id after other destinations, sub_ids and options", () => {
  const lines = [
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000000 16",
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000001 delivery:2 16", // an option after it
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000002 16",
    "MSG queue:bench.longer.name sub_id:c12 msg_id:7 16", // elsewhere in the line
    "MSG queue:bench.longer.name sub_id:c12 msg_id:8 priority:3 delivery:3 16",
    "MSG queue:q sub_id:c0 msg_id:1830000000000003 16",
  ];
  const frames = lines.map((l, i) => `${l}\r\n${latin1(payload(16, i), 0, 16)}\r\n`);
  const bytes = new TextEncoder().encode(frames.join(""));
  const { events, out } = feedCut("relayr", Mode.consume, bytes, [100, 230]);
  assert.deepEqual(events.errors, []);
  const ids = out.split("\r\n").filter((l) => l !== "").flatMap((l) => l.split(" ").slice(1));
  assert.deepEqual(ids, [
    "msg_id:1830000000000000",
    "msg_id:1830000000000001",
    "msg_id:1830000000000002",
    "msg_id:7",
    "msg_id:8",
    "msg_id:1830000000000003",
  ]);
});

Deno.test("relayr: consume reads every line alike, cut at every byte (its fast path and the general one)", () => {
  const lines = [
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000000 16",
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000001 16",
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000002 delivery:2 16", // an option after it
    "MSG queue:bench.t2 sub_id:c0 msg_id:1830000000000003 16", // the token at the same place
    "MSG queue:bench.t1 sub_id:c0 msg_id:18 16", // a shorter id
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000005 1", // a payload of 1 byte: no seq
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000006 16",
    "MSG queue:bench.t1x sub_id:c0 msg_id:1830000000000007 16", // the token one byte later
    "MSG queue:bench.t1 sub_id:c0 msg_id:1830000000000008 16",
  ];
  const frames = lines.map((l) => {
    const size = Number(l.slice(l.lastIndexOf(" ") + 1));
    return `${l}\r\n${latin1(payload(16, 0), 0, size)}\r\n`;
  });
  const bytes = new TextEncoder().encode(frames.join(""));
  const want = lines.map((l) => l.split(" ")[3]);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const { events, out } = feedCut("relayr", Mode.consume, bytes, [cut]);
    assert.deepEqual(events.errors, [], `cut at ${cut}`);
    assert.deepEqual(events.sizes, lines.map((l) => Number(l.slice(l.lastIndexOf(" ") + 1))));
    const acks = out.split("\r\n").filter((l) => l !== "");
    assert.ok(acks.every((l) => l.startsWith("ACK msg_id:")), `cut at ${cut}: ${out}`);
    assert.deepEqual(acks.flatMap((l) => l.split(" ").slice(1)), want, `cut at ${cut}`);
  }
});

Deno.test("nats: consumer lines of other subjects, sids and reply subjects, cut at every byte", () => {
  const lines = [
    "MSG bench.t1 1 16",
    "MSG bench.t1 1 16",
    "MSG bench.t2 1 16", // the size at the same place
    "MSG bench.t1 12 16", // one byte later
    "MSG bench.t1 1 _INBOX.x 16", // a reply subject
    "MSG bench.t1 1 1",
    "MSG bench.t1 1 16",
  ];
  const frames = lines.map((l) => {
    const size = Number(l.slice(l.lastIndexOf(" ") + 1));
    return `${l}\r\n${latin1(payload(16, 7), 0, size)}\r\n`;
  });
  const bytes = new TextEncoder().encode(frames.join(""));
  for (let cut = 0; cut <= bytes.length; cut++) {
    const { events } = feedCut("nats", Mode.consume, bytes, [cut]);
    assert.deepEqual(events.errors, [], `cut at ${cut}`);
    assert.deepEqual(events.sizes, lines.map((l) => Number(l.slice(l.lastIndexOf(" ") + 1))));
  }
});

Deno.test("relayr: consume with --ack upto sends one cumulative ACK per read, for its last MSG", () => {
  const frames: string[] = [];
  for (let i = 0; i < 100; i++) {
    const opt = i === 99 ? " priority:3" : ""; // the last one has an option after msg_id
    frames.push(`MSG queue:bench.t1 sub_id:c0 msg_id:${1830000000000000 + i}${opt} 16\r\n`);
    frames.push(`${latin1(payload(16, i), 0, 16)}\r\n`);
  }
  const bytes = new TextEncoder().encode(frames.join(""));
  const cut = frames.slice(0, 2 * 40).join("").length + 10; // 40 whole MSGs, then part of one
  const { events, out } = feedCut("relayr", Mode.consume, bytes, [cut], true);
  assert.deepEqual(events.seqs.length, 100);
  assert.deepEqual(events.errors, []);
  assert.deepEqual(
    out,
    "ACK sub_id:c0 upto:1830000000000039\r\nACK sub_id:c0 upto:1830000000000099\r\n",
  );
});

Deno.test("relayr: responder answers to reply_to with the correlation id", () => {
  const body = payload(16, 7);
  const msg = concat(
    "MSG topic:bench.t1.rpc sub_id:rpc msg_id:1 correlation_id:7 reply_to:topic:bench.t1.inbox 16\r\n",
    body,
    "\r\n",
  );
  const { out, events } = feedCut("relayr", Mode.respond, msg, [20]);
  assert.deepEqual(events.correlations, [7]);
  assert.deepEqual(
    out,
    `PUB topic:bench.t1.inbox correlation_id:7 16\r\n${latin1(body, 0, 16)}\r\n`,
  );
  const reply = new TextEncoder().encode(out.replace("PUB", "MSG"));
  assert.deepEqual(feedCut("relayr", Mode.request, reply, []).events.correlations, [7]);
});

Deno.test("nats: responder publishes to the reply subject", () => {
  const body = payload(16, 3);
  const msg = concat("MSG bench.rpc.t1 1 _INBOX.x 16\r\n", body, "\r\n");
  const { out } = feedCut("nats", Mode.respond, msg, [5]);
  assert.deepEqual(out, `PUB _INBOX.x 16\r\n${latin1(body, 0, 16)}\r\n`);
});

Deno.test("nats-js: consumers ACK every message and renew pulls as they use them up", () => {
  const n = PULL_BATCH + 100;
  const bytes = deliveries("nats-js", "queue", 16, n);
  for (let round = 0; round < 10; round++) {
    const cuts = Array.from({ length: 20 }, () => Math.floor(Math.random() * bytes.length));
    const { events, out } = feedCut("nats-js", Mode.consume, bytes, cuts.sort((a, b) => a - b));
    assert.deepEqual(events.seqs, Array.from({ length: n }, (_, i) => i));
    assert.deepEqual(events.errors, []);
    const reply = "$JS.ACK.BENCH_t1.workers.1.1000000.1000000.1700000000000000000.0";
    const acks = out.split(`PUB ${reply} 4\r\n+ACK\r\n`);
    assert.deepEqual(acks.length - 1, n);
    // PULLS_AHEAD batches were asked for up front; one more once the first was used up.
    const pull = `PUB $JS.API.CONSUMER.MSG.NEXT.BENCH_t1.workers _INBOX.bench.t1.c0 `;
    assert.deepEqual(out.split(pull).length - 1, 1);
    assert.ok(out.includes(`{"batch":${PULL_BATCH},"expires":`));
  }
});

Deno.test("nats-js: the publisher counts publish acks; API errors and status frames fail", () => {
  const ack = (seq: number) => `{"stream":"BENCH_t1","seq":${seq}}`;
  const err = `{"error":{"code":503,"description":"no stream"}}`;
  const status = "NATS/1.0 503\r\n\r\n";
  const text = [1, 2, 3].map((i) => `MSG _INBOX.bench.t1.pub 1 ${ack(i).length}\r\n${ack(i)}\r\n`)
    .join("") +
    `MSG _INBOX.bench.t1.pub 1 ${err.length}\r\n${err}\r\n` +
    `HMSG _INBOX.bench.t1.pub 1 ${status.length} ${status.length}\r\n${status}\r\nPONG\r\n`;
  const bytes = new TextEncoder().encode(text);
  for (let cut = 0; cut <= bytes.length; cut += 7) {
    const { events, parser } = feedCut("nats-js", Mode.plain, bytes, [cut]);
    assert.deepEqual(parser.replies, 3);
    assert.deepEqual(events.errors.length, 2);
    assert.deepEqual(events.pongs, 1);
  }
});

Deno.test("redis: every popped message asks for one more BRPOP", () => {
  const bytes = deliveries("redis", "queue", 16, 3);
  const { events, out } = feedCut("redis", Mode.consume, bytes, [7]);
  assert.deepEqual(events.seqs, [0, 1, 2]);
  assert.deepEqual(out, "*3\r\n$5\r\nBRPOP\r\n$10\r\nbench:q:t1\r\n$1\r\n0\r\n".repeat(3));
});

Deno.test("redis: responder pushes the reply and pops the next request", () => {
  const body = payload(16, 5);
  const pop = concat("*2\r\n$12\r\nbench:rpc:t1\r\n$16\r\n", body, "\r\n");
  const { out } = feedCut("redis", Mode.respond, pop, []);
  assert.deepEqual(
    out,
    `*3\r\n$5\r\nLPUSH\r\n$14\r\nbench:inbox:t1\r\n$16\r\n${latin1(body, 0, 16)}\r\n` +
      "*3\r\n$5\r\nBRPOP\r\n$12\r\nbench:rpc:t1\r\n$1\r\n0\r\n",
  );
});

Deno.test("batcher: frames carry consecutive sequence numbers and stamps", () => {
  const b = new Batcher(drivers.nats.publishFrame("topic", "t1", 16), 16, 1000);
  const frames = b.next(10, 5, 2, 99.25);
  const text = latin1(frames, 0, frames.length);
  assert.deepEqual(text.split("PUB bench.t1 16\r\n").length - 1, 5);
  for (let i = 0; i < 5; i++) {
    const at = i * b.frameBytes + "PUB bench.t1 16\r\n".length;
    assert.deepEqual(seqAt(frames, at), 10 + i);
    if ((10 + i) % 2 === 0) assert.deepEqual(stampAt(frames, at), 99.25);
  }
});
