/**
 * The client's frame parser, outbound encoders and small helpers: pure
 * tests, no sockets. Every stream is also fed byte by byte and in random
 * splits, and must give the same frames.
 */
import assert from "node:assert/strict";
import { FrameParser, type MsgFrame } from "../src/client/parser.ts";
import { OutBuf } from "../src/client/outbound.ts";
import { declareLine } from "../src/client/admin_lines.ts";
import { encodePub } from "../src/client/pub_frame.ts";
import {
  ackGroups,
  checkSubscribe,
  encodeAcks,
  nackLine,
  subLine,
  unsubLine,
} from "../src/client/sub_lines.ts";
import {
  BadArgumentError,
  BadDestinationError,
  BadHeadersError,
  brokerError,
  BrokerProtocolError,
  BrokerReplyError,
  DurableInUseError,
  NotDeclaredError,
  PayloadTooLargeError,
  QueueFullError,
  ShuttingDownError,
} from "../src/client/errors.ts";
import {
  ERROR_CODES,
  type ErrorCode,
  type Frame,
  Parser,
  START_TIME_MS_MAX,
} from "../src/protocol/mod.ts";
import { Ring } from "../src/ring.ts";
import { parseAddress } from "../src/client/address.ts";
import { backoff } from "../src/client/connection.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

type Event = string;

/** What the parser's fast path read in the last `collect` (see `FrameParser.fastLines`). */
let lastFastLines = 0;

function collect(chunks: Uint8Array[]): Event[] {
  const events: Event[] = [];
  const parser = new FrameParser({
    onMsg: (f: MsgFrame) => events.push(describe(f)),
    onOk: (arg) => events.push(`OK[${arg}]`),
    onErr: (code, text) => events.push(`ERR[${code}|${text}]`),
    onPing: () => events.push("PING"),
    onPong: () => events.push("PONG"),
    onInfo: (json) => events.push(`INFO[${json}]`),
  });
  for (const c of chunks) parser.push(c);
  lastFastLines = parser.fastLines;
  return events;
}

function describe(f: MsgFrame): string {
  const opts = [
    f.priority && `p${f.priority}`,
    f.ttlMs !== undefined && `ttl${f.ttlMs}`,
    f.correlationId && `c=${f.correlationId}`,
    f.replyTo && `r=${f.replyTo}`,
    f.contentType && `ct=${f.contentType}`,
    f.hdrLen && `h${f.hdrLen}`,
    f.delivery > 1 && `d${f.delivery}`,
  ].filter(Boolean).join(",");
  return `MSG[${f.dest}|${f.subId}|${f.id}|${opts}|${dec.decode(f.payload)}]`;
}

/** Every way of feeding `text`: whole, byte by byte, and 20 random splits. */
function feeds(bytes: Uint8Array): Uint8Array[][] {
  const out: Uint8Array[][] = [[bytes]];
  out.push([...bytes].map((b) => Uint8Array.of(b)));
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let k = 0; k < 20; k++) {
    const parts: Uint8Array[] = [];
    let i = 0;
    while (i < bytes.length) {
      const n = 1 + Math.floor(rand() * 40);
      parts.push(bytes.slice(i, i + n));
      i += n;
    }
    out.push(parts);
    // The same chunks at an odd offset into a larger buffer, as a socket's chunk may lie: the
    // fast path reads them through a DataView, which must start where the chunk does.
    out.push(parts.map((part) => atOffset(part, 1 + (k % 3))));
  }
  out.push([atOffset(bytes, 5)]);
  // Chunks that are not plain Uint8Arrays (Bun's socket Buffers) are read byte by byte, no view.
  out.push([Chunk.from(bytes)], [...bytes].map((b) => Chunk.of(b)));
  return out;
}

/** A handler that ignores every frame. */
const IGNORE_FRAMES = {
  onMsg() {},
  onOk() {},
  onErr() {},
  onPing() {},
  onPong() {},
  onInfo() {},
};

/** A Uint8Array of another class, as Bun's socket chunks (Buffers) are. */
class Chunk extends Uint8Array {}

/** `bytes` copied `offset` bytes into a buffer with other bytes around, as a subarray. */
function atOffset(bytes: Uint8Array, offset: number): Uint8Array {
  const whole = new Uint8Array(offset + bytes.length + 3).fill(0x39); // '9': digits around
  whole.set(bytes, offset);
  return whole.subarray(offset, offset + bytes.length);
}

