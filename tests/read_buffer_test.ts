/**
 * `ReadBuffer` (src/runtime/read_buffer.ts), the read buffer policy of Deno's
 * `Conn.read` and Bun's reads of a bulk sender's socket, on its own: what
 * buffer each read gets, and when it grows, stays and shrinks.
 */
import assert from "node:assert/strict";
import { CONN_READ_BYTES_MIN } from "../src/config/mod.ts";
import { ReadBuffer } from "../src/runtime/read_buffer.ts";

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
