/**
 * Parser tests: every frame whole, byte by byte, split at every offset, in
 * seeded random chunks, plus a table of malformed inputs and the limits.
 */
import assert from "node:assert/strict";
import { CONTROL_LINE_BYTES_MAX } from "../../src/config/mod.ts";
import {
  defaultPubOptions,
  defaultQueueDeclareOptions,
  type Frame,
  Parser,
  type PubOptions,
  type QueueDeclareOptions,
} from "../../src/protocol/mod.ts";
import { rng } from "../helpers.ts";
import { plain } from "./plain.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function parseChunks(chunks: Uint8Array[], payloadBytesMax?: number): unknown[] {
  const p = new Parser({ payloadBytesMax });
  const out: Frame[] = [];
  for (const c of chunks) p.push(c, out);
  return plain(out);
}

const pubOpts = (o: Partial<PubOptions>) => ({ ...defaultPubOptions(), ...o });
const subOpts = (o: Partial<Record<string, unknown>>) => ({
  sid: undefined,
  ack: undefined,
  prefetch: undefined,
  ackTimeoutMs: undefined,
  ...o,
});

const queueOpts = (o: Partial<QueueDeclareOptions>) => ({ ...defaultQueueDeclareOptions(), ...o });
const NO_RETENTION = { messages: undefined, bytes: undefined, ageMs: undefined };

