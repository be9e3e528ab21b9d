/**
 * Checks of the Bun adapter, run under Bun by tests/bun_test.ts (`bun
 * tests/bun_adapter_check.ts`). Prints one JSON line per check:
 * `{"name": ..., "ok": true|false, "detail": ...}`, then `{"done": true}`.
 * Every wait is bounded; the script exits by itself.
 */
import { bunRuntime as rt } from "../src/runtime/bun.ts";
import { copyBytes, copyRange } from "../src/runtime/buffer.ts";
import { msgHead, MsgRun } from "../src/protocol/mod.ts";
import type { Conn } from "../src/runtime/types.ts";
import { bulkPubs, keptChunks, pubStream, splitEverywhere } from "./split_reads.ts";

const HOST = "127.0.0.1";

function report(name: string, ok: boolean, detail = ""): void {
  console.log(JSON.stringify({ name, ok, detail }));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** A deterministic byte pattern, so any corruption or reordering shows. */
function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 10)) & 255;
  return b;
}

function checksum(b: Uint8Array): number {
  let x = 0;
  for (let i = 0; i < b.length; i++) x = (x * 31 + b[i]) | 0;
  return x;
}

async function readAll(conn: Conn, bytes: number): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  const reader = conn.readable.getReader();
  while (n < bytes) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
  }
  reader.releaseLock();
  return chunks;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A listener with one accepted and one dialled connection. */
async function pair(): Promise<{ server: Conn; client: Conn; close: () => void }> {
  const l = rt.listen({ hostname: HOST, port: 0 });
  const accepted = l.accept();
  const client = await rt.connect({ hostname: HOST, port: l.port });
  const server = (await withTimeout(accepted, 2000, "accept"))!;
  return {
    server,
    client,
    close() {
      client.close();
      server.close();
      l.close();
    },
  };
}

async function chunksAreOwned(): Promise<void> {
  const p = await pair();
  try {
    // Many writes, so the reader sees many chunks; each keeps the checksum it had on arrival.
    const total = 4 * 1024 * 1024;
    const data = pattern(total, 1);
    const reading = (async () => {
      const seen: [Uint8Array, number][] = [];
      let n = 0;
      const reader = p.server.readable.getReader();
      while (n < total) {
        const { value, done } = await reader.read();
        if (done) break;
        seen.push([value, checksum(value)]);
        n += value.length;
      }
      reader.releaseLock();
      return seen;
    })();
    for (let off = 0; off < total; off += 64 * 1024) {
      await p.client.write(data.subarray(off, off + 64 * 1024));
    }
    const seen = await withTimeout(reading, 5000, "read");
    const changed = seen.filter(([c, sum]) => checksum(c) !== sum).length;
    const whole = same(concat(seen.map(([c]) => c)), data);
    report(
      "chunks are never rewritten after delivery",
      changed === 0 && whole,
      `${seen.length} chunks, ${changed} changed, content ${whole ? "intact" : "corrupt"}`,
    );
  } finally {
    p.close();
  }
}

async function partialWritesFinishOnDrain(): Promise<void> {
  const p = await pair();
  try {
    // 32 MiB is far more than the kernel buffers take: Bun's write() takes part, the rest waits for drain.
    const data = pattern(32 * 1024 * 1024, 2);
    let resolved = false;
    const writing = p.server.write(data).then(() => resolved = true);
    await new Promise((r) => setTimeout(r, 100));
    const earlyResolved = resolved;
    const chunks = await withTimeout(readAll(p.client, data.length), 10_000, "read 32 MiB");
    await withTimeout(writing, 5000, "write");
    const ok = !earlyResolved && same(concat(chunks), data);
    report(
      "write() resolves only once every byte is out, across drains",
      ok,
      `resolved before the reader read: ${earlyResolved}`,
    );
  } finally {
    p.close();
  }
}

/**
 * Writes `data` to a server side that reads nothing for 200 ms, then reads it all with `read`:
 * whether the writer was held back meanwhile (the socket paused), and what was read.
 */
async function toSlowReader(
  p: { server: Conn; client: Conn },
  data: Uint8Array,
  read: (conn: Conn, bytes: number) => Promise<Uint8Array[]>,
): Promise<{ heldBack: boolean; got: Uint8Array }> {
  let done = false;
  const writing = p.client.write(data).then(() => done = true);
  await new Promise((r) => setTimeout(r, 200));
  const heldBack = !done;
  const chunks = await withTimeout(read(p.server, data.length), 10_000, "read 16 MiB");
  await withTimeout(writing, 5000, "write");
  return { heldBack, got: concat(chunks) };
}

