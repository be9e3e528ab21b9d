/**
 * The parser reads a well-formed ACK line in one scan (`ackIds`) and hands
 * anything else to the general path: lines at each edge of that split give
 * the documented frames and errors, words included, parsed whole and one
 * byte at a time.
 */
import assert from "node:assert/strict";
import { ACK_IDS_MAX } from "../../src/config/mod.ts";
import { type Frame, Parser } from "../../src/protocol/mod.ts";
import { plain } from "./plain.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);
const line = (xs: (number | string)[], sep = " ") =>
  `ACK${sep}${xs.map((x) => `msg_id:${x}`).join(sep)}\r\n`;

function parse(text: string, bytewise: boolean): unknown[] {
  const p = new Parser();
  const out: Frame[] = [];
  const b = enc(text);
  if (!bytewise) p.push(b, out);
  else for (let i = 0; i < b.length; i++) p.push(b.subarray(i, i + 1), out);
  return plain(out);
}

const ack = (xs: number[]) => [{ op: "ACK", ids: xs }];
const bad = (message: string) => [{ op: "ERR", code: "BAD_ARGUMENT", message, fatal: false }];

const CASES: [string, unknown[]][] = [
  [line([1838892215346176]), ack([1838892215346176])],
  [line(ids(ACK_IDS_MAX)), ack(ids(ACK_IDS_MAX))],
  ["ack\tmsg_id:5\t msg_id:6 \r\n", ack([5, 6])],
  ["Ack msg_id:7\n", ack([7])],
  ["  ACK msg_id:8\n", ack([8])], // leading blanks: the general path, same frame
  [line(["0000000000000009"]), ack([9])], // 16 digits
  [line([Number.MAX_SAFE_INTEGER]), ack([Number.MAX_SAFE_INTEGER])],
  [line([1, 2]) + line([3]), [...ack([1, 2]), ...ack([3])]],
  // 16 digits are read four at a time; the other lengths byte by byte.
  [line([1838892215346176, 1838892215346177], "\t"), ack([1838892215346176, 1838892215346177])],
  [line([9007199254740990, 1000000000000000]), ack([9007199254740990, 1e15])],
  [line([123456789012345, 1234567890123456, 1]), ack([123456789012345, 1234567890123456, 1])],
  ["ACK msg_id:1838892215346176", []], // no line end yet: nothing
  ["ACK msg_id:1838892215346176 \r\n", ack([1838892215346176])],
  // Each of these leaves the scan; the general path words the error.
  ["ACK\r\n", bad("ACK needs msg_id:<id>")],
  ["ACK \t \r\n", bad("ACK needs msg_id:<id>")],
  [line(ids(ACK_IDS_MAX + 1)), bad("more than 32 options on one line")],
  [line([1, "2x", 3]), bad('expected msg_id:<id>, got "msg_id:2x"')],
  [line([1, ""]), bad('expected msg_id:<id>, got "msg_id:"')],
  [line(["00000000000000009"]), bad('expected msg_id:<id>, got "msg_id:00000000000000009"')],
  [line([2 ** 53]), bad(`expected msg_id:<id>, got "msg_id:${2 ** 53}"`)],
  [line(["9999999999999999"]), bad('expected msg_id:<id>, got "msg_id:9999999999999999"')],
  // A byte just outside 0-9 (':' and '/' border the digits) in each group of four.
  ...["183:892215346176", "1838/92215346176", "18388922:5346176", "183889221534617/"].map((
    x,
  ): [string, unknown[]] => [line([1, x]), bad(`expected msg_id:<id>, got "msg_id:${x}"`)]),
  [line(["1838892215346176x"]), bad('expected msg_id:<id>, got "msg_id:1838892215346176x"')],
  [
    "ACK msg_id:18388922\xb5346176\r\n",
    bad('expected msg_id:<id>, got "msg_id:18388922\\xc2\\xb5346176"'),
  ],
  [
    "ACK msg_id:1838892215346176msg_id:1\r\n",
    bad(
      'expected msg_id:<id>, got "msg_id:1838892215346176msg_id:1"',
    ),
  ],
  ["ACK msg_ix:1838892215346176\r\n", bad('expected msg_id:<id>, got "msg_ix:1838892215346176"')],
  ["ACK MSG_ID:1\r\n", bad('expected msg_id:<id>, got "MSG_ID:1"')],
  ["ACK msg_id:1 id:2\r\n", bad('expected msg_id:<id>, got "id:2"')],
  ["ACKmsg_id:1\r\n", [{
    op: "ERR",
    code: "UNKNOWN_COMMAND",
    message: 'unknown command "ACKMSG_ID:1"',
    fatal: false,
  }]],
];

Deno.test("parser: ACK lines in one scan or by the general path, whole and byte by byte", () => {
  for (const [text, frames] of CASES) {
    assert.deepEqual(parse(text, false), frames, text);
    assert.deepEqual(parse(text, true), frames, text);
  }
});

Deno.test("parser: an ACK line read four digits at a time from a chunk at any offset", () => {
  const text = line([1838892215346176, 1838892215346177, 42]);
  for (let at = 0; at < 8; at++) {
    const b = new Uint8Array(at + text.length + 3);
    b.set(enc(text), at);
    const p = new Parser();
    const out: Frame[] = [];
    p.push(b.subarray(at, at + text.length), out);
    assert.deepEqual(plain(out), ack([1838892215346176, 1838892215346177, 42]), `offset ${at}`);
  }
});