/** Valid input and the frames it must give. */
const VALID: [string, unknown[]][] = [
  [
    'CONNECT {"version":"1.0","client_id":"client123"}\n',
    [{
      op: "CONNECT",
      options: { version: "1.0", clientId: "client123", name: undefined, verbose: true },
    }],
  ],
  [
    'connect { "verbose" : false ,  "name": "a b" }\r\n',
    [{
      op: "CONNECT",
      options: { version: "1.0", clientId: undefined, name: "a b", verbose: false },
    }],
  ],
  ["CONNECT\r\n", [{
    op: "CONNECT",
    options: { version: "1.0", clientId: undefined, name: undefined, verbose: true },
  }]],
  [
    'PUB queue:orders 35\n{"order_id":"12345","amount":99.99}\n',
    [{
      op: "PUB",
      dest: "queue:orders",
      payload: '{"order_id":"12345","amount":99.99}',
      options: undefined,
    }],
  ],
  ["PUB topic:a.b 0\r\n\r\n", [{ op: "PUB", dest: "topic:a.b", payload: "", options: undefined }]],
  ["pub\ttopic:a   5\r\nhe\nlo\r\n", [{
    op: "PUB",
    dest: "topic:a",
    payload: "he\nlo",
    options: undefined,
  }]],
  ["PUB topic:a 4\r\n\r\n\r\n\r\n", [{
    op: "PUB",
    dest: "topic:a",
    payload: "\r\n\r\n",
    options: undefined,
  }]],
  [
    "PUB queue:q priority:9 ttl:500 correlation_id:c-1 reply_to:topic:r.x content_type:text/plain 2\r\nhi\r\n",
    [{
      op: "PUB",
      dest: "queue:q",
      payload: "hi",
      options: pubOpts({
        priority: 9,
        ttlMs: 500,
        correlationId: "c-1",
        replyTo: "topic:r.x",
        contentType: "text/plain",
      }),
    }],
  ],
  [
    "PUB topic:events hdr:17 22\r\nTrace-Id: abc\r\n\r\nhello\r\n",
    [{
      op: "PUB",
      dest: "topic:events",
      payload: "Trace-Id: abc\r\n\r\nhello",
      options: pubOpts({ hdrBytes: 17 }),
    }],
  ],
  ["SUB topic:events sub_id:sub456\n", [{
    op: "SUB",
    dest: "topic:events",
    options: subOpts({ sid: "sub456" }),
  }]],
  [
    "SUB queue:jobs ack:none prefetch:10 ack_timeout:5000 sub_id:x\r\n",
    [{
      op: "SUB",
      dest: "queue:jobs",
      options: subOpts({ sid: "x", ack: "none", prefetch: 10, ackTimeoutMs: 5000 }),
    }],
  ],
  ["SUB topic:a.*.c\n", [{ op: "SUB", dest: "topic:a.*.c", options: subOpts({}) }]],
  // Tokens of 12 bytes are decoded a character at a time, longer ones in one go: both give the same.
  ["SUB topic:abcdef sub_id:s234567890ab\n", [{
    op: "SUB",
    dest: "topic:abcdef",
    options: subOpts({ sid: "s234567890ab" }),
  }]],
  [`SUB topic:c.1234.5 sub_id:s234567890abc${"d".repeat(52)}\n`, [{
    op: "SUB",
    dest: "topic:c.1234.5",
    options: subOpts({ sid: `s234567890abc${"d".repeat(52)}` }),
  }]],
  [
    "PUB queue:q correlation_id:\u00fcn\u00efc\u00f6d\u00e9-\u00fcn\u00efc 0\r\n\r\n",
    [{
      op: "PUB",
      dest: "queue:q",
      payload: "",
      options: pubOpts({ correlationId: "\u00fcn\u00efc\u00f6d\u00e9-\u00fcn\u00efc" }),
    }],
  ],
  ["SUB topic:>\n", [{ op: "SUB", dest: "topic:>", options: subOpts({}) }]],
  [
    "SUB topic:ev sub_id:d durable:billing.v2 start:first\n",
    [{
      op: "SUB",
      dest: "topic:ev",
      options: subOpts({ sid: "d", durable: "billing.v2", start: { kind: "first" } }),
    }],
  ],
  [
    "SUB topic:ev start:id:1838892215346176\nSUB topic:ev start:time:1800000000000\nSUB topic:ev start:new\n",
    [
      {
        op: "SUB",
        dest: "topic:ev",
        options: subOpts({ start: { kind: "id", id: 1838892215346176 } }),
      },
      {
        op: "SUB",
        dest: "topic:ev",
        options: subOpts({ start: { kind: "time", ms: 1800000000000 } }),
      },
      { op: "SUB", dest: "topic:ev", options: subOpts({ start: { kind: "new" } }) },
    ],
  ],
  [
    "DECLARE topic:ev retain_messages:100 retain_bytes:4096 retain_age:60000\r\n",
    [{ op: "DECLARE", dest: "topic:ev", options: { messages: 100, bytes: 4096, ageMs: 60000 } }],
  ],
  ["declare topic:ev retain_age:5\n", [{
    op: "DECLARE",
    dest: "topic:ev",
    options: { messages: undefined, bytes: undefined, ageMs: 5 },
  }]],
  ["DECLARE queue:jobs\n", [{
    op: "DECLARE",
    dest: "queue:jobs",
    options: NO_RETENTION,
    queue: queueOpts({}),
  }]],
  [
    "DECLARE queue:jobs max_messages:1000 max_bytes:65536 overflow:drop_oldest ttl:60000 " +
    "max_deliveries:3 dlq:queue:jobs.dead ack_timeout:5000 dedup_window:300000\r\n",
    [{
      op: "DECLARE",
      dest: "queue:jobs",
      options: NO_RETENTION,
      queue: queueOpts({
        maxMessages: 1000,
        maxBytes: 65536,
        overflow: "drop_oldest",
        ttlMs: 60000,
        maxDeliveries: 3,
        dlq: "queue:jobs.dead",
        ackTimeoutMs: 5000,
        dedupWindowMs: 300000,
      }),
    }],
  ],
  ["DECLARE queue:jobs overflow:reject dlq:none dedup_window:0\n", [{
    op: "DECLARE",
    dest: "queue:jobs",
    options: NO_RETENTION,
    queue: queueOpts({ overflow: "reject", dlq: null, dedupWindowMs: 0 }),
  }]],
  ["PUB queue:q delay:1500 2\r\nhi\r\n", [{
    op: "PUB",
    dest: "queue:q",
    payload: "hi",
    options: pubOpts({ delayMs: 1500 }),
  }]],
  ["PUB topic:t deliver_at:1767225600000 dedup_id:order-42 2\r\nhi\r\n", [{
    op: "PUB",
    dest: "topic:t",
    payload: "hi",
    options: pubOpts({ deliverAt: 1767225600000, dedupId: "order-42" }),
  }]],
  ["PUB queue:q delay:0 2\r\nhi\r\n", [{
    op: "PUB",
    dest: "queue:q",
    payload: "hi",
    options: pubOpts({}),
  }]],
  ["UNSUB d forget:true\n", [{ op: "UNSUB", sid: "d", forget: true }]],
  ["UNSUB sub456\n", [{ op: "UNSUB", sid: "sub456" }]],
  ["UNSUB sub_id:sub456\n", [{ op: "UNSUB", sid: "sub456" }]],
  ["ACK msg_id:1838892215346176\r\n", [{ op: "ACK", ids: [1838892215346176] }]],
  ["ACK msg_id:1 msg_id:22 msg_id:333\n", [{ op: "ACK", ids: [1, 22, 333] }]],
  [
    "ACK msg_id:12345678 msg_id:123456789 msg_id:999999999 msg_id:1000000000 msg_id:0000000012 " +
    "msg_id:123456789012345 msg_id:9007199254740991\n",
    [{
      op: "ACK",
      ids: [12345678, 123456789, 999999999, 1000000000, 12, 123456789012345, 9007199254740991],
    }],
  ],
  [
    `ACK ${Array.from({ length: 200 }, (_, i) => `msg_id:${i}`).join(" ")}\n`,
    [{ op: "ACK", ids: Array.from({ length: 200 }, (_, i) => i) }],
  ],
  ["ACK sub_id:c0 upto:1838892215346176\r\n", [{
    op: "ACK",
    ids: [],
    upto: { sid: "c0", id: 1838892215346176 },
  }]],
  ["ack upto:7 sub_id:c0\n", [{ op: "ACK", ids: [], upto: { sid: "c0", id: 7 } }]],
  [
    "BIND topic:orders.* queue:orders\nUNBIND topic:orders.> queue:all\n",
    [
      { op: "BIND", pattern: "topic:orders.*", queue: "queue:orders" },
      { op: "UNBIND", pattern: "topic:orders.>", queue: "queue:all" },
    ],
  ],
  ["NACK msg_id:7\n", [{ op: "NACK", id: 7, delayMs: 0 }]],
  ["NACK msg_id:7 delay:250\n", [{ op: "NACK", id: 7, delayMs: 250 }]],
  ["PING\r\nPONG\nINFO\n", [{ op: "PING" }, { op: "PONG" }, { op: "INFO" }]],
  ["\r\n\n  \nPING\n", [{ op: "PING" }]],
];