const STREAM = "OK\r\n" +
  "OK msg_id:1830000000000000\r\n" +
  "OK sub_id:s1\r\n" +
  "MSG topic:events sub_id:sub456 msg_id:1830000000000001 43\r\n" +
  '{"event":"order_placed","order_id":"12345"}\r\n' +
  "\r\n" +
  "PING\r\nPONG\r\n" +
  "MSG queue:orders sub_id:s2 msg_id:7 priority:5 ttl:1000 correlation_id:abc reply_to:topic:_inbox.x.1 content_type:application/json hdr:17 delivery:3 22\r\n" +
  "Trace-Id: abc\r\n\r\nhello\r\n" +
  "MSG topic:a sub_id:s msg_id:8 4\r\na\r\nb\r\n" +
  "MSG topic:a sub_id:s msg_id:9 0\r\n\r\n" +
  "ERR QUEUE_FULL queue:orders is full  (1000 messages)\r\n" +
  "ERR LIMIT\r\n" +
  'INFO {"server_id":"x","max_payload":1048576}\r\n' +
  "ok\nmsg topic:lf sub_id:s msg_id:10 2\nhi\n";

const EXPECTED = [
  "OK[]",
  "OK[msg_id:1830000000000000]",
  "OK[sub_id:s1]",
  'MSG[topic:events|sub456|1830000000000001||{"event":"order_placed","order_id":"12345"}]',
  "PING",
  "PONG",
  "MSG[queue:orders|s2|7|p5,ttl1000,c=abc,r=topic:_inbox.x.1,ct=application/json,h17,d3|Trace-Id: abc\r\n\r\nhello]",
  "MSG[topic:a|s|8||a\r\nb]",
  "MSG[topic:a|s|9||]",
  "ERR[QUEUE_FULL|queue:orders is full  (1000 messages)]",
  "ERR[LIMIT|]",
  'INFO[{"server_id":"x","max_payload":1048576}]',
  "OK[]",
  "MSG[topic:lf|s|10||hi]",
];

Deno.test("parser: every frame kind, whole, byte by byte and in random splits", () => {
  for (const chunks of feeds(enc.encode(STREAM))) assert.deepEqual(collect(chunks), EXPECTED);
});

Deno.test("parser: a payload inside one chunk is a view of it, not a copy", () => {
  const chunk = enc.encode("MSG topic:a sub_id:s msg_id:1 5\r\nhello\r\n");
  let payload: Uint8Array | undefined;
  const parser = new FrameParser({
    onMsg: (f) => payload = f.payload,
    onOk() {},
    onErr() {},
    onPing() {},
    onPong() {},
    onInfo() {},
  });
  parser.push(chunk);
  assert.equal(payload!.buffer, chunk.buffer);
});

Deno.test("parser: state after each byte", () => {
  // The frame is announced only once its payload's line end is in.
  const bytes = enc.encode("MSG topic:a sub_id:s msg_id:1 2\r\nhi\r\n");
  const events: string[] = [];
  const parser = new FrameParser({
    onMsg: () => events.push("MSG"),
    onOk() {},
    onErr() {},
    onPing() {},
    onPong() {},
    onInfo() {},
  });
  for (let i = 0; i < bytes.length; i++) {
    parser.push(bytes.subarray(i, i + 1));
    assert.equal(events.length, i === bytes.length - 1 ? 1 : 0, `after byte ${i}`);
  }
});

const MALFORMED: [string, string][] = [
  ["HELLO\r\n", "unknown verb"],
  ["MSG topic:a sub_id:s 5\r\nhello\r\n", "MSG needs"],
  ["MSG topic:a sub_id:s msg_id:1 x\r\n", "size is not a number"],
  ["MSG topic:a sub_id:s msg_id:1 -1\r\n", "size is not a number"],
  ["MSG topic:a sub_id:s msg_id:1 2\r\nhiX", "line end"],
  ["MSG topic:a sub_id:s msg_id:1 2\r\nhi\rX", "line end"],
  ["MSG topic:a subid msg_id:1 2\r\nhi\r\n", "without ':'"],
  ["MSG topic:a x:1 y:2 2\r\nhi\r\n", "without sub_id"],
  ["MSG topic:a sub_id:s msg_id:1 hdr:9 2\r\nhi\r\n", "hdr larger"],
  ["MSG topic:a sub_id:s msg_id:1 priority:x 2\r\nhi\r\n", "priority is not a number"],
  ["ERR\r\n", "ERR without a code"],
  ["MSG topic:a sub_id:s msg_id:1 99999999999\r\n", "too large"],
  [`OK ${"x".repeat(17000)}\r\n`, "control line longer"],
  [`${"x".repeat(17000)}`, "control line longer"],
];