async function readBackpressure(): Promise<void> {
  const p = await pair();
  try {
    // The reader waits; the socket is paused and the writer is held back, then all arrives in order.
    const data = pattern(16 * 1024 * 1024, 3);
    const { heldBack, got } = await toSlowReader(p, data, readAll);
    report(
      "a slow reader pauses the socket and loses nothing",
      heldBack && same(got, data),
      `writer held back while nobody read: ${heldBack}`,
    );
  } finally {
    p.close();
  }
}

/** Reads with `read()` (the broker's way) until `bytes` came; null ends it early. */
async function readDirect(conn: Conn, bytes: number): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (let n = 0, reads = 0; n < bytes && reads < 1_000_000; reads++) {
    const chunk = await conn.read!();
    if (chunk === null) break;
    chunks.push(chunk);
    n += chunk.length;
  }
  return chunks;
}

async function directReads(): Promise<void> {
  const p = await pair();
  try {
    // A reader that does not read: the socket pauses, the writer is held back, nothing is lost.
    const data = pattern(16 * 1024 * 1024, 4);
    const { heldBack, got } = await toSlowReader(p, data, readDirect);
    // Bytes sent just before the peer's close are read before the end.
    const tail = pattern(1000, 5);
    await p.client.write(tail);
    p.client.close();
    const rest = await withTimeout(readDirect(p.server, tail.length), 2000, "read the tail");
    const end = await withTimeout(p.server.read!(), 2000, "end");
    report(
      "read(): a slow reader pauses the socket, loses nothing, and reads the bytes before the end",
      heldBack && same(got, data) && same(concat(rest), tail) && end === null,
      `writer held back: ${heldBack}, end: ${end}`,
    );
  } finally {
    p.close();
  }
  const q = await pair();
  try {
    const pending = q.server.read!();
    q.server.close();
    const r = await withTimeout(pending, 2000, "a read pending at close()");
    const after = await withTimeout(q.server.read!(), 2000, "a read after close()");
    report(
      "read(): close() ends a pending read and later ones with null",
      r === null && after === null,
    );
  } finally {
    q.close();
  }
}

/**
 * PUB payloads through `read(free)` and the parser: split at every offset (small reads:
 * Bun's own chunks), and a bulk publisher's (the socket read straight into the
 * connection's buffer, handed back and read into again: a Bun chunk never is).
 */
async function spanningPayloads(): Promise<void> {
  const p = await pair();
  try {
    const stream = pubStream([0, 5, 300, 1500, 17], 1);
    const { problems, splits } = await withTimeout(
      splitEverywhere(p.server, (b) => p.client.write(b), stream),
      20_000,
      "splits",
    );
    report(
      "read(free): PUB payloads split at every offset arrive whole",
      problems.length === 0 && splits === stream.bytes.length - 1,
      `${splits} splits; ${problems.join("; ")}`,
    );
  } finally {
    p.close();
  }
  const k = await pair();
  try {
    const got = await withTimeout(
      keptChunks(k.server, (b) => k.client.write(b), 8),
      20_000,
      "kept",
    );
    report(
      "read(): a reader that keeps every chunk reads into buffer tails, never over a kept chunk",
      got.problems.length === 0 && got.tails > 0,
      `${got.tails} of ${got.reads} reads into the tail of the buffer before; ${
        got.problems.join("; ")
      }`,
    );
  } finally {
    k.close();
  }
  const q = await pair();
  try {
    const got = await withTimeout(bulkPubs(q.server, (b) => q.client.write(b), 8), 20_000, "bulk");
    report(
      "read(free): a bulk publisher's PUBs arrive whole, read into the buffer handed back",
      got.problems.length === 0 && got.reused > 0,
      `${got.reused} of ${got.reads} reads into the same buffer; ${got.problems.join("; ")}`,
    );
  } finally {
    q.close();
  }
}

/**
 * A bulk sender's connection reads into a buffer of its own while the socket
 * has bytes and holds none once it is quiet (the buffer goes back to the
 * pool each time the socket runs dry); several quiet ones hold none either.
 */
