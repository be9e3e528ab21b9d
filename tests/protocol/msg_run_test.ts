/**
 * `MsgRun`: a run encoded once and written with each subscriber's head is,
 * byte for byte, the MSG frames docs/PROTOCOL.md gives for each message
 * (`MSG <dest> sub_id:<sid> msg_id:<id> <size>\r\n<payload>\r\n`), whatever
 * the heads (same length: patched; another length: written directly), the
 * payload sizes and the ids; `bytesFor` gives their exact size before they
 * are encoded; a run over `FANOUT_RUN_BYTES_MAX` is taken in pieces.
 */
import assert from "node:assert/strict";
import { FANOUT_RUN_BYTES_MAX } from "../../src/config/mod.ts";
import { msgHead, MsgRun } from "../../src/protocol/mod.ts";
import { copyRange } from "../../src/runtime/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A chunk of payloads and their `PubRun`-style offsets (with a gap between payloads). */
function payloads(texts: string[]): { buf: Uint8Array; offs: Int32Array } {
  const offs = new Int32Array(2 * texts.length);
  let s = "";
  texts.forEach((t, k) => {
    s += "PUB x 1\r\n";
    offs[2 * k] = s.length;
    offs[2 * k + 1] = t.length;
    s += `${t}\r\n`;
  });
  return { buf: enc.encode(s), offs };
}

/** The frames as the protocol spells them. */
function expected(dest: string, sid: string, firstId: number, texts: string[]): string {
  return texts.map((t, i) =>
    `MSG ${dest} sub_id:${sid} msg_id:${firstId + i} ${t.length}\r\n${t}\r\n`
  )
    .join("");
}

/** `run` written with `head` into a fresh buffer, at an offset, as text. */
function written(run: MsgRun, head: Uint8Array): string {
  const out = new Uint8Array(run.bytesFor(head) + 10);
  const end = run.writeTo(out, 7, head);
  assert.equal(end, 7 + run.bytesFor(head), "bytesFor is what writeTo writes");
  return dec.decode(out.subarray(7, end));
}

/** Each way a run is written: its name, payload padding, subscribers. */
const MODES: [string, number, number][] = [
  ["encoded once, patched", 0, 5],
  ["written to each: large payloads", 2000, 5],
  ["written to each: one subscriber", 0, 1],
];
for (const [what, pad, subscribers] of MODES) {
  Deno.test(`MsgRun: each subscriber's frames are the protocol's, ${what}`, () => {
    const texts = ["a", "", "hello", "x".repeat(63), "y".repeat(64), "z".repeat(300), "end"]
      .map((t) => t.padEnd(pad, "p"));
    const { buf, offs } = payloads(["skipped", ...texts]);
    const run = new MsgRun(copyRange);
    const dest = "topic:t.one";
    const heads = ["s0", "s1", "s9", "long-sid", "s2"].map((sid) => ({
      sid,
      head: msgHead(dest, sid),
    }));
    // Ids crossing a decimal digit (99999998 .. 100000004): the tail's count-up carries.
    const first = 99_999_998;
    run.source(buf, offs, 1, texts.length + 1);
    const headMax = Math.max(...heads.map((h) => h.head.length));
    assert.equal(run.measure(headMax, first), texts.length);
    // Measured before anything is encoded: what each head's frames will take, exactly.
    const sizes = heads.map((
      { sid, head },
    ) => [run.bytesFor(head), expected(dest, sid, first, texts).length]);
    for (const [measured, want] of sizes) assert.equal(measured, want);
    run.encode(heads[0].head, subscribers);
    assert.equal(run.count, texts.length);
    assert.equal(run.firstId, first);
    assert.equal(run.payloadBytes, texts.reduce((n, t) => n + t.length, 0));
    for (const { sid, head } of heads) {
      assert.equal(written(run, head), expected(dest, sid, first, texts), `sid ${sid}`);
    }
    run.release();
  });
}