/** Non-fatal bad input: an ERR with this code, then parsing goes on (a PING after it is seen). */
const BAD: [string, string][] = [
  ["FOO bar\n", "UNKNOWN_COMMAND"],
  ["\x00\x01\x02\n", "UNKNOWN_COMMAND"],
  ["CONNECT {bad json\n", "BAD_JSON"],
  ["CONNECT [1,2]\n", "BAD_JSON"],
  ['CONNECT {"verbose":"yes"}\n', "BAD_JSON"],
  ['CONNECT {"version":"2.0"}\n', "BAD_VERSION"],
  ["PUB nowhere 2\r\nhi\r\n", "BAD_DESTINATION"],
  ["PUB queue: 2\r\nhi\r\n", "BAD_DESTINATION"],
  ["PUB queue:a..b 2\r\nhi\r\n", "BAD_DESTINATION"],
  ["PUB topic:a.* 2\r\nhi\r\n", "BAD_DESTINATION"],
  ["PUB topic:a/b 2\r\nhi\r\n", "BAD_DESTINATION"],
  ["PUB 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a priority:10 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a priority:x 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a ttl:0 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a colour:red 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a novalue 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a reply_to:nowhere 2\r\nhi\r\n", "BAD_DESTINATION"],
  ["PUB queue:a hdr:3 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a hdr:2 2\r\nhi\r\n", "BAD_HEADERS"],
  ["PUB queue:a hdr:6 6\r\nKey\r\n\r\n\r\n", "BAD_HEADERS"],
  ["SUB\n", "BAD_ARGUMENT"],
  ["SUB queue:a.*\n", "BAD_DESTINATION"],
  ["SUB topic:a.>.b\n", "BAD_DESTINATION"],
  ["SUB topic:a ack:sometimes\n", "BAD_ARGUMENT"],
  ["SUB topic:a prefetch:0\n", "BAD_ARGUMENT"],
  ["SUB topic:a bogus:1\n", "BAD_ARGUMENT"],
  ["UNSUB\n", "BAD_ARGUMENT"],
  ["UNSUB d forget:yes\n", "BAD_ARGUMENT"],
  ["DECLARE\n", "BAD_ARGUMENT"],
  ["DECLARE topic:ev\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q retain_messages:5\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q max_messages:0\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q max_bytes:x\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q overflow:block\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q ttl:0\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q max_deliveries:1001\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q dlq:topic:dead\n", "BAD_DESTINATION"],
  ["DECLARE queue:q dlq:queue:a.*\n", "BAD_DESTINATION"],
  ["DECLARE queue:q ack_timeout:0\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q dedup_window:86400001\n", "BAD_ARGUMENT"],
  ["DECLARE queue:q.* max_messages:5\n", "BAD_DESTINATION"],
  ["PUB queue:a delay:-1 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a delay:2592000001 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a deliver_at:soon 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a deliver_at:8796093022209 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a delay:5 deliver_at:5 2\r\nhi\r\n", "BAD_ARGUMENT"],
  ["PUB queue:a dedup_id: 2\r\nhi\r\n", "BAD_ARGUMENT"],
  [`PUB queue:a dedup_id:${"x".repeat(257)} 2\r\nhi\r\n`, "BAD_ARGUMENT"],
  ["DECLARE topic:ev.* retain_messages:5\n", "BAD_DESTINATION"],
  ["DECLARE topic:ev retain_messages:0\n", "BAD_ARGUMENT"],
  ["DECLARE topic:ev keep:5\n", "BAD_ARGUMENT"],
  ["SUB topic:ev durable:has/slash\n", "BAD_ARGUMENT"],
  ["SUB topic:ev durable_user:alice\n", "BAD_ARGUMENT"],
  ["SUB topic:ev durable:d durable_user:%E0%A4\n", "BAD_ARGUMENT"],
  ["SUB topic:ev durable:d durable_user:\n", "BAD_ARGUMENT"],
  ["SUB topic:ev start:yesterday\n", "BAD_ARGUMENT"],
  ["SUB topic:ev start:id:x\n", "BAD_ARGUMENT"],
  ["UNSUB a b\n", "BAD_ARGUMENT"],
  ["ACK\n", "BAD_ARGUMENT"],
  ["ACK 123\n", "BAD_ARGUMENT"],
  ["ACK msg_id:12x\n", "BAD_ARGUMENT"],
  ["ACK msg_id:99999999999999999\n", "BAD_ARGUMENT"],
  ["ACK msg_id:9007199254740992\n", "BAD_ARGUMENT"],
  ["ACK msg_id:1 msg_id:2x\n", "BAD_ARGUMENT"],
  ["ACK msg_id:1 msg_id:\n", "BAD_ARGUMENT"],
  ["ACK sub_id:c0\n", "BAD_ARGUMENT"],
  ["ACK upto:5\n", "BAD_ARGUMENT"],
  ["ACK sub_id:c0 upto:5 msg_id:6\n", "BAD_ARGUMENT"],
  ["ACK sub_id:c0 sub_id:c1\n", "BAD_ARGUMENT"],
  ["ACK upto:5 upto:6\n", "BAD_ARGUMENT"],
  ["ACK sub_id:c0 upto:x5\n", "BAD_ARGUMENT"],
  ["ACK sub_id:c0 upto:99999999999999999\n", "BAD_ARGUMENT"],
  ["ACK sub_id:c0 upto:9007199254740993\n", "BAD_ARGUMENT"],
  ["ACK sub_id: upto:5\n", "BAD_ARGUMENT"],
  [`ACK sub_id:${"s".repeat(300)} upto:5\n`, "BAD_ARGUMENT"],
  ["ACK sub_id:c0 msg_id:5\n", "BAD_ARGUMENT"],
  ["NACK msg_id:1 delay:-1\n", "BAD_ARGUMENT"],
  ["NACK msg_id:1 later:5\n", "BAD_ARGUMENT"],
  ["PING now\n", "BAD_ARGUMENT"],
  [`SUB topic:a ${"x:1 ".repeat(40)}\n`, "BAD_ARGUMENT"],
  [`PUB topic:a ${"priority:1 ".repeat(40)}2\r\nhi\r\n`, "BAD_ARGUMENT"],
  [`ACK ${"msg_id:1 ".repeat(257)}\n`, "BAD_ARGUMENT"],
  ['SUB topic:a filter:"a = 1\n', "BAD_ARGUMENT"],
  ['SUB topic:a filter:"a = 1"x\n', "BAD_ARGUMENT"],
  ['SUB topic:a filter:"a = \\n"\n', "BAD_ARGUMENT"],
  ['SUB topic:a filter:"a ="\n', "BAD_FILTER"],
  ["SUB topic:a filter:a=\n", "BAD_FILTER"],
  ['SUB topic:a filter:""\n', "BAD_FILTER"],
  [`SUB topic:a filter:"a = '${"x".repeat(1024)}'"\n`, "BAD_FILTER"],
  ['PUB topic:a filter:"a = 1" 2\r\nhi\r\n', "BAD_ARGUMENT"],
  ["BIND\n", "BAD_ARGUMENT"],
  ["BIND topic:a\n", "BAD_ARGUMENT"],
  ["BIND queue:a queue:b\n", "BAD_DESTINATION"],
  ["BIND topic:a topic:b\n", "BAD_DESTINATION"],
  ["BIND topic:a queue:b.*\n", "BAD_DESTINATION"],
  ["BIND topic:a..b queue:b\n", "BAD_DESTINATION"],
  ["BIND topic:a queue:b prefetch:1\n", "BAD_ARGUMENT"],
  ['BIND topic:a queue:b filter:"x = 1" filter:"y = 2"\n', "BAD_ARGUMENT"],
  ['BIND topic:a queue:b filter:"x ="\n', "BAD_FILTER"],
  ['UNBIND topic:a queue:b filter:"x = 1"\n', "BAD_ARGUMENT"],
];