async function quietBulkSendersHoldNoBuffer(): Promise<void> {
  const pairs = await Promise.all([pair(), pair(), pair()]);
  try {
    const total = 4 * 1024 * 1024;
    const held: number[] = [];
    const quiet: number[] = [];
    let reused = 0;
    let ok = true;
    for (const p of pairs) {
      const data = pattern(total, 7);
      const writing = (async () => {
        for (let off = 0; off < total; off += 256 * 1024) {
          await p.client.write(data.subarray(off, off + 256 * 1024));
        }
      })();
      let free: Uint8Array | undefined;
      let most = 0;
      const seen: Uint8Array[] = [];
      for (let n = 0, reads = 0; n < total && reads < 100_000; reads++) {
        const chunk = await withTimeout(p.server.read!(free), 5000, "bulk read");
        if (chunk === null) break;
        if (free !== undefined && chunk.buffer === free.buffer) reused++;
        most = Math.max(most, heldBytes(p.server));
        seen.push(chunk.slice());
        n += chunk.length;
        free = chunk;
      }
      await writing;
      ok &&= same(concat(seen), data);
      held.push(most);
      // Quiet now: the next read finds the socket dry and waits for Bun's `data`.
      const pending = p.server.read!(free);
      quiet.push(heldBytes(p.server));
      p.server.close();
      await withTimeout(pending, 2000, "the pending read at close");
    }
    report(
      "read(free): a bulk sender's read buffer is given back once its socket is quiet",
      ok && reused > 0 && held.every((b) => b > 0) && quiet.every((b) => b === 0),
      `held while busy ${held.join(",")} B, once quiet ${
        quiet.join(",")
      } B; ${reused} reads reused`,
    );
  } finally {
    for (const p of pairs) p.close();
  }
}

/** The read buffer a Bun connection holds between reads (`SocketState.readBufferBytes`). */
function heldBytes(conn: Conn): number {
  return (conn as unknown as { readBufferBytes: number }).readBufferBytes;
}

/** A chatty client (small chunks) is read by Bun alone: no buffer of its own, no failed reads. */
async function chattyReadsAreBuns(): Promise<void> {
  const p = await pair();
  try {
    let reused = 0;
    let free: Uint8Array | undefined;
    let ok = true;
    for (let i = 0; i < 50; i++) {
      const data = pattern(200, i);
      await p.client.write(data);
      const chunk = await withTimeout(p.server.read!(free), 2000, "read");
      if (chunk === null || !same(chunk, data)) ok = false;
      if (chunk !== null && free !== undefined && chunk.buffer === free.buffer) reused++;
      free = chunk ?? undefined;
    }
    report("read(free): a chatty client's chunks are Bun's own", ok && reused === 0, `${reused}`);
  } finally {
    p.close();
  }
}

async function closeEndsBoth(): Promise<void> {
  const p = await pair();
  try {
    p.server.close();
    p.server.close(); // twice is safe
    const reader = p.client.readable.getReader();
    const r = await withTimeout(reader.read(), 2000, "EOF");
    reader.releaseLock();
    let rejected = false;
    await p.server.write(new Uint8Array([1])).catch(() => rejected = true);
    report("close() ends the peer's stream; later writes reject", r.done && rejected, "");
  } finally {
    p.close();
  }
}

async function listenerClose(): Promise<void> {
  const l = rt.listen({ hostname: HOST, port: 0 });
  const port = l.port;
  const pending = l.accept();
  l.close();
  const got = await withTimeout(pending, 2000, "accept after close");
  let refused = false;
  await rt.connect({ hostname: HOST, port }).then((c) => c.close(), () => refused = true);
  report(
    "closing the listener ends a pending accept and the port",
    got === undefined && refused,
    "",
  );
}

async function remoteAddr(): Promise<void> {
  const p = await pair();
  try {
    report(
      "remoteAddr is host:port",
      /^127\.0\.0\.1:\d+$/.test(p.server.remoteAddr),
      p.server.remoteAddr,
    );
  } finally {
    p.close();
  }
}

async function serveHttp(): Promise<void> {
  const http = rt.serveHttp({ hostname: HOST, port: 0 }, (req) => {
    return new Response(`hi ${new URL(req.url).pathname}`, { status: 201 });
  });
  try {
    const res = await fetch(`http://${HOST}:${http.port}/x`);
    const body = await res.text();
    report("serveHttp serves the handler", res.status === 201 && body === "hi /x", body);
  } finally {
    await http.close();
  }
}