Deno.test("parser: malformed input throws BrokerProtocolError quoting the bytes", () => {
  for (const [text, why] of MALFORMED) {
    for (const chunks of [[enc.encode(text)], [...enc.encode(text)].map((b) => Uint8Array.of(b))]) {
      assert.throws(
        () => collect(chunks),
        (err: unknown) => err instanceof BrokerProtocolError && err.message.includes(why),
        `${JSON.stringify(text.slice(0, 40))} should fail with ${why}`,
      );
    }
  }
});

Deno.test("parser: unknown MSG options are skipped (a newer broker)", () => {
  const events = collect([enc.encode("MSG topic:a sub_id:s msg_id:1 future:yes 1\r\nx\r\n")]);
  assert.deepEqual(events, ["MSG[topic:a|s|1||x]"]);
});

Deno.test("parser: a control line of exactly the maximum length is accepted", () => {
  const arg = "y".repeat(16 * 1024 - 3);
  assert.deepEqual(collect([enc.encode(`OK ${arg}\r\n`)]), [`OK[${arg}]`]);
  const bytes = enc.encode(`OK ${arg}\r\n`);
  assert.deepEqual(collect([bytes.slice(0, 100), bytes.slice(100)]), [`OK[${arg}]`]);
});

Deno.test("encodePub: options, headers, size", () => {
  const out = new OutBuf();
  encodePub(out, "topic:events", enc.encode("hello"), {
    headers: { "Trace-Id": "abc" },
    priority: 3,
    ttlMs: 500,
    correlationId: "c1",
    replyTo: "topic:_inbox.a.1",
    contentType: "text/plain",
  }, 1 << 20);
  assert.equal(
    dec.decode(out.take()),
    "PUB topic:events priority:3 ttl:500 correlation_id:c1 reply_to:topic:_inbox.a.1 " +
      "content_type:text/plain hdr:17 22\r\nTrace-Id: abc\r\n\r\nhello\r\n",
  );
});

Deno.test("encodePub: option-less frames keep their line per destination and size", () => {
  // The line `PUB <dest> <size>\r\n` is kept for the last destination and size: every change of
  // either (sizes across a digit border, 0, back again) writes its own.
  const out = new OutBuf();
  // A size repeated takes the kept line (made on its second publish); one digit count's line
  // serves sizes 1 and 7, rewritten in place.
  const sends: [string, string][] = [
    ["topic:a", "x"],
    ["topic:a", "y"],
    ["topic:a", "y"],
    ["topic:a", "1234567"],
    ["topic:a", "1234567"],
    ["topic:a", "123456789"],
    ["topic:a", "1234567890"],
    ["topic:a", "1234567890"],
    ["topic:a", ""],
    ["topic:a", ""],
    ["topic:a", "z"],
    ["topic:a", "z"],
    ["queue:b", "z"],
    ["queue:b", "z"],
    ["topic:a", "z".repeat(100)],
    ["topic:a", "z".repeat(100)],
    ["queue:b", "w"],
  ];
  for (const [dest, body] of sends) encodePub(out, dest, enc.encode(body), undefined, 1 << 20);
  assert.equal(
    dec.decode(out.take()),
    sends.map(([dest, body]) => `PUB ${dest} ${body.length}\r\n${body}\r\n`).join(""),
  );
  // Over max_payload is refused with the kept line in hand too, and nothing is appended.
  assert.throws(
    () => encodePub(out, "queue:b", enc.encode("w"), undefined, 0),
    PayloadTooLargeError,
  );
  assert.equal(out.length, 0);
});

