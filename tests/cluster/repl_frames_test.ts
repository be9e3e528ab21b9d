/**
 * Replication frames: every frame parses back whole however the bytes are
 * split (byte by byte included), a message keeps every field through the
 * log format's record, and bad input is a `ReplProtocolError` before
 * anything large is buffered.
 */
import assert from "node:assert/strict";
import { ReplParser, ReplProtocolError } from "../../src/cluster/mod.ts";
import { FrameWriter, type ReplFrame, replLine } from "../../src/cluster/repl_frames.ts";
import { CLUSTER_REPL_LINE_BYTES_MAX } from "../../src/config/mod.ts";
import { format, Message, MessageState } from "../../src/storage/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function message(id: number): Message {
  const m = new Message(
    id,
    "queue:jobs",
    enc.encode("k: v\r\n\r\nhello\r\nworld"),
    8,
    7,
    60_000,
    1_800_000_060_000,
    "corr-1",
    "queue:replies",
    "text/plain",
    1_800_000_000_000,
  );
  m.state = MessageState.DELAYED;
  m.dueAt = 1_800_000_030_000;
  return m;
}

function frames(): Uint8Array {
  const w = new FrameWriter();
  w.line("REPL", "n1");
  w.line("SNAP", "queue:jobs", 7);
  w.pub("queue:jobs", 7, 0, message(1_800_000_000_000 * 1024));
  w.line("DONE", "queue:jobs", 7, 41);
  const withDedup = message(1_800_000_000_000 * 1024 + 1);
  withDedup.setDedupId("order-7");
  w.pub("queue:jobs", 7, 42, withDedup);
  w.line("DEL", "queue:jobs", 7, 43, 1_800_000_000_000 * 1024);
  w.line("DUE", "queue:jobs", 7, 44, 1_800_000_000_000 * 1024 + 1, 1_800_000_090_000);
  w.line("FETCH", "queue:jobs", 9);
  w.line("PULL", "queue:jobs", 9);
  const { bytes, frames } = w.take();
  assert.equal(frames, 9);
  const tail = [
    replLine("ACK", 5),
    replLine("FENCED", "queue:jobs", 9),
    replLine("HAVE", "queue:jobs", 9, 7, 43),
  ];
  const out = new Uint8Array(bytes.length + tail.reduce((n, p) => n + p.length, 0));
  out.set(bytes, 0);
  let at = bytes.length;
  for (const p of tail) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One PUB frame of `msg`. */
function pubFrame(msg: Message): Uint8Array {
  const w = new FrameWriter();
  w.pub("queue:jobs", 7, 1, msg);
  return w.take().bytes;
}

function summary(fs: ReplFrame[]): string[] {
  return fs.map((f) => {
    if (f.op !== "PUB") return JSON.stringify(f);
    const m = f.msg;
    return [
      f.op,
      f.queue,
      f.epoch,
      f.lsn,
      m.id,
      m.priority,
      m.ttlMs,
      m.expiresAt,
      m.hdrBytes,
      m.correlationId,
      m.replyTo,
      m.contentType,
      m.state,
      m.dueAt,
      dec.decode(m.payload),
      m.dedupId ?? "-",
    ].join("|");
  });
}

Deno.test("repl frames: parsed whole at any split, every message field kept", () => {
  const bytes = frames();
  const whole = summary(new ReplParser().push(bytes));
  assert.equal(whole.length, 12);
  assert.equal(
    whole[4],
    `PUB|queue:jobs|7|42|${1_800_000_000_000 * 1024 + 1}|7|60000|1800000060000|8|corr-1|` +
      `queue:replies|text/plain|${MessageState.DELAYED}|1800000030000|k: v\r\n\r\nhello\r\nworld|` +
      "order-7",
  );
  assert.ok(whole[2].endsWith("|-"), "no dedup id: none parsed");
  assert.equal(
    whole[6],
    JSON.stringify({
      op: "DUE",
      queue: "queue:jobs",
      epoch: 7,
      lsn: 44,
      id: 1_800_000_000_000 * 1024 + 1,
      dueAt: 1_800_000_090_000,
    }),
  );
  assert.equal(whole[9], JSON.stringify({ op: "ACK", frames: 5 }));
  for (let cut = 1; cut < bytes.length; cut++) {
    const p = new ReplParser();
    const got = summary([...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))]);
    assert.deepEqual(got, whole, `split at ${cut}`);
  }
  const p = new ReplParser();
  const got: ReplFrame[] = [];
  for (let i = 0; i < bytes.length; i++) got.push(...p.push(bytes.subarray(i, i + 1)));
  assert.deepEqual(summary(got), whole, "byte by byte");
});