/** Fatal bad input: an ERR with this code, then nothing more is parsed. */
const FATAL: [string, string][] = [
  ["PUB queue:a\r\nhi\r\n", "BAD_FRAME"],
  ["PUB queue:a x\r\nhi\r\n", "BAD_FRAME"],
  ["PUB queue:a -2\r\nhi\r\n", "BAD_FRAME"],
  ["PUB queue:a 2\r\nhiX\r\n", "BAD_FRAME"],
  ["PUB queue:a 2\r\nhi\rX", "BAD_FRAME"],
  ["PUB queue:a 1\r\nhi\r\n", "BAD_FRAME"],
  ["PUB queue:a 12345678901\r\n", "BAD_FRAME"],
  ["PUB queue:a 1048577\r\n", "PAYLOAD_TOO_LARGE"],
  [`PING${" ".repeat(CONTROL_LINE_BYTES_MAX)}\n`, "CONTROL_LINE_TOO_LONG"],
  ["X".repeat(CONTROL_LINE_BYTES_MAX + 2), "CONTROL_LINE_TOO_LONG"],
];

/** [SUB line, the selector it carries]: `filter:` quoting as docs/PROTOCOL.md says. */
const FILTERS: [string, string][] = [
  [`SUB topic:a filter:"region = 'eu'"\n`, "region = 'eu'"],
  [`SUB topic:a filter:"region = 'eu'" sub_id:x\n`, "region = 'eu'"],
  [`SUB topic:a sub_id:x\tfilter:"a   =\t'two  spaces'"\n`, "a   =\t'two  spaces'"],
  [`SUB topic:a filter:"s = '\\"q\\"' OR s = 'back\\\\slash'"\n`, `s = '"q"' OR s = 'back\\slash'`],
  ["SUB topic:a filter:priority>5\n", "priority>5"],
  [`SUB queue:q filter:"x IN ('a:b', 'c')"\n`, "x IN ('a:b', 'c')"],
  [`BIND topic:t.> queue:q filter:"region = 'eu'"\n`, "region = 'eu'"],
];

