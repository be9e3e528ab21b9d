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
