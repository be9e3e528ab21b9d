/**
 * `deno task bench`: Relayr side by side with nats-server and redis-server.
 *
 * Starts each system on 127.0.0.1 on a free port, runs every scenario at
 * every payload size with the raw-protocol drivers in `drivers/`, checks that
 * every message arrived, prints one table and writes the raw results to
 * `bench/results/<timestamp>.json`. See bench/README.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { PAYLOAD_BYTES_MIN } from "./payload.ts";
import { WorkerPool } from "./pool.ts";
import { ceilingTable, failures, mainTable, targetTable } from "./report.ts";
import { type Outcome, type Scenario, SCENARIO_TEXT, SCENARIOS } from "./scenario.ts";
import { setBaseRoot, stopAll, type System, versionOf, which } from "./servers.ts";
import { type Args, ceilings, say, suite } from "./suite.ts";
import { type GrpcRow, grpcTable, grpcVsTcp } from "./grpc.ts";

const SYSTEMS: System[] = [
  "relayr",
  "relayr-log",
  "relayr-log-always",
  "relayr-bun",
  "relayr-tls",
  "relayr-bun-tls",
  "relayr-perms",
  "relayr-ws",
  "relayr-base",
  "relayr-bun-base",
  "nats",
  "nats-ws",
  "nats-js",
  "nats-tls",
  "redis",
  "redis-aof",
  "redis-aof-always",
];
const DEFAULT_SYSTEMS = "relayr,nats,redis";
/** Not a server of its own: the gRPC front end of relayr, measured beside TCP by bench/grpc.ts. */
const GRPC_SYSTEM = "relayr-grpc";
const DEFAULT_SIZES = "16,256,4096";
/** Messages per throughput run: a million, or 256 MiB of payload, whichever is less. */
const MESSAGES_MAX = 1_000_000;
const PAYLOAD_BYTES_PER_RUN = 256 * 1024 * 1024;
/** Timed round trips per rpc run. */
const RPC_COUNT = 20_000;
/** `--quick` divides counts by this. */
const QUICK_DIVISOR = 10;

const HELP = `deno task bench [options]

Runs Relayr and, where installed, nats-server and redis-server side by side.

Options:
  --systems LIST     ${SYSTEMS.join(",")},relayr-grpc (default ${DEFAULT_SYSTEMS})
                     relayr-grpc: gRPC beside TCP on one broker (bench/grpc.ts) on Deno,
                     Bun and dist/relayr, at the first --sizes size
  --scenarios LIST   ${SCENARIOS.join(",")} (default all)
  --sizes LIST       payload bytes, e.g. 16,256,4k (default ${DEFAULT_SIZES}; at least ${PAYLOAD_BYTES_MIN})
  --count N          messages per throughput run (default min(${MESSAGES_MAX}, 256 MiB / size))
  --rpc-count N      timed round trips per rpc run (default ${RPC_COUNT})
  --repeat N         run everything N times, report the median (default 1)
  --quick            a tenth of the default counts (a smoke run)
  --window N         most messages a publisher runs ahead of its receivers (default 8192)
  --window-bytes N   the same in payload bytes, whichever is smaller (default 4194304)
  --prefetch N       queue prefetch: Relayr SUB prefetch, Redis pipelined BRPOPs (default 1000)
  --ack ids|upto     how Relayr consumers settle a read: ACK lines of msg_ids (default), or one
                     cumulative ACK sub_id:<sid> upto:<id> (docs/PROTOCOL.md)
  --stall-ms N       fail a run that makes no progress for this long (default 10000)
  --no-ceiling       skip the driver-ceiling runs against bench/sink.ts
  --relayr-args S    extra arguments for 'main.ts serve' (space separated)
  --base DIR         checkout that relayr-base / relayr-bun-base run from (A/B of two builds,
                     e.g. git worktree add /tmp/relayr-main main); their ratio is new/base
  --profile          CPU-profile relayr and relayr-log during each run: hottest functions
                     on stderr, bench/results/<timestamp>-*.cpuprofile for DevTools
  --markdown         print the tables as Markdown (for bench/README.md)
  --out PATH         results file (default bench/results/<timestamp>.json)
  --report PATH      print the tables of an earlier results file (with --markdown) and exit
  -h, --help         this text

Scenarios:
${SCENARIOS.map((s) => `  ${s.padEnd(8)} ${SCENARIO_TEXT[s]}`).join("\n")}
`;

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function parseSize(text: string): number {
  const m = /^(\d+)\s*(b|k|kb|kib|m|mb|mib)?$/i.exec(text);
  if (!m) throw new TypeError(`Bad size ${JSON.stringify(text)}`);
  const unit = (m[2] ?? "b").toLowerCase()[0];
  const n = Number(m[1]) * (unit === "k" ? 1024 : unit === "m" ? 1024 * 1024 : 1);
  if (n < PAYLOAD_BYTES_MIN) throw new RangeError(`Size ${n} is under ${PAYLOAD_BYTES_MIN} bytes`);
  return n;
}