Deno.test("parser: filter values, quoted with spaces and escapes, at every split", () => {
  for (const [input, source] of FILTERS) {
    for (const chunks of splits(enc(input))) {
      const p = new Parser();
      const out: Frame[] = [];
      for (const c of chunks) p.push(c, out);
      assert.equal(out.length, 1, input);
      const f = out[0];
      assert.ok(f.op === "SUB" || f.op === "BIND", `${input}: ${JSON.stringify(f)}`);
      if (f.op === "BIND") {
        assert.equal(f.filter?.source, source, input);
        continue;
      }
      assert.equal(f.options.filter?.source, source, input);
      assert.equal(typeof f.options.filter?.match, "function");
    }
  }
  // A quoted filter that fills the control line still parses; one byte more is a framing error.
  const fill = (n: number) => `SUB topic:a filter:"a = '${"x".repeat(n)}'"`;
  const base = fill(0).length;
  const p = new Parser();
  const out: Frame[] = [];
  p.push(enc(fill(1000) + "\n"), out);
  assert.equal(out[0].op, "SUB");
  p.push(enc(fill(CONTROL_LINE_BYTES_MAX + 1 - base) + "\r\n"), out);
  assert.equal(out[1].op, "ERR");
  assert.equal((out[1] as { code: string }).code, "CONTROL_LINE_TOO_LONG");
});

