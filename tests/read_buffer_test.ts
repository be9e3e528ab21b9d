/**
 * `ReadBuffer` (src/runtime/read_buffer.ts), the read buffer policy of Deno's
 * `Conn.read` and Bun's reads of a bulk sender's socket, on its own: what
 * buffer each read gets, and when it grows, stays and shrinks.
 */
import assert from "node:assert/strict";
import { CONN_READ_BYTES_MIN } from "../src/config/mod.ts";
import { ReadBuffer, ReadBufferPool } from "../src/runtime/read_buffer.ts";

const MAX = 64 * 1024;

Deno.test("ReadBuffer: full reads double it up to its max; a read of 1/16 or more keeps it", () => {
  const rb = new ReadBuffer(MAX);
  let chunk = rb.got(rb.take(undefined).length);
  const sizes = [chunk.length];
  for (let i = 0; i < 20 && chunk.length < MAX; i++) {
    const buf = rb.take(chunk);
    chunk = rb.got(buf.length);
    sizes.push(chunk.length);
  }
  assert.equal(sizes[0], CONN_READ_BYTES_MIN);
  assert.equal(sizes.at(-1), MAX);
  const full = rb.take(chunk);
  assert.equal(full.length, MAX);
  // A read of a sixteenth (4 KiB of 64) keeps the same buffer for the next read.
  const part = rb.got(MAX / 16);
  assert.equal(part.buffer, full.buffer);
  assert.equal(rb.take(part), full);
});

Deno.test("ReadBuffer: a read under 1/16 shrinks the next buffer; a kept chunk is never given again", () => {
  const rb = new ReadBuffer(MAX);
  let buf = rb.take(undefined);
  for (let i = 0; i < 20 && buf.length < MAX; i++) buf = rb.take(rb.got(buf.length));
  assert.equal(buf.length, MAX);
  const small = rb.got(100);
  const next = rb.take(small);
  assert.equal(next.length, CONN_READ_BYTES_MIN, "twice 100 B, at least the minimum");
  assert.notEqual(next.buffer, buf.buffer);
  // Not handed back (the caller kept it): a new buffer, even at the same size.
  const kept = rb.got(200);
  assert.notEqual(rb.take(undefined).buffer, kept.buffer);
});

Deno.test("ReadBuffer: a read that read nothing (unused) gives the same buffer without free", () => {
  const rb = new ReadBuffer(MAX);
  const a = rb.take(undefined);
  rb.unused();
  assert.equal(rb.take(undefined), a);
  // Only once: after it is given out again, it must be handed back to be reused.
  rb.got(10);
  assert.notEqual(rb.take(undefined), a);
});

/** A buffer grown to `MAX` through full reads, handed back each time. */
function grown(rb: ReadBuffer): Uint8Array {
  let buf = rb.take(undefined);
  for (let i = 0; i < 20 && buf.length < MAX; i++) buf = rb.take(rb.got(buf.length));
  return buf;
}

Deno.test("ReadBuffer: release gives a free buffer to the pool, and the next take gets it back", () => {
  const pool = new ReadBufferPool(MAX, 2);
  const rb = new ReadBuffer(MAX, pool);
  const buf = grown(rb);
  assert.equal(buf.length, MAX);
  // The read read nothing (the socket ran dry): the buffer is nobody's, so the pool takes it.
  rb.unused();
  rb.release(undefined);
  assert.equal(rb.bytes, 0, "a quiet connection holds no buffer");
  assert.equal(pool.buffers, 1);
  assert.equal(rb.take(undefined), buf, "the next read takes it back, no new buffer");
  assert.equal(pool.buffers, 0);
  // A chunk handed back as free: its buffer goes to the pool too.
  const chunk = rb.got(MAX / 2);
  rb.release(chunk);
  assert.equal(pool.buffers, 1);
  // Another connection of the same pool takes it (once it reads at that size).
  const other = new ReadBuffer(MAX, pool);
  assert.equal(grown(other), buf);
});