Deno.test("encodePub: refuses what would break or inject frames, appending nothing", () => {
  const out = new OutBuf();
  const body = enc.encode("x");
  const bad: [string, object, new (...a: never[]) => Error][] = [
    ["topic:a b", {}, BadDestinationError],
    ["topic:a\r\nPUB", {}, BadDestinationError],
    ["orders", {}, BadDestinationError],
    ["topic:a.*", {}, BadDestinationError],
    ["topic:a", { priority: 10 }, BadArgumentError],
    ["topic:a", { priority: 1.5 }, BadArgumentError],
    ["topic:a", { ttlMs: 0 }, BadArgumentError],
    ["topic:a", { correlationId: "a b" }, BadArgumentError],
    ["topic:a", { correlationId: "" }, BadArgumentError],
    ["topic:a", { correlationId: "x".repeat(257) }, BadArgumentError],
    ["topic:a", { contentType: "a\nb" }, BadArgumentError],
    ["topic:a", { replyTo: "nowhere" }, BadDestinationError],
    ["topic:a", { headers: { "Bad Key": "v" } }, BadHeadersError],
    ["topic:a", { headers: { K: "v\r\nX: y" } }, BadHeadersError],
  ];
  for (const [dest, opts, cls] of bad) {
    assert.throws(
      () => encodePub(out, dest, body, opts, 1 << 20),
      cls,
      `${dest} ${JSON.stringify(opts)}`,
    );
  }
  assert.throws(() => encodePub(out, "topic:a", new Uint8Array(11), {}, 10), PayloadTooLargeError);
  assert.equal(out.length, 0);
});

Deno.test("sub, ack and nack lines", () => {
  assert.equal(
    subLine("queue:q", "s1", "explicit", { prefetch: 10, ackTimeoutMs: 500 }),
    "SUB queue:q sub_id:s1 ack:explicit prefetch:10 ack_timeout:500",
  );
  assert.throws(() => subLine("queue:q", "s1", "explicit", { prefetch: 0 }), BadArgumentError);
  assert.equal(nackLine("5", 100), "NACK msg_id:5 delay:100");
  assert.equal(nackLine("5", undefined), "NACK msg_id:5");
  // Up to 256 ids per line (ACK_IDS_MAX), and at most 4096 bytes.
  const out = new OutBuf();
  const ids = Array.from({ length: 520 }, (_, i) => `${i % 10}`);
  const groups = ackGroups(ids);
  assert.deepEqual(groups.map((g) => g.length), [256, 256, 8]);
  encodeAcks(out, groups);
  const lines = dec.decode(out.take()).split("\r\n");
  assert.equal(lines.length, 4);
  assert.equal(
    lines[2],
    "ACK msg_id:2 msg_id:3 msg_id:4 msg_id:5 msg_id:6 msg_id:7 msg_id:8 msg_id:9",
  );
  // Long ids: the 4096-byte control line is the bound.
  const long = Array.from({ length: 100 }, (_, i) => `${i}`.padStart(200, "1"));
  const longGroups = ackGroups(long);
  assert.deepEqual(longGroups.flat(), long);
  for (const g of longGroups) assert.ok(`ACK msg_id:${g.join(" msg_id:")}`.length <= 4096);
  assert.equal(longGroups[0].length, 19);
});

Deno.test("durable and start on SUB lines; the resume line leaves start out", () => {
  const line = (opts: Parameters<typeof subLine>[3], resume = false) =>
    subLine("topic:o", "s1", "explicit", opts, resume);
  assert.equal(line({ durable: "billing" }), "SUB topic:o sub_id:s1 ack:explicit durable:billing");
  assert.equal(line({ start: "first" }), "SUB topic:o sub_id:s1 ack:explicit start:first");
  assert.equal(line({ start: "new" }), "SUB topic:o sub_id:s1 ack:explicit start:new");
  assert.equal(
    line({ start: { id: "1830000000000001" } }),
    "SUB topic:o sub_id:s1 ack:explicit start:id:1830000000000001",
  );
  assert.equal(
    line({ start: { time: 1767225600000 } }),
    `SUB topic:o sub_id:s1 ack:explicit start:time:1767225600000`,
  );
  assert.equal(
    line({ start: { time: new Date(1767225600000) } }),
    "SUB topic:o sub_id:s1 ack:explicit start:time:1767225600000",
  );
  assert.equal(
    line({ durable: "a.b-c_1", start: "first", prefetch: 5 }),
    "SUB topic:o sub_id:s1 ack:explicit prefetch:5 durable:a.b-c_1 start:first",
  );
  // After a reconnect: same durable name, no start (the broker resumes at the stored position).
  assert.equal(
    line({ durable: "billing", start: "first" }, true),
    "SUB topic:o sub_id:s1 ack:explicit durable:billing",
  );
  assert.equal(line({ start: { id: "7" } }, true), "SUB topic:o sub_id:s1 ack:explicit");
  // Refused before anything is sent.
  for (const bad of ["", "a b", "x:y", "é", "a".repeat(257)]) {
    assert.throws(() => line({ durable: bad }), BadArgumentError, JSON.stringify(bad));
  }
  const badStarts = [
    "last",
    { id: "12a" },
    { id: "" },
    { id: 5 },
    { time: -1 },
    { time: 1.5 },
    { time: new Date(NaN) },
    { time: 2 ** 44 },
    {},
    null,
  ];
  for (const bad of badStarts) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => line({ start: bad as any }), BadArgumentError, JSON.stringify(bad));
  }
  // A durable defaults to explicit acks and refuses ack:none; start/durable want a plain topic.
  assert.equal(checkSubscribe("topic:o", { durable: "d" }), "explicit");
  assert.equal(checkSubscribe("topic:o", { start: "first" }), "none");
  assert.throws(() => checkSubscribe("topic:o", { durable: "d", ack: "none" }), BadArgumentError);
  assert.throws(() => checkSubscribe("queue:o", { durable: "d" }), BadArgumentError);
  assert.throws(() => checkSubscribe("queue:o", { start: "first" }), BadArgumentError);
  assert.throws(() => checkSubscribe("topic:o.*", { durable: "d" }), BadDestinationError);
  assert.throws(() => checkSubscribe("topic:o.>", { start: "first" }), BadDestinationError);
});