/** Every way to cut `bytes`: whole, byte by byte, and in two at every offset. */
function* splits(bytes: Uint8Array): Generator<Uint8Array[]> {
  yield [bytes];
  yield Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  for (let i = 1; i < bytes.length; i++) yield [bytes.subarray(0, i), bytes.subarray(i)];
}

Deno.test("parser: valid frames, whole, byte by byte and split at every offset", () => {
  for (const [input, expected] of VALID) {
    for (const chunks of splits(enc(input))) {
      assert.deepEqual(
        parseChunks(chunks),
        expected,
        `${JSON.stringify(input)} in ${chunks.length} chunks`,
      );
    }
  }
});

Deno.test("parser: non-fatal errors leave the parser usable, at every split", () => {
  for (const [input, code] of BAD) {
    for (const chunks of splits(enc(input + "PING\r\n"))) {
      const frames = parseChunks(chunks) as Frame[];
      assert.equal(frames.length, 2, `${JSON.stringify(input)}: ${JSON.stringify(frames)}`);
      assert.deepEqual({ ...frames[0], message: "" }, {
        op: "ERR",
        code,
        message: "",
        fatal: false,
      }, input);
      assert.deepEqual(frames[1], { op: "PING" });
    }
  }
});

Deno.test("parser: fatal errors stop the parser, at every split", () => {
  for (const [input, code] of FATAL) {
    const bytes = enc(input + "PING\r\nPING\r\n");
    const cuts = bytes.length > 600
      ? [[bytes], [bytes.subarray(0, 100), bytes.subarray(100)]]
      : splits(bytes);
    for (const chunks of cuts) {
      const frames = parseChunks(chunks) as Frame[];
      assert.equal(
        frames.length,
        1,
        `${JSON.stringify(input.slice(0, 40))}: ${JSON.stringify(frames)}`,
      );
      assert.equal(frames[0].op, "ERR");
      if (frames[0].op === "ERR") {
        assert.equal(frames[0].code, code);
        assert.equal(frames[0].fatal, true);
      }
    }
  }
});

Deno.test("parser: a control line of exactly the limit passes, one byte more fails", () => {
  const head = `PUB queue:${"a".repeat(200)} correlation_id:${"c".repeat(200)}`;
  const line = head + " ".repeat(CONTROL_LINE_BYTES_MAX - head.length - 2) + " 2";
  assert.equal(line.length, CONTROL_LINE_BYTES_MAX);
  const ok = parseChunks([enc(line + "\r\nhi\r\n")]) as Frame[];
  assert.equal(ok[0].op, "PUB");
  const bad = parseChunks([enc(" " + line + "\r\nhi\r\n")]) as Frame[];
  assert.equal(bad[0].op, "ERR");
});