function positive(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${flag} needs a positive integer`);
  return n;
}

function ackForm(value: string): "ids" | "upto" {
  if (value !== "ids" && value !== "upto") throw new TypeError(`--ack takes ids or upto`);
  return value;
}

function parse(argv: string[]): (Args & { grpc: boolean }) | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      systems: { type: "string", default: DEFAULT_SYSTEMS },
      scenarios: { type: "string", default: SCENARIOS.join(",") },
      sizes: { type: "string", default: DEFAULT_SIZES },
      count: { type: "string" },
      "rpc-count": { type: "string" },
      repeat: { type: "string" },
      quick: { type: "boolean", default: false },
      window: { type: "string" },
      "window-bytes": { type: "string" },
      prefetch: { type: "string" },
      ack: { type: "string", default: "ids" },
      "stall-ms": { type: "string" },
      "no-ceiling": { type: "boolean", default: false },
      "relayr-args": { type: "string", default: "" },
      base: { type: "string" },
      markdown: { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      out: { type: "string" },
      report: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  if (values.base !== undefined) setBaseRoot(values.base);
  const picked = list(values.systems);
  const grpc = picked.includes(GRPC_SYSTEM);
  const systems = picked.filter((s) => s !== GRPC_SYSTEM) as System[];
  for (const s of systems) {
    if (!SYSTEMS.includes(s)) throw new TypeError(`Unknown system ${JSON.stringify(s)}`);
  }
  const scenarios = list(values.scenarios) as Scenario[];
  for (const s of scenarios) {
    if (!SCENARIOS.includes(s)) throw new TypeError(`Unknown scenario ${JSON.stringify(s)}`);
  }
  const divisor = values.quick ? QUICK_DIVISOR : 1;
  const fixed = values.count === undefined ? null : positive(values.count, 0, "count");
  return {
    grpc,
    systems,
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    sizes: list(values.sizes).map(parseSize),
    count: (size) =>
      fixed ??
        Math.ceil(Math.min(MESSAGES_MAX, Math.floor(PAYLOAD_BYTES_PER_RUN / size)) / divisor),
    rpcCount: positive(values["rpc-count"], Math.ceil(RPC_COUNT / divisor), "rpc-count"),
    repeat: positive(values.repeat, 1, "repeat"),
    ceiling: !values["no-ceiling"],
    relayrArgs: list(values["relayr-args"].replaceAll(" ", ",")),
    markdown: values.markdown,
    profile: values.profile ? "" : null,
    report: values.report,
    out: values.out,
    options: {
      window: positive(values.window, 8192, "window"),
      windowBytes: positive(values["window-bytes"], 4 * 1024 * 1024, "window-bytes"),
      prefetch: positive(values.prefetch, 1000, "prefetch"),
      ack: ackForm(values.ack),
      stallMs: positive(values["stall-ms"], 10_000, "stall-ms"),
      rpcWarmup: values.quick ? 200 : 1000,
    },
  };
}

/** Everything printed at the end of a run. */
function tables(outcomes: Outcome[], markdown: boolean): string {
  return [
    mainTable(outcomes, markdown),
    ceilingTable(outcomes, markdown),
    targetTable(outcomes, markdown),
    failures(outcomes),
  ].filter((s) => s !== "").join("\n\n");
}

/** The machine and software the numbers come from. */
async function machine(): Promise<Record<string, unknown>> {
  let cpu = "";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? "";
  } catch { /* not Linux */ }
  const mem = Deno.systemMemoryInfo();
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(mem.total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    bun: which("bun") ? await versionOf("bun", ["--version"]) : null,
    nats: which("nats-server") ? await versionOf("nats-server", ["--version"]) : null,
    redis: which("redis-server") ? await versionOf("redis-server", ["--version"]) : null,
    relayrCommit: await versionOf("git", ["rev-parse", "--short", "HEAD"]),
  };
}

async function main(): Promise<number> {
  let args: (Args & { grpc: boolean }) | null;
  try {
    args = parse(Deno.args);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args === null) {
    console.log(HELP);
    return 0;
  }
  if (args.report !== undefined) {
    const record = JSON.parse(await Deno.readTextFile(args.report));
    console.log(tables(record.outcomes, args.markdown));
    return 0;
  }
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const pool = new WorkerPool();
  const onSignal = async () => {
    await stopAll();
    pool.close();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
  if (args.profile !== null) args.profile = `${root}/bench/results/${stamp}`;
  const meta = await machine();
  say(`relayr bench: ${meta.cores} cores, ${meta.cpu}, deno ${meta.deno}`);
  const outcomes: Outcome[] = [];
  let grpcRows: GrpcRow[] = [];
  try {
    if (args.systems.length > 0) {
      if (args.ceiling) await ceilings(pool, args, root, outcomes);
      await suite(pool, args, root, outcomes);
    }
    if (args.grpc) {
      say("relayr-grpc: gRPC beside TCP on deno, bun, binary");
      grpcRows = await grpcVsTcp({
        runtimes: ["deno", "bun", "binary"],
        size: args.sizes[0],
        seconds: args.rpcCount < RPC_COUNT ? 1 : 3,
        requests: Math.min(args.rpcCount, 2000),
      });
    }
  } finally {
    pool.close();
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  console.log(`\n${tables(outcomes, args.markdown)}\n`);
  if (grpcRows.length > 0) {
    console.log(`gRPC beside TCP (msgs/s, one stream each):\n${grpcTable(grpcRows)}\n`);
  }
  const out = args.out ?? `${root}/bench/results/${stamp}.json`;
  const record = {
    startedAt: startedAt.toISOString(),
    seconds,
    machine: meta,
    args: Deno.args,
    options: args.options,
    outcomes,
    grpc: grpcRows,
  };
  await Deno.writeTextFile(out, JSON.stringify(record, null, 2) + "\n");
  say(`${outcomes.length} runs in ${seconds.toFixed(0)} s; results in ${out}`);
  return outcomes.some((o) => !o.ok) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