Deno.test("client and broker agree on durable names and start times (one grammar)", () => {
  const brokerTakes = (options: string) => {
    const out: Frame[] = [];
    new Parser().push(enc.encode(`SUB topic:o sub_id:s1 ack:explicit ${options}\r\n`), out);
    return out.length === 1 && out[0].op === "SUB";
  };
  const clientTakes = (opts: Parameters<typeof subLine>[3]) => {
    try {
      subLine("topic:o", "s1", "explicit", opts);
      return true;
    } catch (err) {
      assert.ok(err instanceof BadArgumentError);
      return false;
    }
  };
  const names = ["a", "a.b-c_1", "Z9", "a".repeat(256), "a".repeat(257), "a*b", "a/b", "a+b"];
  for (const name of names) {
    assert.equal(clientTakes({ durable: name }), brokerTakes(`durable:${name}`), name);
  }
  for (const ms of [0, 1767225600000, START_TIME_MS_MAX, START_TIME_MS_MAX + 1, 2 ** 44]) {
    assert.equal(clientTakes({ start: { time: ms } }), brokerTakes(`start:time:${ms}`), `${ms}`);
  }
  assert.ok(brokerTakes(`start:time:${START_TIME_MS_MAX}`));
  assert.ok(!brokerTakes(`start:time:${START_TIME_MS_MAX + 1}`));
});

Deno.test("DECLARE and UNSUB forget lines", () => {
  assert.equal(
    declareLine("topic:o", { retainMessages: 10 }),
    "DECLARE topic:o retain_messages:10",
  );
  assert.equal(
    declareLine("topic:o.eu", { retainMessages: 1, retainBytes: 1024, retainAgeMs: 60000 }),
    "DECLARE topic:o.eu retain_messages:1 retain_bytes:1024 retain_age:60000",
  );
  assert.equal(
    declareLine("topic:o", { retainAgeMs: 2592000000 }),
    "DECLARE topic:o retain_age:2592000000",
  );
  assert.throws(() => declareLine("topic:o", {}), BadArgumentError);
  assert.throws(() => declareLine("topic:o", { retainMessages: 0 }), BadArgumentError);
  assert.throws(() => declareLine("topic:o", { retainMessages: 10_000_001 }), BadArgumentError);
  assert.throws(() => declareLine("topic:o", { retainBytes: 2 ** 30 + 1 }), BadArgumentError);
  assert.throws(() => declareLine("topic:o", { retainAgeMs: 2592000001 }), BadArgumentError);
  assert.throws(() => declareLine("topic:o", { retainAgeMs: 1.5 }), BadArgumentError);
  assert.throws(() => declareLine("queue:o", { retainMessages: 1 }), BadDestinationError);
  assert.throws(() => declareLine("topic:o.*", { retainMessages: 1 }), BadDestinationError);
  assert.throws(() => declareLine("topic:o x", { retainMessages: 1 }), BadDestinationError);
  assert.equal(unsubLine("s1"), "UNSUB s1");
  assert.equal(unsubLine("s1", true), "UNSUB s1 forget:true");
});

