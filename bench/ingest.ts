/**
 * `deno run -A bench/ingest.ts [--base DIR] [--rounds N] [--modes pub,sub,fanout,queue,ack,laggard]`: the server's CPU
 * per PUB without sockets. A `Connection` (through `Server.adopt`) reads
 * 256 KiB chunks of pipelined `PUB`s from a fake `Conn` that hands the same
 * chunk out again (as the Deno runtime reads into a freed chunk), parses and
 * dispatches them: publish-only (nobody subscribed), pub -> 1 subscriber,
 * fan-out to 4 subscribers (4 connections) and pub -> a queue with one
 * `ack:none` consumer, on fake connections whose
 * writes complete at once. What is left is the parser, the connection's
 * per-frame work, the broker and the outbound copies.
 *
 * `laggard` is `fanout` with a fifth subscriber whose writes never complete:
 * its outbound buffer stays at the high mark and the topic holds its lag,
 * under `--slow-consumer drop-oldest` (a steady state: each message held
 * once, the oldest dropped), so the healthy four's cost with one stalled
 * beside them is measured. Not among the default modes.
 *
 * `ack` is the `queue` scenario of `deno task bench` without sockets: the
 * same PUB chunks into a queue with two explicit-ack consumers (prefetch
 * 1000), each answering every write with ACK lines of the ids in it (at
 * most 166 a line, as bench/drivers/relayr.ts sends them), and the
 * publisher held at most `ACK_WINDOW` messages ahead of the ACKs. Its figure
 * includes the fake consumers' scan of the MSG lines for their ids (the same
 * code for both builds of an A/B, so a difference between them is the
 * server's).
 *
 * It counts the process's CPU time (user + system), not the wall clock: on
 * a machine shared with other work a runnable process waits for a core, which
 * moves its wall time far more than its CPU time. Each case runs in a child
 * process of its own (one JIT state per build and case); with `--base DIR`
 * the same cases run from that checkout too, alternating, and the table
 * gives base / this (above 1: this build is leaner).
 *
 * @module
 */
import { parseArgs } from "node:util";

const CHUNK_BYTES = 256 * 1024;
/** Chunks per measured round, and rounds (the minimum and the median are shown). */
const CHUNKS = 64;
const WARM_ROUNDS = 30;

/** Messages the `ack` case's publisher stays ahead of the ACKs (the bench's `--window`). */
const ACK_WINDOW = 8192;
/** Ids on one ACK line of the `ack` case's consumers (bench/drivers/relayr.ts: 4000 bytes). */
const ACK_LINE_IDS = 166;

type Mode = "pub" | "sub" | "fanout" | "queue" | "ack" | "laggard";

const CASES: [mode: Mode, size: number][] = [
  ["pub", 16],
  ["pub", 256],
  ["pub", 4096],
  ["sub", 16],
  ["sub", 256],
  ["sub", 4096],
  ["fanout", 16],
  ["fanout", 256],
  ["fanout", 4096],
  ["queue", 16],
  ["queue", 256],
  ["ack", 16],
  ["ack", 256],
  ["laggard", 16],
  ["laggard", 256],
  ["laggard", 4096],
];

interface Result {
  min: number;
  median: number;
}

