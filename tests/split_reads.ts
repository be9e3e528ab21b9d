/**
 * PUB payloads that span reads, through a runtime's real read path: a
 * `Conn.read(free)` of an accepted socket feeding the parser, as the broker's
 * read loop does (each chunk handed back as `free` once its frames were
 * checked). Shared by tests/runtime_read_test.ts (Deno) and
 * tests/bun_adapter_check.ts (Bun, where this runs under `bun`): no `Deno.`
 * or `Bun.` here.
 *
 * @module
 */
import { type Frame, Parser } from "../src/protocol/mod.ts";
import type { Conn } from "../src/runtime/types.ts";

/** A deterministic payload, so a byte from the wrong place shows. */
function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13 + (i >> 8)) & 255;
  return b;
}

/** `PUB topic:split <n>\r\n<payload>\r\n` for each size, and the payloads in order. */
export function pubStream(sizes: number[], seed: number): {
  bytes: Uint8Array;
  payloads: Uint8Array[];
} {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const payloads: Uint8Array[] = [];
  sizes.forEach((n, i) => {
    const p = payload(n, seed + i);
    payloads.push(p);
    parts.push(enc.encode(`PUB topic:split ${n}\r\n`), p, enc.encode("\r\n"));
  });
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return { bytes, payloads };
}

/**
 * Reads `conn` with `read(free)` into a parser with runs on (the broker's, after
 * `CONNECT {"verbose":false}`), checking each payload against the next one
 * expected before the chunk is handed back.
 */
export class PubReader {
  readonly #conn: Conn;
  readonly #parser = new Parser({ runs: true });
  readonly #frames: Frame[] = [];
  #free: Uint8Array | undefined = undefined;
  #expected: Uint8Array[] = [];
  #next = 0;
  /** What went wrong, first problems first. */
  readonly problems: string[] = [];
  /** Chunks read into the buffer of the one handed back before (a reused read buffer). */
  reused = 0;
  /** Chunks read. */
  reads = 0;
  /** The distinct buffers the chunks were read into. */
  readonly buffers = new Set<ArrayBufferLike>();

  constructor(conn: Conn) {
    this.#conn = conn;
  }

  /** Expects these payloads next, in this order. */
  expect(payloads: Uint8Array[]): void {
    this.#expected = this.#expected.slice(this.#next).concat(payloads);
    this.#next = 0;
  }

  /** Reads until `bytes` more bytes came (or the end, or 100,000 reads). */
  async read(bytes: number): Promise<void> {
    for (let got = 0, reads = 0; got < bytes && reads < 100_000; reads++) {
      const free = this.#free;
      const chunk = await this.#conn.read!(free);
      if (chunk === null) {
        this.problems.push(`the stream ended ${bytes - got} bytes early`);
        return;
      }
      this.reads++;
      this.buffers.add(chunk.buffer);
      if (free !== undefined && chunk.buffer === free.buffer) this.reused++;
      got += chunk.length;
      this.#frames.length = 0;
      this.#parser.push(chunk, this.#frames);
      for (const f of this.#frames) this.#check(f);
      this.#free = chunk; // nothing points into it now: the parser copies what it keeps
    }
  }

  /** Whether every expected payload came. */
  get done(): boolean {
    return this.#next === this.#expected.length;
  }

  #check(f: Frame): void {
    if (f.op === "PUB") return this.#payload(f.buf, f.off, f.len);
    if (f.op === "PUBS") {
      for (let k = f.from; k < f.to; k++) this.#payload(f.buf, f.offs[2 * k], f.offs[2 * k + 1]);
      return;
    }
    this.problems.push(`unexpected frame ${JSON.stringify(f)}`);
  }

  #payload(buf: Uint8Array, off: number, len: number): void {
    const want = this.#expected[this.#next++];
    if (want === undefined) return void this.problems.push("a payload more than was sent");
    let same = want.length === len;
    for (let i = 0; same && i < len; i++) same = buf[off + i] === want[i];
    if (!same && this.problems.length < 5) {
      this.problems.push(`payload ${this.#next - 1} (${want.length} B) differs (got ${len} B)`);
    }
  }
}