Deno.test("outbound buffer grows and double-buffers", () => {
  const out = new OutBuf();
  const big = new Uint8Array(100_000).fill(7);
  out.writeBytes(big);
  out.writeString("é");
  const first = out.take();
  assert.equal(first.length, 100_002);
  out.writeString("next");
  assert.equal(first[0], 7); // the taken bytes are untouched by later writes
  out.release(first);
  assert.equal(dec.decode(out.take()), "next");
});

Deno.test("error registry maps every code", () => {
  // The codes are read from PROTOCOL.md's error table, so the contract, the
  // protocol's ERROR_CODES and the client's classes cannot drift apart.
  const doc = Deno.readTextFileSync(new URL("../docs/PROTOCOL.md", import.meta.url));
  const table = doc.slice(doc.indexOf("| code "), doc.indexOf("## Flow control"));
  const rows = [...table.matchAll(/^\| `([A-Z_]+)` +\| (yes|no) /gm)];
  const codes = rows.map((m) => m[1]);
  // The list of PROTOCOL.md is the protocol's list, and each code's class has its fatality.
  assert.deepEqual(Object.keys(ERROR_CODES).sort(), [...codes].sort());
  for (const [, code, fatal] of rows) {
    assert.equal(
      ERROR_CODES[code as ErrorCode],
      fatal === "yes",
      `PROTOCOL.md's fatal for ${code}`,
    );
  }
  const names = new Set<string>();
  for (const code of codes) {
    const err = brokerError(code, "text");
    assert.ok(err instanceof BrokerReplyError);
    assert.equal(err.code, code);
    assert.equal(err.fatal, ERROR_CODES[code as ErrorCode], code);
    assert.notEqual(err.constructor, BrokerReplyError, code);
    names.add(err.name);
  }
  assert.equal(names.size, codes.length);
  assert.ok(brokerError("QUEUE_FULL", "x") instanceof QueueFullError);
  assert.ok(brokerError("NOT_DECLARED", "x") instanceof NotDeclaredError);
  assert.ok(brokerError("DURABLE_IN_USE", "x") instanceof DurableInUseError);
  assert.equal(brokerError("DURABLE_IN_USE", "x").fatal, false);
  assert.equal(brokerError("SHUTTING_DOWN", "").fatal, true);
  assert.ok(brokerError("SHUTTING_DOWN", "") instanceof ShuttingDownError);
  assert.equal(brokerError("QUEUE_FULL", "").fatal, false);
  const unknown = brokerError("NEW_CODE", "later");
  assert.equal(unknown.constructor, BrokerReplyError);
  assert.equal(brokerError("toString", "").constructor, BrokerReplyError);
});

Deno.test("ring keeps order across growth and wrap-around", () => {
  const q = new Ring<number>();
  let next = 0;
  let expect = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < round; i++) q.push(next++);
    for (let i = 0; i < round / 2; i++) assert.equal(q.shift(), expect++);
  }
  while (q.length > 0) assert.equal(q.shift(), expect++);
  assert.equal(expect, next);
  assert.equal(q.shift(), undefined);
});

Deno.test("ring: peek, drain and filter, as the client's queues use them", () => {
  const q = new Ring<number>();
  assert.equal(q.peek(), undefined);
  for (let i = 0; i < 3000; i++) q.push(i);
  for (let i = 0; i < 1000; i++) q.shift(); // the head wraps after the next growth
  for (let i = 3000; i < 4000; i++) q.push(i);
  assert.equal(q.peek(), 1000);
  q.filter((n) => n % 3 === 0);
  assert.equal(q.length, 1000);
  assert.equal(q.peek(), 1002);
  assert.equal(q.at(999), 3999);
  const all = q.drain();
  assert.deepEqual(all, Array.from({ length: 1000 }, (_, i) => 1002 + 3 * i));
  assert.equal(q.length, 0);
  assert.equal(q.peek(), undefined);
  q.push(7); // usable after draining
  assert.equal(q.shift(), 7);
});