Deno.test("repl frames: a PUB with a due time says delayed until it; the message is left as it was", () => {
  const m = message(1_800_000_000_000 * 1024);
  m.state = MessageState.READY;
  m.dueAt = 0;
  const w = new FrameWriter();
  w.pub("queue:jobs", 7, 0, m, 1_800_000_050_000);
  const [f] = new ReplParser().push(w.take().bytes);
  assert.equal(f.op, "PUB");
  if (f.op !== "PUB") return;
  assert.deepEqual([f.msg.state, f.msg.dueAt], [MessageState.DELAYED, 1_800_000_050_000]);
  assert.deepEqual([m.state, m.dueAt], [MessageState.READY, 0]);
});

Deno.test("repl frames: bad input is a ReplProtocolError", () => {
  const bad = (s: string | Uint8Array) =>
    assert.throws(
      () => new ReplParser().push(typeof s === "string" ? enc.encode(s) : s),
      ReplProtocolError,
      JSON.stringify(typeof s === "string" ? s : "bytes"),
    );
  // A declared topic's log and its durables' positions are replicated as a queue is.
  for (const q of ["topic:orders", "durables:topic:orders"]) {
    assert.deepEqual(new ReplParser().push(enc.encode(`DEL ${q} 7 43 1\r\n`)), [
      { op: "DEL", queue: q, epoch: 7, lsn: 43, id: 1 },
    ]);
  }
  bad("HELLO n1\r\n");
  bad("REPL bad node\r\n");
  bad("DEL queue:jobs 7 43\r\n"); // an argument missing
  bad("DUE queue:jobs 7 43 1\r\n"); // no due time
  bad("DEL other:jobs 7 43 1\r\n"); // not a queue or a declared topic's log
  bad("DEL durables:queue:jobs 7 43 1\r\n"); // durables are a topic's
  bad("DEL queue:jo*bs 7 43 1\r\n");
  bad("ACK -1\r\n");
  bad("ACK 99999999999999999\r\n"); // past a safe integer
  bad("PUB queue:jobs 7 1 99999999999\r\n"); // over the frame limit
  // A PUB's COPY may be followed by its own DEDUP record only.
  for (const [type, id] of [["dedup", 2], ["copy", 1]] as const) {
    const r = new format.RecordWriter();
    r.message(format.RecordType.COPY, message(1));
    if (type === "dedup") r.dedup(id, "order-7");
    else r.message(format.RecordType.COPY, message(id));
    const rec = r.bytes();
    const f = new Uint8Array([
      ...enc.encode(`PUB queue:jobs 7 1 ${rec.length}\r\n`),
      ...rec,
      13,
      10,
    ]);
    bad(f);
  }
  bad("x".repeat(CLUSTER_REPL_LINE_BYTES_MAX + 1)); // a line that never ends
  // A record whose checksum does not match.
  const ok = pubFrame(message(5));
  const flipped = ok.slice();
  flipped[flipped.length - 3] ^= 1;
  bad(flipped);
  // The record must be followed by CRLF.
  const noEnd = ok.slice();
  noEnd[noEnd.length - 1] = 0x41;
  bad(noEnd);
  // A record of another type (a REMOVE) is not a message.
  const head = enc.encode("PUB queue:jobs 7 1 18\r\n");
  const rec = new Uint8Array(18);
  const v = new DataView(rec.buffer);
  v.setUint32(0, 10, true);
  rec[8] = 4;
  bad(new Uint8Array([...head, ...rec, 13, 10]));
});