Deno.test("ReadBuffer: release never pools a chunk someone kept, and the pool is bounded", () => {
  const pool = new ReadBufferPool(MAX, 2);
  const rb = new ReadBuffer(MAX, pool);
  const buf = grown(rb);
  const kept = rb.got(MAX); // the caller keeps it: not handed back
  rb.release(undefined);
  assert.equal(pool.buffers, 0, "a kept chunk's buffer is let go, not pooled");
  assert.equal(rb.bytes, 0);
  assert.equal(kept.buffer, buf.buffer);
  // Bounded: of five quiet connections' buffers the pool keeps two.
  const five = Array.from({ length: 5 }, () => new ReadBuffer(MAX, pool));
  const bufs = new Set(five.map((c) => grown(c).buffer));
  assert.equal(bufs.size, 5, "five busy connections, five buffers");
  for (const c of five) {
    c.unused();
    c.release(undefined);
  }
  assert.equal(pool.buffers, 2);
  // Only its one size: a small buffer is not pooled.
  const small = new ReadBuffer(MAX, pool);
  small.take(undefined);
  small.unused();
  small.release(undefined);
  assert.equal(pool.buffers, 2);
  assert.equal(pool.take(CONN_READ_BYTES_MIN), undefined);
});

/** Whether two views share a byte of memory. */
function overlap(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length &&
    b.byteOffset < a.byteOffset + a.length;
}

Deno.test("ReadBuffer: a caller that keeps its chunks reads into the last buffer's tail, never over a kept chunk", () => {
  const rb = new ReadBuffer(MAX);
  const buf = grown(rb);
  const kept: Uint8Array[] = [rb.got(MAX / 4)]; // none handed back from here on
  let next = rb.take(undefined);
  assert.ok(next.buffer === buf.buffer, "the tail of the same buffer, no new one");
  assert.equal(next.byteOffset, MAX / 4);
  assert.equal(next.length, MAX - MAX / 4);
  // Reads of a quarter of what is left, until the tail is under 1/16 of the buffer: all disjoint.
  for (let i = 0; i < 20 && next.buffer === buf.buffer; i++) {
    const chunk = rb.got(Math.max(1, next.length >> 2));
    for (const k of kept) assert.ok(!overlap(chunk, k), `read ${i} overlaps a kept chunk`);
    kept.push(chunk);
    next = rb.take(undefined);
  }
  assert.ok(next.buffer !== buf.buffer, "a tail under 1/16 is left: a new buffer");
  assert.equal(next.length, MAX, "at the size the reads kept");
  const used = kept.reduce((a, k) => a + k.length, 0);
  assert.ok(MAX - used < MAX / 16, `${MAX - used} B left unread`);
});

Deno.test("ReadBuffer: a tail chunk handed back is read into again; the buffer is whole again only if nothing was kept", () => {
  const pool = new ReadBufferPool(MAX, 2);
  const rb = new ReadBuffer(MAX, pool);
  const buf = grown(rb);
  rb.got(5000); // kept
  const tail = rb.take(undefined);
  const free = rb.got(5000);
  assert.equal(free.byteOffset, 5000);
  const again = rb.take(free);
  assert.equal(again.byteOffset, 5000, "the handed-back tail chunk, not the kept bytes before it");
  assert.equal(again.length, tail.length);
  // A kept read that filled the tail: a new buffer of the same size (not doubled: the tail was small).
  rb.got(again.length);
  const fresh = rb.take(undefined);
  assert.ok(fresh.buffer !== buf.buffer, "a new buffer");
  assert.equal(fresh.length, MAX);
  // Quiet with a kept chunk in the buffer: never pooled.
  rb.got(MAX / 2);
  const kept = rb.take(undefined);
  rb.unused();
  rb.release(undefined);
  assert.equal(pool.buffers, 0, "its first half was kept");
  assert.ok(kept.buffer === fresh.buffer);
});

