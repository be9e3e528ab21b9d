/**
 * `deno task bench:foreign`: publish-only as a foreign client sees it, beside
 * the bench's own publisher. Compiles `foreign/cpub.c` (prebuilt PUB frames,
 * blocking 256 KiB `write`s, PING/PONG at the end) with `gcc`, starts the
 * systems as `deno task bench` does, and runs both publishers against each,
 * interleaved, round after round: the rate, the publisher's CPU per message
 * and the server's (CPU and run-queue wait, `/proc/<pid>/task/*\/schedstat`).
 * The last column is the rate over nats-server's with the same publisher.
 *
 * Run: `deno task bench:foreign [--systems relayr,relayr-bun,nats] [--size 4096]
 * [--count 262144] [--rounds 4]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { publish } from "./roles.ts";
import { cpuNs, schedNs, type Server, start, type System, which } from "./servers.ts";

/** Messages of the unreported first run of each publisher against each system. */
const WARMUP_MESSAGES = 100_000;
/** Destination of every run: `topic:bench.<NAME>` for Relayr, `bench.<NAME>` for NATS. */
const NAME = "fp";

interface Run {
  rate: number;
  clientUs: number;
  serverUs: number;
  waitUs: number;
}

type Publisher = "c" | "bench";

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

/** One run of the C publisher; its own output gives the rate and its CPU per message. */
async function runC(cpub: string, server: Server, size: number, count: number) {
  const args = [server.protocol, `${server.port}`, `${size}`, `${count}`, `${256 * 1024}`];
  const out = await new Deno.Command(cpub, { args: [...args, `bench.${NAME}`], stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  const m = /([\d.]+) M msgs\/s .*client cpu ([\d.]+) us\/msg/.exec(text);
  if (!out.success || !m) {
    throw new Error(`cpub failed: ${text}${new TextDecoder().decode(out.stderr)}`);
  }
  return { rate: Number(m[1]) * 1e6, clientUs: Number(m[2]) };
}

/** One run of the bench's publisher (roles.ts), on this thread; CPU from this process. */
async function runBench(server: Server, size: number, count: number) {
  const ctl = new Int32Array(new SharedArrayBuffer(16));
  const cpu0 = cpuNs(Deno.pid)!;
  const r = await publish(
    {
      role: "publish",
      protocol: server.protocol,
      port: server.port,
      name: NAME,
      size,
      kind: "topic",
      count,
      stampEvery: count,
      windowMode: "none",
      window: count,
      receivers: 0,
    },
    ctl,
    { stopped: false, wire: null },
  );
  if (!r.pong || r.errors.length > 0) throw new Error(`publisher: ${r.errors.join("; ")}`);
  return {
    rate: count / ((r.tEnd - r.t0) / 1000),
    clientUs: (cpuNs(Deno.pid)! - cpu0) / 1000 / count,
  };
}

async function run(
  who: Publisher,
  cpub: string,
  server: Server,
  size: number,
  count: number,
): Promise<Run> {
  const s0 = schedNs(server.pid)!;
  const r = who === "c"
    ? await runC(cpub, server, size, count)
    : await runBench(server, size, count);
  const s1 = schedNs(server.pid)!;
  return {
    ...r,
    serverUs: (s1.run - s0.run) / 1000 / count,
    waitUs: (s1.wait - s0.wait) / 1000 / count,
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      systems: { type: "string", default: "relayr,relayr-bun,nats" },
      size: { type: "string", default: "4096" },
      count: { type: "string", default: "262144" },
      rounds: { type: "string", default: "4" },
    },
  });
  const systems = values.systems.split(",") as System[];
  const size = Number(values.size);
  const count = Number(values.count);
  const rounds = Number(values.rounds);
  if (!which("gcc")) {
    console.error("bench:foreign: needs gcc to build bench/foreign/cpub.c");
    return 2;
  }
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const dir = await Deno.makeTempDir({ prefix: "relayr-foreign-" });
  const cpub = `${dir}/cpub`;
  const servers: Server[] = [];
  try {
    const cc = await new Deno.Command("gcc", {
      args: ["-O2", "-o", cpub, `${root}/bench/foreign/cpub.c`],
    }).output();
    if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
    for (const system of systems) servers.push(await start(system, { root, relayrArgs: [] }));
    const runs = new Map<string, Run[]>();
    for (const s of servers) {
      for (const who of ["c", "bench"] as const) {
        await run(who, cpub, s, size, Math.min(WARMUP_MESSAGES, count));
        runs.set(`${s.system} ${who}`, []);
      }
    }
    for (let r = 0; r < rounds; r++) {
      // Alternate which publisher goes first, so neither always follows the other.
      const order: Publisher[] = r % 2 === 0 ? ["c", "bench"] : ["bench", "c"];
      for (const s of servers) {
        for (const who of order) {
          runs.get(`${s.system} ${who}`)!.push(await run(who, cpub, s, size, count));
        }
      }
    }
    console.log(`publish-only, ${size} B, ${count} messages a run, medians of ${rounds} rounds:`);
    console.log("system      publisher  msgs/s  client µs  server µs  server wait µs  vs nats");
    for (const [key, list] of runs) {
      const [system, who] = key.split(" ");
      const nats = runs.get(`nats ${who}`);
      const rate = median(list.map((x) => x.rate));
      const vs = nats && system !== "nats"
        ? `${(rate / median(nats.map((x) => x.rate))).toFixed(2)}x`
        : "";
      console.log(
        `${system.padEnd(11)} ${who.padEnd(9)} ${(rate / 1000).toFixed(0).padStart(6)}k ` +
          `${median(list.map((x) => x.clientUs)).toFixed(3).padStart(10)} ` +
          `${median(list.map((x) => x.serverUs)).toFixed(3).padStart(10)} ` +
          `${median(list.map((x) => x.waitUs)).toFixed(3).padStart(15)}  ${vs}`,
      );
    }
    return 0;
  } finally {
    for (const s of servers) await s.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main());
