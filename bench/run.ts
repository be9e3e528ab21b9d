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
import { ceilingTable, failures, mainTable, rateText, sizeText, targetTable } from "./report.ts";
import { PAYLOAD_BYTES_MIN } from "./payload.ts";
import { WorkerPool } from "./pool.ts";
import {
  type Ceiling,
  type Outcome,
  type RunOptions,
  runScenario,
  type Scenario,
  SCENARIO_TEXT,
  SCENARIOS,
} from "./scenario.ts";
import {
  protocolOf,
  type Server,
  start,
  stopAll,
  type System,
  UnavailableError,
  versionOf,
  which,
} from "./servers.ts";

const SYSTEMS: System[] = ["relayr", "relayr-bun", "nats", "redis"];
const DEFAULT_SYSTEMS = "relayr,nats,redis";
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
  --systems LIST     ${SYSTEMS.join(",")} (default ${DEFAULT_SYSTEMS})
  --scenarios LIST   ${SCENARIOS.join(",")} (default all)
  --sizes LIST       payload bytes, e.g. 16,256,4k (default ${DEFAULT_SIZES}; at least ${PAYLOAD_BYTES_MIN})
  --count N          messages per throughput run (default min(${MESSAGES_MAX}, 256 MiB / size))
  --rpc-count N      timed round trips per rpc run (default ${RPC_COUNT})
  --repeat N         run everything N times, report the median (default 1)
  --quick            a tenth of the default counts (a smoke run)
  --window N         most messages a publisher runs ahead of its receivers (default 8192)
  --window-bytes N   the same in payload bytes, whichever is smaller (default 4194304)
  --prefetch N       queue prefetch: Relayr SUB prefetch, Redis pipelined BRPOPs (default 1000)
  --stall-ms N       fail a run that makes no progress for this long (default 10000)
  --no-ceiling       skip the driver-ceiling runs against bench/sink.ts
  --relayr-args S    extra arguments for 'main.ts serve' (space separated)
  --markdown         print the tables as Markdown (for bench/README.md)
  --out PATH         results file (default bench/results/<timestamp>.json)
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

/** Parsed command line. */
interface Args {
  systems: System[];
  scenarios: Scenario[];
  sizes: number[];
  count: (size: number) => number;
  rpcCount: number;
  repeat: number;
  ceiling: boolean;
  relayrArgs: string[];
  markdown: boolean;
  out: string | undefined;
  options: RunOptions;
}

function parse(argv: string[]): Args | null {
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
      "stall-ms": { type: "string" },
      "no-ceiling": { type: "boolean", default: false },
      "relayr-args": { type: "string", default: "" },
      markdown: { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  const systems = list(values.systems) as System[];
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
    out: values.out,
    options: {
      window: positive(values.window, 8192, "window"),
      windowBytes: positive(values["window-bytes"], 4 * 1024 * 1024, "window-bytes"),
      prefetch: positive(values.prefetch, 1000, "prefetch"),
      stallMs: positive(values["stall-ms"], 10_000, "stall-ms"),
      rpcWarmup: values.quick ? 200 : 1000,
    },
  };
}

function say(text: string): void {
  console.error(text);
}