/** The child: one case, from the checkout at `root`; prints its result as JSON. */
async function child(root: string, mode: Mode, size: number, rounds: number): Promise<void> {
  const { Server } = await import(`${root}/src/server/mod.ts`);
  const { benchBroker } = await import(`${root}/bench/micro/counting.ts`);
  const { Broker } = await import(`${root}/src/broker/mod.ts`);
  const { MemoryStore } = await import(`${root}/src/storage/mod.ts`);
  const { cpuUsage } = await import("node:process");
  const enc = new TextEncoder();
  const dest = mode === "queue" || mode === "ack" ? "queue:bench.q" : "topic:bench.t";
  const one = enc.encode(`PUB ${dest} ${size}\r\n${"x".repeat(size)}\r\n`);
  const frames = Math.floor(CHUNK_BYTES / one.length);
  const chunk = new Uint8Array(frames * one.length);
  for (let i = 0; i < frames; i++) chunk.set(one, i * one.length);
  // `laggard`: benchBroker's options, but a stalled subscriber's oldest messages are dropped.
  const broker = mode !== "laggard" ? benchBroker() : new Broker({
    ...benchBroker().options,
    store: new MemoryStore(),
    slowConsumer: "drop-oldest",
  });
  const server = new Server({}, broker, {
    hostname: "127.0.0.1",
    port: 0,
    payloadBytesMax: 1 << 20,
    pingIntervalMs: 3_600_000,
    version: "bench",
  });
  /**
   * Sends `first`, then `body` `count` times, then ends (without `body`:
   * waits); `stalled`: its writes never complete.
   */
  const fake = (first: string, body: Uint8Array | undefined, count: number, stalled = false) => {
    const done = Promise.withResolvers<void>();
    let n = -1;
    const conn = {
      get readable(): ReadableStream<Uint8Array> {
        throw new Error("read() only");
      },
      read(): Promise<Uint8Array | null> {
        n++;
        if (n === 0) return Promise.resolve(enc.encode(first));
        if (body === undefined) return new Promise<null>(() => {});
        return Promise.resolve(n <= count ? body : null);
      },
      write: () => stalled ? new Promise<void>(() => {}) : Promise.resolve(),
      close: () => done.resolve(),
      remoteAddr: "127.0.0.1:1",
    };
    return { conn, closed: done.promise };
  };
  const connect = 'CONNECT {"verbose":false}\r\n';
  if (mode === "ack") {
    const sent = { n: 0 };
    const consumers = [0, 1].map((i) =>
      new AckingConsumer(enc.encode(`${connect}SUB ${dest} sub_id:c${i} prefetch:1000\r\n`))
    );
    for (const c of consumers) server.adopt(c);
    const acked = () => consumers[0].acked + consumers[1].acked;
    const round = async (chunks: number) => {
      const start = acked();
      const total = chunks * frames;
      const done = Promise.withResolvers<void>();
      let n = -1;
      let parked: ((c: Uint8Array | null) => void) | undefined;
      const check = () => {
        if (parked !== undefined && sent.n - acked() <= ACK_WINDOW - frames) {
          const r = parked;
          parked = undefined;
          next(r);
        }
        if (acked() - start === total) done.resolve();
      };
      const next = (r: (c: Uint8Array | null) => void) => {
        if (n > chunks) return r(null);
        if (n > 0) sent.n += frames;
        r(n === 0 ? enc.encode(connect) : n <= chunks ? chunk : null);
      };
      for (const c of consumers) c.onAck = check;
      server.adopt({
        get readable(): ReadableStream<Uint8Array> {
          throw new Error("read() only");
        },
        read(): Promise<Uint8Array | null> {
          n++;
          const p = Promise.withResolvers<Uint8Array | null>();
          if (n === 0 || sent.n - acked() <= ACK_WINDOW - frames) next(p.resolve);
          else parked = p.resolve;
          return p.promise;
        },
        write: () => Promise.resolve(),
        close() {},
        remoteAddr: "127.0.0.1:1",
      });
      await done.promise;
    };
    await measure(round, frames, rounds, cpuUsage);
    return;
  }
  if (mode === "sub") server.adopt(fake(`${connect}SUB ${dest}\r\n`, undefined, 0).conn);
  if (mode === "fanout" || mode === "laggard") {
    for (let i = 0; i < 4; i++) {
      server.adopt(fake(`${connect}SUB ${dest} sub_id:s${i}\r\n`, undefined, 0).conn);
    }
  }
  if (mode === "laggard") {
    server.adopt(fake(`${connect}SUB ${dest} sub_id:stalled\r\n`, undefined, 0, true).conn);
  }
  if (mode === "queue") {
    server.adopt(fake(`${connect}SUB ${dest} ack:none prefetch:65536\r\n`, undefined, 0).conn);
  }
  const round = async (chunks: number) => {
    const { conn, closed } = fake(connect, chunk, chunks);
    server.adopt(conn);
    await closed;
  };
  await measure(round, frames, rounds, cpuUsage);
}

/** Warms up, then prints the CPU ns per message of `rounds` rounds of `CHUNKS` chunks, and exits. */
async function measure(
  round: (chunks: number) => Promise<void>,
  frames: number,
  rounds: number,
  cpuUsage: (before?: { user: number; system: number }) => { user: number; system: number },
): Promise<void> {
  for (let w = 0; w < WARM_ROUNDS; w++) await round(8);
  const ns: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const before = cpuUsage();
    await round(CHUNKS);
    const used = cpuUsage(before);
    ns.push((used.user + used.system) * 1000 / (CHUNKS * frames));
  }
  ns.sort((a, b) => a - b);
  console.log(JSON.stringify({ min: ns[0], median: ns[ns.length >> 1] }));
  Deno.exit(0); // the fake subscribers' reads never end
}