/** `copyBytes` (Bun's `Buffer#copy` path) and `copyRange` copy exactly the range, into plain Uint8Arrays. */
function copiesRanges(): void {
  const src = pattern(9000, 3);
  const bad: string[] = [];
  for (
    const [srcOff, len, dstOff] of [[0, 0, 5], [3, 63, 9], [5, 64, 3], [1, 65, 0], [9, 300, 2]]
  ) {
    const dst = new Uint8Array(400).fill(0xee);
    const end = copyRange(dst, dstOff, src, srcOff, len);
    const ok = end === dstOff + len &&
      dst.subarray(dstOff, dstOff + len).every((b, i) => b === src[srcOff + i]) &&
      dst.subarray(0, dstOff).every((b) => b === 0xee) &&
      dst.subarray(dstOff + len).every((b) => b === 0xee);
    if (!ok) bad.push(`copyRange ${srcOff}+${len}@${dstOff}`);
  }
  for (
    const [srcOff, len, dstOff] of [[0, 16, 0], [5, 64, 3], [100, 256, 1000], [17, 8191, 7], [
      0,
      9000,
      0,
    ]]
  ) {
    const dst = new Uint8Array(9100).fill(0xee);
    copyBytes(dst, dstOff, src, srcOff, len);
    const ok = dst.subarray(dstOff, dstOff + len).every((b, i) => b === src[srcOff + i]) &&
      dst.subarray(0, dstOff).every((b) => b === 0xee) &&
      dst.subarray(dstOff + len).every((b) => b === 0xee);
    if (!ok) bad.push(`${srcOff}+${len}@${dstOff}`);
  }
  report("copyBytes and copyRange copy exactly their range", bad.length === 0, bad.join(" "));
}

/** A run's MSG frames through Bun's `copyRange` (encoded once and patched, or written to each). */
function msgRunFrames(): void {
  const enc = new TextEncoder();
  const bad: string[] = [];
  for (const [pad, subscribers] of [[0, 4], [0, 1], [2000, 4]]) {
    const texts = ["a", "hello", "y".repeat(64), "z".repeat(300)].map((t) => t.padEnd(pad, "p"));
    let wire = "";
    const offs = new Int32Array(2 * texts.length);
    texts.forEach((t, k) => {
      wire += "PUB x 1\r\n";
      offs[2 * k] = wire.length;
      offs[2 * k + 1] = t.length;
      wire += `${t}\r\n`;
    });
    const run = new MsgRun(copyRange);
    run.source(enc.encode(wire), offs, 0, texts.length);
    const heads = ["s0", "s1", "a-longer-sid"].map((sid) =>
      [sid, msgHead("topic:b", sid)] as const
    );
    run.measure(heads[2][1].length, 99_999_999);
    run.encode(heads[0][1], subscribers);
    for (const [sid, head] of heads) {
      const out = new Uint8Array(run.bytesFor(head));
      const end = run.writeTo(out, 0, head);
      if (end !== out.length) bad.push(`${pad}/${subscribers}/${sid}: ${end} of ${out.length}`);
      const got = new TextDecoder().decode(out.subarray(0, end));
      const want = texts.map((t, i) =>
        `MSG topic:b sub_id:${sid} msg_id:${99_999_999 + i} ${t.length}\r\n${t}\r\n`
      ).join("");
      if (got !== want) bad.push(`${pad}/${subscribers}/${sid}`);
    }
  }
  report("MsgRun frames through Bun's copyRange", bad.length === 0, bad.join(" "));
}

function processFacts(): void {
  const m = rt.memory();
  report(
    "name, version, args, env, memory",
    rt.name === "bun" && /^\d+\.\d+\.\d+/.test(rt.version) && Array.isArray(rt.args()) &&
      rt.env("PATH") !== undefined && m.rss > 0 && m.heapUsed > 0,
    `${rt.name} ${rt.version} args=${JSON.stringify(rt.args())}`,
  );
}

for (
  const check of [
    chunksAreOwned,
    partialWritesFinishOnDrain,
    readBackpressure,
    directReads,
    spanningPayloads,
    chattyReadsAreBuns,
    quietBulkSendersHoldNoBuffer,
    closeEndsBoth,
    listenerClose,
    remoteAddr,
    serveHttp,
  ]
) {
  try {
    await check();
  } catch (e) {
    report(check.name, false, String(e));
  }
}
copiesRanges();
msgRunFrames();
processFacts();
console.log(JSON.stringify({ done: true }));
rt.exit(0);
