/**
 * `Conn.read(free)` on Deno (src/runtime/deno.ts) over real sockets: every
 * byte arrives in order however the writer splits it, a freed chunk is read
 * into again, a bulk sender's reads grow to 256 KiB and stay in that buffer
 * while they fill a sixteenth of it, an idle connection's buffer shrinks back,
 * PUB payloads split at every offset (and a bulk publisher's) come out whole, chunks not handed back are never rewritten, and
 * `close()` ends a pending read.
 */
import assert from "node:assert/strict";
import { CONN_READ_BYTES_MIN, CONN_READ_DENO_BYTES_MAX } from "../src/config/mod.ts";
import type { Conn } from "../src/runtime/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { bulkPubs, keptChunks, pubStream, splitEverywhere } from "./split_reads.ts";

/** A listener's accepted Conn and the client socket dialled to it. */
async function pair(): Promise<{ server: Conn; client: Deno.TcpConn; close(): void }> {
  const listener = denoRuntime.listen({ hostname: "127.0.0.1", port: 0 });
  const [server, client] = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
  ]);
  listener.close();
  assert.ok(server?.read, "a Deno Conn has read()");
  return {
    server: server!,
    client,
    close() {
      server!.close();
      try {
        client.close();
      } catch { /* closed by the test */ }
    },
  };
}

async function writeAll(c: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await c.write(bytes.subarray(off));
}

