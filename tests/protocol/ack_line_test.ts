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
  // Each of these leaves the scan; the general path words the error.
  ["ACK\r\n", bad("ACK needs msg_id:<id>")],
  ["ACK \t \r\n", bad("ACK needs msg_id:<id>")],
  [line(ids(ACK_IDS_MAX + 1)), bad("more than 32 options on one line")],
  [line([1, "2x", 3]), bad('expected msg_id:<id>, got "msg_id:2x"')],
  [line([1, ""]), bad('expected msg_id:<id>, got "msg_id:"')],
  [line(["00000000000000009"]), bad('expected msg_id:<id>, got "msg_id:00000000000000009"')],
  [line([2 ** 53]), bad(`expected msg_id:<id>, got "msg_id:${2 ** 53}"`)],
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