Deno.test("parser: a split line's buffer fits the line, and a long one is not kept", () => {
  const p = new Parser();
  const out: Frame[] = [];
  const sub = enc("SUB topic:a.b sub_id:s1\r\n");
  p.push(sub.subarray(0, 10), out);
  assert.ok(p.heldBytes > 0 && p.heldBytes <= 64, `a short split line: ${p.heldBytes} bytes`);
  p.push(sub.subarray(10), out);
  assert.equal(out.length, 1);
  assert.ok(p.heldBytes <= 64, "a small buffer is kept for the next split");
  // A long split line takes a large buffer only while it is read.
  const long = enc(`SUB topic:a${" ".repeat(3000)}sub_id:s2\r\n`);
  p.push(long.subarray(0, 1000), out);
  assert.ok(p.heldBytes >= 1000);
  p.push(long.subarray(1000), out);
  assert.equal(out.length, 2);
  assert.equal(out[1].op, "SUB");
  assert.equal(p.heldBytes, 0, "an idle connection keeps no 4 KiB line buffer");
  // A split payload is held until it is complete, then let go.
  p.push(enc("PUB queue:q 2000\r\n" + "y".repeat(500)), out);
  assert.ok(p.heldBytes >= 2000);
  p.push(enc("y".repeat(1500) + "\r\n"), out);
  assert.equal(out.length, 3);
  assert.equal(p.heldBytes, 0);
});

Deno.test("parser: the payload limit is configurable and checked before allocating", () => {
  assert.equal(
    (parseChunks([enc("PUB queue:a 10\r\n0123456789\r\n")], 10) as Frame[])[0].op,
    "PUB",
  );
  const frames = parseChunks([enc("PUB queue:a 11\r\n")], 10) as Frame[];
  assert.deepEqual(frames.map((f) => f.op === "ERR" && f.code), ["PAYLOAD_TOO_LARGE"]);
});

Deno.test("parser: all valid frames concatenated, in seeded random chunks", () => {
  const all = enc(VALID.map(([i]) => i).join(""));
  const expected = VALID.flatMap(([, e]) => e);
  for (let seed = 1; seed <= 200; seed++) {
    const r = rng(seed);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < all.length;) {
      const n = 1 + Math.floor(r() * 64);
      chunks.push(all.slice(i, i + n)); // slice: chunks are independent buffers, as from a socket
      i += n;
    }
    assert.deepEqual(parseChunks(chunks), expected, `seed ${seed}`);
  }
});

Deno.test("parser: payloads that arrive whole are views of the chunk (no copy)", () => {
  const chunk = enc("PUB topic:a 5\r\nhello\r\nPUB topic:a 5\r\nworld\r\n");
  const out: Frame[] = [];
  new Parser().push(chunk, out);
  for (const f of out) {
    assert.equal(f.op, "PUB");
    if (f.op === "PUB") assert.equal(f.payload.buffer, chunk.buffer);
  }
});

Deno.test("parser: a large payload split in many chunks is assembled once", () => {
  const body = "x".repeat(100_000);
  const bytes = enc(`PUB queue:big ${body.length}\r\n${body}\r\n`);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 1000) chunks.push(bytes.slice(i, i + 1000));
  const frames = parseChunks(chunks) as { payload: string }[];
  assert.equal(frames.length, 1);
  assert.equal(frames[0].payload, body);
});

Deno.test("parser: random garbage never throws", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const p = new Parser({ payloadBytesMax: 1024 });
    const out: Frame[] = [];
    for (let k = 0; k < 20 && !p.dead; k++) {
      const n = Math.floor(r() * 200);
      const chunk = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        // Bias towards protocol bytes so garbage reaches deep states.
        const pick = r();
        chunk[i] = pick < 0.1
          ? 10
          : pick < 0.15
          ? 13
          : pick < 0.3
          ? 32
          : pick < 0.5
          ? "PUB0123:".charCodeAt(Math.floor(r() * 8))
          : Math.floor(r() * 256);
      }
      p.push(chunk, out);
    }
    for (const f of out) assert.ok(typeof f.op === "string");
  }
});

Deno.test("parser: parsers share their token scratch, and a line split across chunks survives another parser's lines in between", () => {
  for (let i = 0; i < VALID.length; i++) {
    const [input, want] = VALID[i];
    const [other, otherWant] = VALID[(i + 1) % VALID.length];
    const bytes = enc(input);
    for (let cut = 1; cut < bytes.length; cut++) {
      const a = new Parser();
      const b = new Parser();
      const outA: Frame[] = [];
      const outB: Frame[] = [];
      a.push(bytes.subarray(0, cut), outA);
      b.push(enc(other), outB); // tokenizes whole lines of its own meanwhile
      a.push(bytes.subarray(cut), outA);
      assert.deepEqual(plain(outA), want, `${JSON.stringify(input)} cut at ${cut}`);
      assert.deepEqual(plain(outB), otherWant);
    }
  }
});