/** Reads until `n` bytes arrived (freeing each chunk once copied); returns them and the chunks' buffer sizes. */
async function readN(
  conn: Conn,
  n: number,
  free = true,
): Promise<{ bytes: Uint8Array; sizes: number[]; last: Uint8Array }> {
  const bytes = new Uint8Array(n);
  const sizes: number[] = [];
  let got = 0;
  let chunk: Uint8Array | undefined;
  for (let reads = 0; got < n && reads < 100_000; reads++) {
    const next = await conn.read!(free ? chunk : undefined);
    assert.ok(next !== null, `the stream ended after ${got} of ${n} bytes`);
    bytes.set(next, got);
    got += next.length;
    sizes.push(next.buffer.byteLength);
    chunk = next;
  }
  assert.equal(got, n);
  return { bytes, sizes, last: chunk! };
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

Deno.test("read: a bulk sender's bytes arrive whole and in order, in reads that grow to 256 KiB", async () => {
  const p = await pair();
  try {
    const sent = pattern(8 * 1024 * 1024, 7);
    const [, got] = await Promise.all([writeAll(p.client, sent), readN(p.server, sent.length)]);
    assert.deepEqual(got.bytes, sent);
    assert.equal(got.sizes[0], 256, "the first read is small (an idle connection's cost)");
    assert.equal(
      Math.max(...got.sizes),
      CONN_READ_DENO_BYTES_MAX,
      "a bulk sender reads 256 KiB at a time",
    );
  } finally {
    p.close();
  }
});

Deno.test("read: a freed chunk is read into again; one kept is never rewritten", async () => {
  const p = await pair();
  try {
    const a = pattern(100, 1);
    await writeAll(p.client, a);
    const first = (await readN(p.server, 100)).last;
    assert.deepEqual(first, a);
    // Kept (not handed back): the next read goes to a new buffer.
    const b = pattern(100, 2);
    await writeAll(p.client, b);
    const second = (await readN(p.server, 100, false)).last;
    assert.notEqual(second.buffer, first.buffer);
    assert.deepEqual(first, a, "a chunk the reader kept still holds its bytes");
    // Handed back: read into again.
    const c = pattern(100, 3);
    await writeAll(p.client, c);
    const third = await p.server.read!(second);
    assert.ok(third !== null);
    assert.equal(third.buffer, second.buffer, "the freed buffer is reused");
    assert.deepEqual(third, c);
    assert.deepEqual(first, a);
  } finally {
    p.close();
  }
});

/** The read buffer a Deno connection holds between reads (`DenoConn.readBufferBytes`). */
function heldBytes(conn: Conn): number {
  return (conn as unknown as { readBufferBytes: number }).readBufferBytes;
}

Deno.test("read: a broker connection whose reads leave the socket dry waits in 256 B and reads bulk into the pooled buffer", async () => {
  const p = await pair();
  try {
    const bulk = pattern(1024 * 1024, 4);
    const [, got] = await Promise.all([writeAll(p.client, bulk), readN(p.server, bulk.length)]);
    assert.deepEqual(got.bytes, bulk);
    let free = got.last;
    // A publisher whose bursts of 64 KiB each leave the socket dry: after each dry read the
    // next one waits in a 256 B probe (the big buffer went to the pool), and the read after a
    // probe that filled takes the same big buffer back from the pool (no new one).
    let big: ArrayBufferLike | undefined;
    let same = 0;
    let probes = 0;
    for (let i = 0; i < 8; i++) {
      const part = pattern(64 * 1024, 10 + i);
      const write = writeAll(p.client, part);
      let n = 0;
      for (let reads = 0; n < part.length && reads < 10_000; reads++) {
        const chunk = await p.server.read!(free);
        assert.ok(chunk !== null);
        assert.deepEqual(chunk, part.subarray(n, n + chunk.length));
        n += chunk.length;
        const cap = chunk.buffer.byteLength;
        if (cap === CONN_READ_BYTES_MIN) probes++;
        if (cap === CONN_READ_DENO_BYTES_MAX) {
          if (chunk.buffer === big) same++;
          big = chunk.buffer;
        }
        free = chunk;
      }
      await write;
      // Quiet now: the pending read holds 256 B, not the 256 KiB buffer.
      const pending = p.server.read!(free);
      assert.equal(heldBytes(p.server), CONN_READ_BYTES_MIN);
      const wake = pattern(CONN_READ_BYTES_MIN, 30 + i);
      await writeAll(p.client, wake);
      const first = await pending;
      assert.ok(first !== null);
      assert.deepEqual(first, wake);
      if (first.buffer.byteLength === CONN_READ_BYTES_MIN) probes++;
      free = first;
    }
    assert.ok(probes >= 8, `${probes} probe reads`);
    assert.ok(same >= 4, `${same} big reads into the same pooled buffer as the one before`);
  } finally {
    p.close();
  }
});

Deno.test("read: broker connections that sent a bulk burst and went quiet hold 256 B each", async () => {
  const pairs = await Promise.all(Array.from({ length: 6 }, () => pair()));
  const pending: Promise<Uint8Array | null>[] = [];
  try {
    for (const p of pairs) {
      const bulk = pattern(2 * 1024 * 1024, 9);
      const [, got] = await Promise.all([writeAll(p.client, bulk), readN(p.server, bulk.length)]);
      assert.deepEqual(got.bytes, bulk);
      assert.ok(got.sizes.includes(CONN_READ_DENO_BYTES_MAX), "it read bulk into 256 KiB");
      pending.push(p.server.read!(got.last));
    }
    assert.deepEqual(pairs.map((p) => heldBytes(p.server)), pairs.map(() => CONN_READ_BYTES_MIN));
  } finally {
    for (const p of pairs) p.close();
    await Promise.all(pending);
  }
});

Deno.test("read: after bulk reads, small reads shrink the buffer back to 256 B", async () => {
  const p = await pair();
  try {
    const bulk = pattern(1024 * 1024, 5);
    const [, got] = await Promise.all([writeAll(p.client, bulk), readN(p.server, bulk.length)]);
    assert.deepEqual(got.bytes, bulk);
    // One small read from the big buffer; the next is sized from it.
    let free = got.last;
    for (let i = 0; i < 3; i++) {
      const small = pattern(10, i);
      await writeAll(p.client, small);
      const chunk = await p.server.read!(free);
      assert.ok(chunk !== null);
      assert.deepEqual(chunk, small);
      free = chunk;
    }
    assert.equal(free.buffer.byteLength, 256, "an idle connection holds 256 B, not 64 KiB");
  } finally {
    p.close();
  }
});

Deno.test("read: the peer's FIN and close() both end reads with null", async () => {
  const p = await pair();
  try {
    const pending = p.server.read!();
    p.client.close();
    assert.equal(await pending, null);
  } finally {
    p.close();
  }
  const q = await pair();
  try {
    const pending = q.server.read!();
    q.server.close();
    assert.equal(await pending, null);
  } finally {
    q.close();
  }
});

Deno.test("read: readable still serves a reader that wants a stream", async () => {
  const p = await pair();
  try {
    const sent = pattern(200_000, 9);
    const reader = p.server.readable.getReader();
    const write = writeAll(p.client, sent).then(() => p.client.close());
    const got = new Uint8Array(sent.length);
    let n = 0;
    for (let i = 0; i < 10_000; i++) {
      const r = await reader.read();
      if (r.done) break;
      got.set(r.value, n);
      n += r.value.length;
    }
    await write;
    assert.equal(n, sent.length);
    assert.deepEqual(got, sent);
  } finally {
    p.close();
  }
});

Deno.test("read: PUB payloads split across reads at every offset arrive whole through read(free) and the parser", async () => {
  const p = await pair();
  try {
    const stream = pubStream([0, 5, 300, 1500, 17], 1);
    const write = (b: Uint8Array) => writeAll(p.client, b);
    const { problems, splits } = await splitEverywhere(p.server, write, stream);
    assert.deepEqual(problems, []);
    assert.equal(splits, stream.bytes.length - 1);
  } finally {
    p.close();
  }
});

Deno.test("read: a dialled connection that keeps every chunk reads into the tails of its buffers, never over a kept chunk", async () => {
  // The SDK's side: a dialled Conn (the broker's accepted ones wait in a probe once dry).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [accepted, dialled] = await Promise.all([
    listener.accept(),
    denoRuntime.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
  ]);
  listener.close();
  try {
    const got = await keptChunks(dialled, (b) => writeAll(accepted as Deno.TcpConn, b), 8);
    assert.deepEqual(got.problems, []);
    assert.ok(
      got.tails > 0,
      `${got.tails} of ${got.reads} reads into the tail of the buffer before`,
    );
  } finally {
    dialled.close();
    accepted.close();
  }
});

Deno.test("read: a bulk publisher's PUBs arrive whole with every chunk handed back", async () => {
  const p = await pair();
  try {
    const got = await bulkPubs(p.server, (b) => writeAll(p.client, b), 8);
    assert.deepEqual(got.problems, []);
    assert.ok(
      got.buffers <= 16 && got.reads >= 32,
      `${got.reads} reads into ${got.buffers} buffers (${got.reused} into the one handed back)`,
    );
  } finally {
    p.close();
  }
});
