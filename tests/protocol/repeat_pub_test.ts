/**
 * The parser's fast path for a publisher repeating its destination
 * (`Parser.#repeatPub`): streams with runs of such PUBs and every variant
 * that must leave the fast path give the same frames parsed whole (fast path
 * taken), one byte at a time (never taken: no line is whole) and in seeded
 * random chunks.
 */
import assert from "node:assert/strict";
import { type Frame, Parser } from "../../src/protocol/mod.ts";
import { rng } from "../helpers.ts";
import { plain } from "./plain.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/**
 * The frames of `bytes` pushed in the pieces `cut` gives. `runs`: with
 * `PubRun` frames, each expanded to its single PUBs right after its push
 * (its offsets are the parser's until the next push).
 */
function parse(bytes: Uint8Array, cut: (rest: number) => number, runs = false): unknown[] {
  const p = new Parser({ payloadBytesMax: 64, runs });
  const out: Frame[] = [];
  for (let off = 0; off < bytes.length;) {
    const n = Math.min(bytes.length - off, cut(bytes.length - off));
    const frames: Frame[] = [];
    p.push(bytes.subarray(off, off + n), frames);
    for (const f of frames) {
      if (f.op !== "PUBS") out.push(f);
      else {
        assert.ok(f.count >= 2, "a run has two or more PUBs");
        out.push(...f.frames());
      }
    }
    off += n;
  }
  return plain(out);
}

/** Runs of a repeated destination and every variant that must leave the fast path. */
const COMMON = [
  "PUB topic:a 3\r\nabc\r\n",
  "PUB topic:a 3\r\nxyz\r\n", // repeat
  "PUB topic:a 0\r\n\r\n", // empty payload
  "PUB topic:a 5\nhello\n", // LF only
  "PUB topic:a 005\r\nzeros\r\n", // leading zeros
  "pub topic:a 2\r\nlc\r\n", // lower case verb
  "PUB  topic:a 2\r\nsp\r\n", // two spaces
  "PUB topic:a\t2\r\ntb\r\n", // tab
  "PUB topic:a priority:3 2\r\nop\r\n", // an option
  "PUB topic:ab 2\r\npx\r\n", // the last destination is a prefix
  "PUB topic:ab 16\r\nPUB topic:ab 2\r\n\r\n", // a payload that looks like a PUB
  "PUB topic:aB 2\r\nk2\r\n", // differs in the last of two whole words
  "PUB topic:abcdefghi 2\r\nw1\r\n",
  "PUB topic:abcdefghi 2\r\nw2\r\n",
  "PUB topic:abXdefghi 2\r\nw3\r\n", // differs inside the second word
  "PUB topic:abcdefghX 2\r\nw4\r\n", // differs in the byte after the words
  "PUB topic:abcdefghX 2\r\nw5\r\n",
  `PUB topic:${"d".repeat(300)} 1\r\nx\r\n`, // a destination over the limit, twice:
  `PUB topic:${"d".repeat(300)} 1\r\nx\r\n`, // an error each time, never the fast path
  "PUB topic:ab 2\r\nok\r\n",
].join("");

/** Each stream ends at a different fatal error, reached after repeated PUBs. */
const STREAMS: [string, string][] = [
  [COMMON + "PUB topic:ab 2\r\nbad\r\n", "BAD_FRAME"], // the payload's end is not CRLF
  [COMMON + "PUB topic:ab 12345678901\r\nx\r\n", "BAD_FRAME"], // 11 digits: no size
  [COMMON + "PUB topic:abx2\r\nxx\r\n", "BAD_FRAME"], // the last destination, no space: no size
  [COMMON + "PUB topic:ab 65\r\n" + "y".repeat(65) + "\r\n", "PAYLOAD_TOO_LARGE"],
];

Deno.test("repeat PUB fast path: the same frames whole, byte by byte and in random chunks", () => {
  const random = rng(15);
  for (const [text, fatal] of STREAMS) {
    const bytes = enc(text);
    const whole = parse(bytes, (r) => r);
    assert.deepEqual(parse(bytes, () => 1), whole);
    for (let run = 0; run < 50; run++) {
      assert.deepEqual(parse(bytes, () => 1 + Math.floor(random() * 40)), whole);
    }
    assert.deepEqual(whole.slice(0, 3), [
      { op: "PUB", dest: "topic:a", payload: "abc", options: undefined },
      { op: "PUB", dest: "topic:a", payload: "xyz", options: undefined },
      { op: "PUB", dest: "topic:a", payload: "", options: undefined },
    ]);
    const codes = whole.map((f) => (f as { code?: string }).code ?? "PUB");
    assert.deepEqual(codes.slice(-5), ["PUB", "BAD_DESTINATION", "BAD_DESTINATION", "PUB", fatal]);
  }
});

Deno.test("repeat PUB runs: the same PUBs as single frames, whole and in random chunks", () => {
  const random = rng(16);
  for (const [text] of STREAMS) {
    const bytes = enc(text);
    const whole = parse(bytes, (r) => r);
    assert.deepEqual(parse(bytes, (r) => r, true), whole);
    assert.deepEqual(parse(bytes, () => 1, true), whole);
    for (let run = 0; run < 50; run++) {
      assert.deepEqual(parse(bytes, () => 1 + Math.floor(random() * 40), true), whole);
    }
  }
});

Deno.test("repeat PUB runs: one frame per run, offsets kept across the scratch's growth", () => {
  // 1000 PUBs (more than the offsets the parser starts with), an option, 3 more: two runs.
  const pubs = (n: number, from: number) =>
    Array.from({ length: n }, (_, k) => `PUB topic:r ${String(from + k).length}\r\n${from + k}\r\n`)
      .join("");
  const text = "PUB topic:r 1\r\nx\r\n" + pubs(999, 1) + "PUB topic:r priority:1 1\r\ny\r\n" +
    pubs(3, 1000);
  const p = new Parser({ runs: true });
  const out: Frame[] = [];
  p.push(enc(text), out);
  // The first PUB takes the general path (no destination yet), then a run of 999;
  // the option takes the general path, and the next three are a run again.
  assert.deepEqual(out.map((f) => f.op === "PUBS" ? `PUBS ${f.count}` : f.op), [
    "PUB",
    "PUBS 999",
    "PUB",
    "PUBS 3",
  ]);
  const run = out[1];
  assert.ok(run.op === "PUBS");
  assert.equal(run.bytes, [...Array(999)].reduce((n, _, k) => n + String(k + 1).length, 0));
  assert.equal(run.lenMax, 3);
  const payloads = run.frames().map((f) => new TextDecoder().decode(f.payload));
  assert.deepEqual(payloads, Array.from({ length: 999 }, (_, k) => String(k + 1)));
  const last = out[3];
  assert.ok(last.op === "PUBS");
  assert.deepEqual(last.frames().map((f) => new TextDecoder().decode(f.payload)), [
    "1000",
    "1001",
    "1002",
  ]);
});