Deno.test("parseAddress", () => {
  assert.deepEqual(parseAddress("localhost:9092"), { hostname: "localhost", port: 9092 });
  assert.deepEqual(parseAddress("example"), { hostname: "example", port: 9092 });
  assert.deepEqual(parseAddress(":4000"), { hostname: "localhost", port: 4000 });
  assert.deepEqual(parseAddress("relayr://127.0.0.1:1"), { hostname: "127.0.0.1", port: 1 });
  assert.deepEqual(parseAddress("[::1]:9"), { hostname: "::1", port: 9 });
  assert.throws(() => parseAddress("host:99999"), TypeError);
  assert.throws(() => parseAddress("host:x"), TypeError);
});

Deno.test("backoff grows, is jittered and capped", () => {
  for (let attempt = 1; attempt < 40; attempt++) {
    const d = backoff(attempt, 100, 2000);
    const exp = Math.min(2000, 100 * 2 ** (attempt - 1));
    assert.ok(d >= exp / 2 && d <= exp, `attempt ${attempt}: ${d}`);
  }
});

Deno.test("parser: message ids keep their exact text, as numbers while they fit one", () => {
  const ids = [
    "0",
    "7",
    "12345678",
    "123456789",
    "1830000000000001",
    "9007199254740991", // 2^53 - 1: the largest kept as a number
    "9007199254740993", // beyond: kept as text (a double would round it)
    "99999999999999999999",
    "9223372036854775807", // 2^63 - 1
    "007",
  ];
  const seen: { id: string; idNum: number }[] = [];
  const parser = new FrameParser({
    onMsg: (f) => seen.push({ id: f.id, idNum: f.idNum }),
    onOk() {},
    onErr() {},
    onPing() {},
    onPong() {},
    onInfo() {},
  });
  for (const id of ids) parser.push(enc.encode(`MSG topic:a sub_id:s msg_id:${id} 0\r\n\r\n`));
  assert.deepEqual(seen.map((s) => s.id), ids);
  assert.deepEqual(
    seen.map((s) => s.idNum >= 0),
    [true, true, true, true, true, true, false, false, false, false],
  );
  // Not the broker's form, but kept as it came (the SDK does not judge ids).
  parser.push(enc.encode("MSG topic:a sub_id:s msg_id:12x4 0\r\n\r\n"));
  assert.deepEqual(seen.at(-1), { id: "12x4", idNum: -1 });
});