Deno.test("ReadBuffer (quiet rule): a read that leaves the socket dry sends the big buffer to the pool and waits in a probe", () => {
  const pool = new ReadBufferPool(MAX, 2);
  const rb = new ReadBuffer(MAX, pool, 4096);
  const buf = grown(rb);
  assert.equal(buf.length, MAX);
  // A read short of the buffer (dry), handed back: the next read is a probe, the buffer pooled.
  const probe = rb.take(rb.got(MAX / 2));
  assert.equal(probe.length, CONN_READ_BYTES_MIN);
  assert.equal(pool.buffers, 1);
  assert.equal(rb.bytes, CONN_READ_BYTES_MIN, "a quiet connection holds the probe only");
  // The probe read only part of it (still dry), handed back: the same probe again.
  assert.equal(rb.take(rb.got(10)), probe);
  // A probe that fills: more is waiting, the next read takes the big buffer back from the pool.
  const full = rb.got(CONN_READ_BYTES_MIN);
  assert.ok(rb.take(full) === buf, "the pooled buffer, no new one");
  assert.equal(pool.buffers, 0);
  // Dry again with the chunk kept: the buffer is pinned anyway, so the next read goes into its
  // tail (a probe would make the next burst take a new big buffer beside this pinned one).
  rb.got(MAX / 4);
  const tail = rb.take(undefined);
  assert.ok(tail.buffer === buf.buffer, "the pinned buffer's tail, not a probe");
  assert.equal(tail.byteOffset, buf.byteOffset + MAX / 4);
  assert.equal(tail.length, MAX - MAX / 4);
  // Dry with a kept chunk and too little tail left: let go (not pooled); the probe is reused.
  rb.got(tail.length - 100);
  assert.equal(rb.take(undefined), probe);
  assert.equal(pool.buffers, 0);
  // A probe chunk that is kept is never read into again: the next probe is a new buffer.
  const kept = rb.got(100);
  const next = rb.take(undefined);
  assert.equal(next.length, CONN_READ_BYTES_MIN);
  assert.ok(next.buffer !== kept.buffer, "a new probe");
});

Deno.test("ReadBuffer (quiet rule): a buffer over the quiet max is the max, never a size between", () => {
  const rb = new ReadBuffer(MAX, new ReadBufferPool(MAX, 2), 4096);
  const sizes = new Set<number>();
  let buf = rb.take(undefined);
  for (let i = 0; i < 20 && buf.length < MAX; i++) {
    sizes.add(buf.length);
    buf = rb.take(rb.got(buf.length));
  }
  sizes.add(buf.length);
  assert.deepEqual([...sizes], [256, 512, 1024, 2048, 4096, MAX]);
});

Deno.test("ReadBuffer: rest (Bun's dry socket) pools a free buffer but keeps a pinned one's tail for the next burst", () => {
  const pool = new ReadBufferPool(MAX, 2);
  const rb = new ReadBuffer(MAX, pool);
  const buf = grown(rb);
  // A burst read and handed back, then the socket is dry (the read read nothing): pooled.
  rb.take(rb.got(MAX / 2));
  rb.unused();
  rb.rest(undefined);
  assert.equal(rb.bytes, 0);
  assert.equal(pool.buffers, 1);
  // The next burst takes it back; its chunk is kept (in flight), then the socket is dry again.
  assert.ok(rb.take(undefined) === buf);
  rb.got(MAX / 4);
  const tail = rb.take(undefined);
  rb.unused();
  rb.rest(undefined);
  assert.equal(rb.bytes, MAX, "held: the kept chunk pins it anyway");
  assert.equal(pool.buffers, 0, "a buffer with a kept chunk is never pooled");
  // The next burst goes into the same tail, never over the kept chunk.
  const next = rb.take(undefined);
  assert.ok(next.buffer === buf.buffer && next.byteOffset === tail.byteOffset);
  assert.equal(next.byteOffset, buf.byteOffset + MAX / 4);
  // Too little tail left beside the kept chunks: the next read gets a new buffer, and once the
  // socket is dry that unread one is pooled, never the pinned one.
  rb.got(next.length - 100);
  const fresh = rb.take(undefined);
  assert.ok(fresh.buffer !== buf.buffer);
  rb.unused();
  rb.rest(undefined);
  assert.equal(rb.bytes, 0);
  assert.equal(pool.buffers, 1);
  assert.ok(pool.take(MAX) === fresh, "the unread buffer, not the pinned one");
});