/**
 * Writes `stream` split in two at every offset, each half read before the
 * next is written, so a read ends at each offset: in a control line, in a
 * payload, in its line end. Returns the problems (none: every payload came
 * whole, in order) and how many splits ran.
 */
export async function splitEverywhere(
  server: Conn,
  write: (bytes: Uint8Array) => Promise<void>,
  stream: { bytes: Uint8Array; payloads: Uint8Array[] },
): Promise<{ problems: string[]; splits: number }> {
  const reader = new PubReader(server);
  const s = stream.bytes;
  let splits = 0;
  for (let k = 1; k < s.length && reader.problems.length === 0; k++) {
    reader.expect(stream.payloads);
    await write(s.subarray(0, k));
    await reader.read(k);
    await write(s.subarray(k));
    await reader.read(s.length - k);
    if (!reader.done) reader.problems.push(`split at ${k}: payloads missing`);
    splits++;
  }
  return { problems: reader.problems, splits };
}

/**
 * A bulk publisher: `mib` MiB of PUBs of mixed sizes written in odd-sized
 * pieces while the reader reads (so reads end anywhere, as the socket has it).
 * Returns the reader's problems, and how many of its reads went into the
 * buffer handed back before (on Bun: the socket read straight into the
 * connection's own buffer instead of Bun's fresh chunk).
 */
export async function bulkPubs(
  server: Conn,
  write: (bytes: Uint8Array) => Promise<void>,
  mib: number,
): Promise<{ problems: string[]; reused: number; reads: number; buffers: number }> {
  const sizes: number[] = [];
  const cycle = [16, 256, 4096, 1000, 0, 70_000, 3];
  let total = 0;
  for (let i = 0; total < mib * 1024 * 1024; i++) {
    const n = cycle[i % cycle.length];
    sizes.push(n);
    total += n + 24;
  }
  const stream = pubStream(sizes, 3);
  const reader = new PubReader(server);
  reader.expect(stream.payloads);
  const s = stream.bytes;
  const writing = (async () => {
    for (let off = 0; off < s.length; off += 100_003) await write(s.subarray(off, off + 100_003));
  })();
  await Promise.all([writing, reader.read(s.length)]);
  if (!reader.done) reader.problems.push("payloads missing");
  return {
    problems: reader.problems,
    reused: reader.reused,
    reads: reader.reads,
    buffers: reader.buffers.size,
  };
}

/**
 * A reader that keeps every chunk (as the SDK's messages keep views into
 * theirs): `mib` MiB written in odd-sized pieces while `read()` runs with
 * nothing handed back, every chunk kept as it came (no copy). Each read may
 * go into the unused tail of the last buffer, never over a kept chunk: the
 * kept chunks, checked again once all is read, must still be the stream.
 * Returns the problems, the reads, and how many went into the tail of the
 * buffer of the chunk before (`tails`).
 */
export async function keptChunks(
  server: Conn,
  write: (bytes: Uint8Array) => Promise<void>,
  mib: number,
): Promise<{ problems: string[]; tails: number; reads: number }> {
  const data = payload(mib * 1024 * 1024, 11);
  const writing = (async () => {
    for (let off = 0; off < data.length; off += 100_003) {
      await write(data.subarray(off, off + 100_003));
    }
  })();
  const kept: Uint8Array[] = [];
  const problems: string[] = [];
  let tails = 0;
  let got = 0;
  for (let reads = 0; got < data.length && reads < 100_000; reads++) {
    const chunk = await server.read!(undefined);
    if (chunk === null) {
      problems.push(`the stream ended ${data.length - got} bytes early`);
      break;
    }
    const prev = kept.at(-1);
    if (prev !== undefined && chunk.buffer === prev.buffer) tails++;
    kept.push(chunk);
    got += chunk.length;
  }
  await writing;
  let off = 0;
  for (let i = 0; i < kept.length && problems.length < 5; i++) {
    const k = kept[i];
    for (let j = 0; j < k.length; j++) {
      if (k[j] !== data[off + j]) {
        problems.push(`kept chunk ${i} (${k.length} B at ${off}) changed at byte ${j}`);
        break;
      }
    }
    off += k.length;
  }
  return { problems, tails, reads: kept.length };
}