Deno.test("parser: repeated MSG lines (the fast path) read as the general path reads them", () => {
  // Each line after the first starts as the last plain one did; the fast path must take the
  // plain ones and leave every variation to the general path, with the same frames either way.
  const lines = [
    ["MSG topic:t sub_id:s1 msg_id:1838892215346176 2\r\n", "ab"],
    ["MSG topic:t sub_id:s1 msg_id:1838892215346177 2\r\n", "cd"],
    ["MSG topic:t sub_id:s1 msg_id:9 0\r\n", ""],
    ["MSG topic:t sub_id:s1 msg_id:9007199254740993 1\r\n", "x"], // over 2^53: text
    ["MSG topic:t sub_id:s1 msg_id:0123 1\r\n", "y"], // leading zero: text
    ["MSG topic:t sub_id:s1 msg_id:12345678901234567 1\r\n", "z"], // 17 digits: text
    ["MSG topic:t sub_id:s1 msg_id:0838892215346176 1\r\n", "l"], // 16, leading zero: text
    ["MSG topic:t sub_id:s1 msg_id:1838892215346:76 1\r\n", "c"], // ':' is digit 10: text
    ["MSG topic:t sub_id:s1 msg_id:18388922/5346176 1\r\n", "d"], // '/' is digit -1: text
    ["MSG topic:t sub_id:s1 msg_id:9007199254740991 1\r\n", "m"], // 2^53 - 1: a number
    ["MSG topic:t sub_id:s1 msg_id:9007199254740992 1\r\n", "n"], // 2^53: text
    ["MSG topic:t sub_id:s1 msg_id:183889221534617 1\r\n", "o"], // 15 digits: a number
    ["MSG topic:t sub_id:s1 msg_id:1838892215346178  1\r\n", "e"], // 16, two spaces
    ["MSG topic:t sub_id:s1 msg_id:10 priority:3 1\n", "p"], // an option after the id
    ["MSG topic:t sub_id:s1 msg_id:11  3\n", "two"], // two spaces
    ["MSG  topic:t sub_id:s1 msg_id:12 4\r\n", "four"], // two spaces after the verb
    ["MSG topic:t sub_id:s2 msg_id:13 1\r\n", "q"], // another subscription
    ["MSG topic:t sub_id:s2 msg_id:14 1\n", "r"],
    ["MSG topic:u sub_id:s2 msg_id:15 1\r\n", "s"],
    ["MSG topic:u sub_id:s2 msg_id:16 100000000\r\n", ""], // over the payload limit
  ];
  const text = lines.slice(0, -1).map(([l, p]) => `${l}${p}\r\n`).join("");
  const expected = [
    "MSG[topic:t|s1|1838892215346176||ab]",
    "MSG[topic:t|s1|1838892215346177||cd]",
    "MSG[topic:t|s1|9||]",
    "MSG[topic:t|s1|9007199254740993||x]",
    "MSG[topic:t|s1|0123||y]",
    "MSG[topic:t|s1|12345678901234567||z]",
    "MSG[topic:t|s1|0838892215346176||l]",
    "MSG[topic:t|s1|1838892215346:76||c]",
    "MSG[topic:t|s1|18388922/5346176||d]",
    "MSG[topic:t|s1|9007199254740991||m]",
    "MSG[topic:t|s1|9007199254740992||n]",
    "MSG[topic:t|s1|183889221534617||o]",
    "MSG[topic:t|s1|1838892215346178||e]",
    "MSG[topic:t|s1|10|p3|p]",
    "MSG[topic:t|s1|11||two]",
    "MSG[topic:t|s1|12||four]",
    "MSG[topic:t|s2|13||q]",
    "MSG[topic:t|s2|14||r]",
    "MSG[topic:u|s2|15||s]",
  ];
  for (const chunks of feeds(enc.encode(text))) assert.deepEqual(collect(chunks), expected);
  // A line that differs from the kept prefix in any byte, its last ones included, is no repeat:
  // here `msg_Id:` and `msg_id;` (no msg_id at all) must reach the general path, which refuses them.
  const first = "MSG topic:t sub_id:s1 msg_id:1838892215346176 1\r\na\r\n";
  const mangled = ["msg_Id:", "msg_id;"].map((m) =>
    enc.encode(`${first}MSG topic:t sub_id:s1 ${m}1838892215346177 1\r\nb\r\n`)
  );
  for (const chunk of mangled.flatMap((m) => [m, atOffset(m, 3), Chunk.from(m)])) {
    assert.throws(() => new FrameParser(IGNORE_FRAMES).push(chunk), BrokerProtocolError);
  }
  // Whole, the fast path reads the two plain lines of 16 digits after the first (...177 and 2^53 - 1).
  const bytes = enc.encode(text);
  for (const whole of [bytes, atOffset(bytes, 5), Chunk.from(bytes)]) {
    assert.deepEqual(collect([whole]), expected);
    assert.equal(lastFastLines, 2);
  }
  // Over the payload limit is refused on the fast path's heels too.
  const parser = new FrameParser(IGNORE_FRAMES);
  parser.maxPayloadBytes = 1000;
  const [last, before] = [lines.at(-1)!, lines.at(-2)!];
  parser.push(enc.encode(`${before[0]}${before[1]}\r\n`));
  assert.throws(() => parser.push(enc.encode(last[0])), BrokerProtocolError);
});

Deno.test("parser: the fast path reads a subscriber's stream whole, at any offset and from Buffers", () => {
  // 64 lines of one subscription with 16-digit ids (every id the broker makes): after the first,
  // each is read by the fast path (through a DataView for a plain Uint8Array at any offset into
  // its buffer, byte by byte for another class), with the same frames as the general path.
  let text = "";
  const expected: string[] = [];
  for (let k = 0; k < 64; k++) {
    const id = 1838892215346176 + k * 7_919_173; // digits change in every group of four
    const body = "x".repeat(k % 5);
    text += `MSG topic:orders.eu sub_id:s7 msg_id:${id} ${body.length}\r\n${body}\r\n`;
    expected.push(`MSG[topic:orders.eu|s7|${id}||${body}]`);
  }
  const bytes = enc.encode(text);
  const chunks = [bytes, ...[1, 2, 3, 5].map((o) => atOffset(bytes, o)), Chunk.from(bytes)];
  for (const chunk of chunks) {
    assert.deepEqual(collect([chunk]), expected);
    assert.equal(lastFastLines, 63, `${chunk.constructor.name} at ${chunk.byteOffset}`);
  }
});