for (const [size, subscribers] of [[16, 4], [16, 1], [4096, 4]]) {
  Deno.test(`MsgRun: a run over FANOUT_RUN_BYTES_MAX is taken in pieces that each fit (${size} B to ${subscribers})`, () => {
    const n = Math.ceil(FANOUT_RUN_BYTES_MAX / size) + 10;
    const texts = [...Array(n).keys()].map((i) => String(i).padStart(size, "p"));
    const { buf, offs } = payloads(texts);
    const run = new MsgRun(copyRange);
    const head = msgHead("topic:big", "s0");
    let from = 0;
    let id = 1_830_000_000_000_000;
    let all = "";
    const pieces: number[] = [];
    while (from < n) {
      run.source(buf, offs, from, n);
      const k = run.measure(head.length, id);
      run.encode(head, subscribers);
      assert.ok(k > 0, "each piece holds at least one message");
      assert.ok(run.bytesFor(head) <= FANOUT_RUN_BYTES_MAX);
      all += written(run, head);
      pieces.push(k);
      from += k;
      id += k;
    }
    assert.ok(pieces.length >= 2, `pieces ${pieces}`);
    assert.equal(all, expected("topic:big", "s0", 1_830_000_000_000_000, texts));
  });
}

Deno.test("MsgRun: nothing is encoded when not one message fits", () => {
  const { buf, offs } = payloads(["q".repeat(FANOUT_RUN_BYTES_MAX)]);
  const run = new MsgRun(copyRange);
  run.source(buf, offs, 0, 1);
  const head = msgHead("topic:huge", "s0");
  assert.equal(run.measure(head.length, 1), 0);
  assert.equal(run.count, 0);
});

Deno.test("MsgRun: bytesFor counts the ids' digits exactly across powers of ten", () => {
  const texts = [...Array(30).keys()].map((i) => "x".repeat(i * 7));
  const { buf, offs } = payloads(texts);
  const run = new MsgRun(copyRange);
  const head = msgHead("topic:d", "s0");
  for (const first of [1, 5, 9_999_999_999_990, 999_999_999_999_985, 99_999_999]) {
    run.source(buf, offs, 0, texts.length);
    assert.equal(run.measure(head.length, first), texts.length);
    assert.equal(
      run.bytesFor(head),
      expected("topic:d", "s0", first, texts).length,
      `from ${first}`,
    );
  }
});

Deno.test("MsgRun: bytesFor counts each size's digits (1 to 10 of them)", () => {
  const sizes = [0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000, 654321];
  const texts = sizes.map((n) => "s".repeat(n));
  const { buf, offs } = payloads(texts);
  const run = new MsgRun(copyRange);
  const head = msgHead("topic:z", "s0");
  run.source(buf, offs, 0, texts.length);
  assert.equal(run.measure(head.length, 7), texts.length);
  assert.equal(run.bytesFor(head), expected("topic:z", "s0", 7, texts).length);
});

Deno.test("MsgRun: frames encoded once with a short head are written with a longer one, and the short ones still copied", () => {
  // 16 B payloads, as many as make about 64 KiB of frames with the short head: the long head's
  // frames are longer than that.
  const short = msgHead("topic:i", "s0");
  const long = msgHead("topic:i", "a-much-longer-sid-than-s0");
  const texts = [...Array(1170).keys()].map((i) => String(i).padStart(16, "p"));
  const { buf, offs } = payloads(texts);
  const run = new MsgRun(copyRange);
  run.source(buf, offs, 0, texts.length);
  assert.equal(run.measure(long.length, 1), texts.length);
  assert.ok(run.bytesFor(short) <= 64 * 1024 && run.bytesFor(long) > 64 * 1024);
  run.encode(short, 3);
  assert.equal(written(run, short), expected("topic:i", "s0", 1, texts));
  assert.equal(written(run, long), expected("topic:i", "a-much-longer-sid-than-s0", 1, texts));
  assert.equal(written(run, short), expected("topic:i", "s0", 1, texts));
});
