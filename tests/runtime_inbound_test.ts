/**
 * `Inbound` (src/runtime/inbound.ts), the inbound side of the Bun and
 * `node:tls` sockets, driven as their callbacks drive it, with a recording
 * owner in place of the socket: reads get the chunks in order whether they
 * wait or not, the socket pauses at the high mark and resumes as reads take
 * chunks, the end comes after what is queued, a close drops it, and a stream
 * asked for later starts with the chunks queued for `read()`. Real sockets:
 * tests/bun_adapter_check.ts (Bun), tests/tls_test.ts (`node:tls` on Deno).
 */
import assert from "node:assert/strict";
import { Inbound, READ_BUFFER_BYTES_HIGH } from "../src/runtime/inbound.ts";

/** The socket side: what the queue asked of it. */
function owner() {
  const calls: string[] = [];
  return {
    calls,
    pause: () => void calls.push("pause"),
    resume: () => void calls.push("resume"),
    close: () => void calls.push("close"),
  };
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

Deno.test("inbound: a waiting read gets the next chunk; others queue, in order", async () => {
  const o = owner();
  const q = new Inbound(o);
  const waiting = q.read();
  const a = bytes(3, 1);
  q.push(a);
  assert.equal(await waiting, a, "the same chunk, no copy");
  const b = bytes(2, 2);
  const c = bytes(1, 3);
  q.push(b);
  q.push(c);
  assert.equal(await q.read(), b);
  assert.equal(await q.read(), c);
  assert.deepEqual(o.calls, []);
});

Deno.test("inbound: the socket pauses at the high mark and resumes as reads take chunks", async () => {
  const o = owner();
  const q = new Inbound(o);
  const chunk = READ_BUFFER_BYTES_HIGH / 4;
  for (let i = 0; i < 4; i++) q.push(bytes(chunk, i));
  assert.deepEqual(o.calls, ["pause"], "paused once at the mark");
  q.push(bytes(chunk, 9)); // in flight when it paused: kept
  assert.deepEqual(o.calls, ["pause"]);
  assert.equal((await q.read())![0], 0);
  assert.deepEqual(o.calls, ["pause"], "still at the mark");
  assert.equal((await q.read())![0], 1);
  assert.deepEqual(o.calls, ["pause", "resume"], "under the mark: reading again");
  for (const want of [2, 3, 9]) assert.equal((await q.read())![0], want);
});

Deno.test("inbound: the end comes after the queued chunks; an error after them too", async () => {
  const q = new Inbound(owner());
  q.push(bytes(1, 1));
  q.end(undefined);
  q.push(bytes(1, 2)); // after the end: dropped
  assert.equal((await q.read())![0], 1);
  assert.equal(await q.read(), null);
  assert.equal(await q.read(), null, "and stays ended");
  const f = new Inbound(owner());
  const waiting = f.read();
  f.end(new Error("reset"));
  await assert.rejects(waiting, /reset/);
  await assert.rejects(f.read(), /reset/);
});

Deno.test("inbound: close() drops what was not read and ends a waiting read", async () => {
  const q = new Inbound(owner());
  q.push(bytes(1, 1));
  q.close();
  assert.equal(await q.read(), null);
  const w = new Inbound(owner());
  const waiting = w.read();
  w.close();
  assert.equal(await waiting, null);
});

Deno.test("inbound: a stream asked for later starts with the queued chunks, then takes new ones", async () => {
  const o = owner();
  const q = new Inbound(o);
  q.push(bytes(1, 1));
  q.push(bytes(1, 2));
  const reader = q.readable.getReader();
  q.push(bytes(1, 3));
  q.end(undefined);
  const got: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await reader.read();
    if (r.done) break;
    got.push(r.value[0]);
  }
  assert.deepEqual(got, [1, 2, 3]);
  const c = new Inbound(o);
  await c.readable.cancel();
  assert.deepEqual(o.calls, ["close"], "cancelling the stream closes the connection");
});
