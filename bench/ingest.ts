/**
 * `deno run -A bench/ingest.ts [--base DIR] [--rounds N] [--modes pub,sub,fanout,queue]`: the server's CPU
 * per PUB without sockets. A `Connection` (through `Server.adopt`) reads
 * 256 KiB chunks of pipelined `PUB`s from a fake `Conn` that hands the same
 * chunk out again (as the Deno runtime reads into a freed chunk), parses and
 * dispatches them: publish-only (nobody subscribed), pub -> 1 subscriber,
 * fan-out to 4 subscribers (4 connections) and pub -> a queue with one
 * `ack:none` consumer, on fake connections whose
 * writes complete at once. What is left is the parser, the connection's
 * per-frame work, the broker and the outbound copies.
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

const CASES: [mode: "pub" | "sub" | "fanout" | "queue", size: number][] = [
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
];

interface Result {
  min: number;
  median: number;
}

/** The child: one case, from the checkout at `root`; prints its result as JSON. */
async function child(root: string, mode: string, size: number, rounds: number): Promise<void> {
  const { Server } = await import(`${root}/src/server/mod.ts`);
  const { benchBroker } = await import(`${root}/bench/micro/counting.ts`);
  const { cpuUsage } = await import("node:process");
  const enc = new TextEncoder();
  const dest = mode === "queue" ? "queue:bench.q" : "topic:bench.t";
  const one = enc.encode(`PUB ${dest} ${size}\r\n${"x".repeat(size)}\r\n`);
  const frames = Math.floor(CHUNK_BYTES / one.length);
  const chunk = new Uint8Array(frames * one.length);
  for (let i = 0; i < frames; i++) chunk.set(one, i * one.length);
  const server = new Server({}, benchBroker(), {
    hostname: "127.0.0.1",
    port: 0,
    payloadBytesMax: 1 << 20,
    pingIntervalMs: 3_600_000,
    version: "bench",
  });
  /** Sends `first`, then `body` `count` times, then ends (without `body`: waits). */
  const fake = (first: string, body: Uint8Array | undefined, count: number) => {
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
      write: () => Promise.resolve(),
      close: () => done.resolve(),
      remoteAddr: "127.0.0.1:1",
    };
    return { conn, closed: done.promise };
  };
  const connect = 'CONNECT {"verbose":false}\r\n';
  if (mode === "sub") server.adopt(fake(`${connect}SUB ${dest}\r\n`, undefined, 0).conn);
  if (mode === "fanout") {
    for (let i = 0; i < 4; i++) {
      server.adopt(fake(`${connect}SUB ${dest} sub_id:s${i}\r\n`, undefined, 0).conn);
    }
  }
  if (mode === "queue") {
    server.adopt(fake(`${connect}SUB ${dest} ack:none prefetch:65536\r\n`, undefined, 0).conn);
  }
  const round = async (chunks: number) => {
    const { conn, closed } = fake(connect, chunk, chunks);
    server.adopt(conn);
    await closed;
  };
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
    modes: { type: "string", default: "pub,sub,fanout,queue" },
    child: { type: "boolean", default: false },
  },
  allowPositionals: true,
});
if (values.child) {
  const [root, mode, size, rounds] = positionals;
  await child(root, mode, Number(size), Number(rounds));
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