function line(o: Outcome): string {
  const what = o.ceiling ? `ceiling ${o.ceiling}` : o.scenario;
  const head = `${o.system.padEnd(10)} ${what.padEnd(12)} ${sizeText(o.size).padEnd(7)}`;
  if (!o.ok) return `${head} FAILED: ${o.error}`;
  const p = o.p50 === undefined ? "" : `  p50 ${o.p50.toFixed(3)} ms  p99 ${o.p99!.toFixed(3)} ms`;
  return `${head} ${rateText(o.rate).padStart(8)} msgs/s${p}`;
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

/** The servers under test, all started up front and restarted if one dies. */
class Fleet {
  #servers = new Map<System, Server>();
  #root: string;
  #relayrArgs: string[];

  constructor(root: string, relayrArgs: string[]) {
    this.#root = root;
    this.#relayrArgs = relayrArgs;
  }

  /** Starts what can start; says why the others cannot. */
  async startAll(systems: System[]): Promise<System[]> {
    for (const system of systems) {
      try {
        const server = await start(system, { root: this.#root, relayrArgs: this.#relayrArgs });
        this.#servers.set(system, server);
        say(`${system}: pid ${server.pid}, port ${server.port}`);
      } catch (err) {
        const why = err instanceof UnavailableError ? "skipped" : "could not start";
        say(`${system}: ${why}: ${(err as Error).message}`);
      }
    }
    return systems.filter((s) => this.#servers.has(s));
  }

  /** The running server of `system`, restarted first if it has exited. */
  async get(system: System): Promise<Server> {
    const server = this.#servers.get(system)!;
    if (server.exitCode() === null) return server;
    say(`${system} exited with code ${server.exitCode()}; last output:\n${server.log()}`);
    await server.stop();
    const next = await start(system, { root: this.#root, relayrArgs: this.#relayrArgs });
    this.#servers.set(system, next);
    say(`${system}: restarted, pid ${next.pid}, port ${next.port}`);
    return next;
  }
}

/** One outcome from repeated runs: a failure if any failed, else the median. */
function combine(reps: Outcome[]): Outcome {
  const failed = reps.filter((o) => !o.ok);
  if (failed.length > 0) {
    const o = { ...failed[0] };
    if (reps.length > 1) o.error = `failed in ${failed.length} of ${reps.length} runs: ${o.error}`;
    return o;
  }
  // Median by rate, or by p50 for round trips (where lower is better).
  const key = (o: Outcome) => o.scenario === "rpc" ? -o.p50! : o.rate!;
  const sorted = [...reps].sort((a, b) => key(a) - key(b));
  const median = { ...sorted[Math.floor((sorted.length - 1) / 2)] };
  if (reps.length > 1) median.repeats = reps.map((o) => o.rate!);
  return median;
}

/**
 * Every scenario and size, systems interleaved (relayr, nats, redis, then the
 * next size), so a noisy neighbour on the machine hits them alike.
 */
async function suite(pool: WorkerPool, args: Args, root: string, outcomes: Outcome[]) {
  const fleet = new Fleet(root, args.relayrArgs);
  const systems = await fleet.startAll(args.systems);
  // Warm the servers' and the workers' JIT; not reported.
  for (const system of systems) {
    const spec = { system, protocol: protocolOf(system), scenario: "sub" as const, size: 256 };
    await runScenario(pool, await fleet.get(system), {
      ...spec,
      count: Math.min(100_000, args.count(256)),
    }, args.options);
  }
  for (const scenario of args.scenarios) {
    for (const size of args.sizes) {
      const reps = new Map<System, Outcome[]>(systems.map((s) => [s, []]));
      for (let rep = 0; rep < args.repeat; rep++) {
        for (const system of systems) {
          const count = scenario === "rpc" ? args.rpcCount : args.count(size);
          const spec = { system, protocol: protocolOf(system), scenario, size, count };
          const o = await runScenario(pool, await fleet.get(system), spec, args.options);
          reps.get(system)!.push(o);
          say(line(o));
        }
      }
      for (const system of systems) outcomes.push(combine(reps.get(system)!));
    }
  }
}

/** Driver ceilings: every selected protocol into, and out of, the sink. */
async function ceilings(pool: WorkerPool, args: Args, root: string, outcomes: Outcome[]) {
  const sink = await start("sink", { root, relayrArgs: [] });
  const protocols = [...new Set(args.systems.map(protocolOf))];
  try {
    for (const protocol of protocols) {
      const modes: Ceiling[] = protocol === "nats" ? ["pub", "recv"] : ["pub", "recv", "ack"];
      for (const ceiling of modes) {
        for (const size of args.sizes) {
          const o = await runScenario(pool, sink, {
            system: "sink",
            protocol,
            scenario: ceiling === "pub" ? "pub" : ceiling === "ack" ? "queue" : "sub",
            size,
            count: args.count(size),
            ceiling,
          }, args.options);
          outcomes.push(o);
          say(`${protocol.padEnd(6)} ${line(o)}`);
        }
      }
    }
  } finally {
    await sink.stop();
  }
}

async function main(): Promise<number> {
  let args: Args | null;
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
  const meta = await machine();
  say(`relayr bench: ${meta.cores} cores, ${meta.cpu}, deno ${meta.deno}`);
  const outcomes: Outcome[] = [];
  try {
    if (args.ceiling) await ceilings(pool, args, root, outcomes);
    await suite(pool, args, root, outcomes);
  } finally {
    pool.close();
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  const md = args.markdown;
  const sections = [
    mainTable(outcomes, md),
    ceilingTable(outcomes, md),
    targetTable(outcomes, md),
    failures(outcomes),
  ].filter((s) => s !== "");
  console.log(`\n${sections.join("\n\n")}\n`);
  const out = args.out ??
    `${root}/bench/results/${
      startedAt.toISOString().replaceAll(":", "-").replace(/\.\d+Z$/, "Z")
    }.json`;
  const record = {
    startedAt: startedAt.toISOString(),
    seconds,
    machine: meta,
    args: Deno.args,
    options: args.options,
    outcomes,
  };
  await Deno.writeTextFile(out, JSON.stringify(record, null, 2) + "\n");
  say(`${outcomes.length} runs in ${seconds.toFixed(0)} s; results in ${out}`);
  return outcomes.some((o) => !o.ok) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