const LF = 10;
const SP = 32;

/**
 * A fake `Conn` of the `ack` case's consumers: it subscribes, and answers
 * every write with ACK lines of the `msg_id:<id>` tokens of the MSG lines
 * in it (the token before the size, found backwards from the line end, as
 * bench/drivers/relayr.ts finds it), handed out by its next read.
 */
class AckingConsumer {
  readonly remoteAddr = "127.0.0.1:2";
  acked = 0;
  onAck = () => {};
  #first: Uint8Array | undefined;
  #out = new Uint8Array(1 << 20);
  #len = 0;
  #waiting: ((c: Uint8Array | null) => void) | undefined;

  constructor(first: Uint8Array) {
    this.#first = first;
  }

  get readable(): ReadableStream<Uint8Array> {
    throw new Error("read() only");
  }

  read(): Promise<Uint8Array | null> {
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      return Promise.resolve(first);
    }
    if (this.#len > 0) return Promise.resolve(this.#take());
    return new Promise((r) => this.#waiting = r);
  }

  write(b: Uint8Array): Promise<void> {
    const out = this.#out;
    let len = this.#len;
    let ids = 0;
    for (let pos = 0; pos < b.length;) {
      const lf = b.indexOf(LF, pos);
      if (b[pos] !== 0x4d /* M */) {
        pos = lf + 1;
        continue;
      }
      let e = lf - 1; // the CR
      let i = e - 1;
      while (b[i] !== SP) i--; // the space before the size
      let size = 0;
      for (let k = i + 1; k < e; k++) size = size * 10 + b[k] - 0x30;
      e = i;
      i--;
      while (b[i] !== SP) i--; // the space before msg_id:
      if (ids === 0) {
        out[len++] = 0x41; // A
        out[len++] = 0x43; // C
        out[len++] = 0x4b; // K
      }
      for (let k = i; k < e; k++) out[len++] = b[k];
      if (++ids === ACK_LINE_IDS) {
        out[len++] = 13;
        out[len++] = LF;
        this.acked += ids;
        ids = 0;
      }
      pos = lf + 1 + size + 2;
    }
    if (ids > 0) {
      out[len++] = 13;
      out[len++] = LF;
      this.acked += ids;
    }
    this.#len = len;
    const w = this.#waiting;
    if (w !== undefined && len > 0) {
      this.#waiting = undefined;
      w(this.#take());
    }
    this.onAck();
    return Promise.resolve();
  }

  close(): void {}

  #take(): Uint8Array {
    const c = this.#out.slice(0, this.#len);
    this.#len = 0;
    return c;
  }
}

/** Runs one case in a child process. */
async function run(root: string, mode: string, size: number, rounds: number): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--child", root, mode, String(size), String(rounds)],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`${mode} ${size} B from ${root} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    base: { type: "string" },
    rounds: { type: "string", default: "7" },
    modes: { type: "string", default: "pub,sub,fanout,queue,ack" },
    child: { type: "boolean", default: false },
  },
  allowPositionals: true,
});
if (values.child) {
  const [root, mode, size, rounds] = positionals;
  await child(root, mode as Mode, Number(size), Number(rounds));
} else {
  const here = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const base = values.base === undefined ? undefined : Deno.realPathSync(values.base);
  const rounds = Number(values.rounds);
  const f = (r: Result) => `${r.min.toFixed(1)} (${r.median.toFixed(1)})`;
  console.log(
    `CPU ns per PUB, min (median) of ${rounds} rounds of ${CHUNKS} chunks of 256 KiB` +
      (base === undefined ? "" : `; base: ${base}`),
  );
  const modes = values.modes.split(",");
  for (const [mode, size] of CASES.filter(([m]) => modes.includes(m))) {
    const now = await run(here, mode, size, rounds);
    if (base === undefined) {
      console.log(`${mode.padEnd(6)} ${String(size).padStart(5)} B  ${f(now)}`);
      continue;
    }
    const was = await run(base, mode, size, rounds);
    const ratio = (was.min / now.min).toFixed(2);
    console.log(
      `${mode.padEnd(6)} ${String(size).padStart(5)} B  this ${f(now)}  base ${f(was)}  ${ratio}x`,
    );
  }
}
