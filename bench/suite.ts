/**
 * Runs the suite: the driver ceilings against the sink, then every scenario
 * and size against every system, systems interleaved, each run repeated
 * `--repeat` times and reduced to its median.
 *
 * @module
 */
import { hotspots, Profiler } from "./profile.ts";
import type { WorkerPool } from "./pool.ts";
import { rateText, sizeText } from "./report.ts";
import {
  type Ceiling,
  type Outcome,
  type RunOptions,
  runScenario,
  type RunSpec,
  type Scenario,
  supports,
} from "./scenario.ts";
import {
  cpuNs,
  protocolOf,
  schedNs,
  type Server,
  start,
  type System,
  UnavailableError,
} from "./servers.ts";

/** Messages of the unreported warm-up run before each scenario. */
const WARMUP_MESSAGES = 200_000;
/** Functions listed per run with `--profile`. */
const HOTSPOTS_SHOWN = 12;

/** Parsed command line (see `run.ts`). */
export interface Args {
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
  /** Path prefix of the `.cpuprofile` files, or null without `--profile`. */
  profile: string | null;
  /** A results file to print the tables of, instead of running. */
  report: string | undefined;
  options: RunOptions;
}

export function say(text: string): void {
  console.error(text);
}

export function line(o: Outcome): string {
  const what = o.ceiling ? `ceiling ${o.ceiling}` : o.scenario;
  const head = `${o.system.padEnd(10)} ${what.padEnd(12)} ${sizeText(o.size).padEnd(7)}`;
  if (!o.ok) return `${head} FAILED: ${o.error}`;
  const p = o.p50 === undefined ? "" : `  p50 ${o.p50.toFixed(3)} ms  p99 ${o.p99!.toFixed(3)} ms`;
  return `${head} ${rateText(o.rate).padStart(8)} msgs/s${p}`;
}

/** The servers under test, all started up front and restarted if one dies. */
class Fleet {
  #servers = new Map<System, Server>();
  #profilers = new Map<System, Profiler>();
  #dead = new Map<System, string>();
  #options: { root: string; relayrArgs: string[]; inspect: boolean };

  constructor(root: string, relayrArgs: string[], inspect: boolean) {
    this.#options = { root, relayrArgs, inspect };
  }

  /** A profiler attached to the server of `system`, or null when it was not started for one. */
  async profiler(system: System): Promise<Profiler | null> {
    const server = await this.get(system);
    if (server.inspectPort === null) return null;
    let p = this.#profilers.get(system);
    if (!p) {
      p = await Profiler.attach(server.inspectPort);
      this.#profilers.set(system, p);
    }
    return p;
  }

  /** Detaches the profilers. */
  close(): void {
    for (const p of this.#profilers.values()) p.close();
    this.#profilers.clear();
  }

  /** Starts what can start; says why the others cannot. */
  async startAll(systems: System[]): Promise<System[]> {
    for (const system of systems) {
      try {
        const server = await start(system, this.#options);
        this.#servers.set(system, server);
        say(`${system}: pid ${server.pid}, port ${server.port}`);
      } catch (err) {
        const why = err instanceof UnavailableError ? "skipped" : "could not start";
        say(`${system}: ${why}: ${(err as Error).message}`);
      }
    }
    return systems.filter((s) => this.#servers.has(s));
  }

  /**
   * The running server of `system`, restarted first if it has exited; throws
   * (now and for every later call) if it cannot be restarted.
   */
  async get(system: System): Promise<Server> {
    const dead = this.#dead.get(system);
    if (dead) throw new Error(dead);
    const server = this.#servers.get(system)!;
    if (server.exitCode() === null) return server;
    say(`${system} exited with code ${server.exitCode()}; last output:\n${server.log()}`);
    await server.stop();
    this.#profilers.get(system)?.close();
    this.#profilers.delete(system);
    try {
      const next = await start(system, this.#options);
      this.#servers.set(system, next);
      say(`${system}: restarted, pid ${next.pid}, port ${next.port}`);
      return next;
    } catch (err) {
      say((err as Error).message);
      this.#dead.set(system, `${system} exited and could not be restarted`);
      throw new Error(this.#dead.get(system));
    }
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
  for (const key of ["cpuUs", "waitUs", "driverCpuUs"] as const) {
    const v = reps.map((o) => o[key]).filter((c) => c !== undefined).sort((a, b) => a - b);
    if (v.length === reps.length) median[key] = v[Math.floor((v.length - 1) / 2)];
  }
  return median;
}

/**
 * Every scenario and size, systems interleaved (relayr, nats, redis, then the
 * next size), so a noisy neighbour on the machine hits them alike.
 */
export async function suite(pool: WorkerPool, args: Args, root: string, outcomes: Outcome[]) {
  const fleet = new Fleet(root, args.relayrArgs, args.profile !== null);
  try {
    await runAll(pool, fleet, args, outcomes);
  } finally {
    fleet.close();
  }
}

/** Runs one spec, under the CPU profiler when `--profile` asked for one. */
async function measure(pool: WorkerPool, fleet: Fleet, spec: RunSpec, args: Args) {
  let server: Server;
  try {
    server = await fleet.get(spec.system);
  } catch (err) {
    return { ...spec, ok: false, error: (err as Error).message } satisfies Outcome;
  }
  const profiler = args.profile === null ? null : await fleet.profiler(spec.system);
  await profiler?.start();
  const cpu0 = schedNs(server.pid);
  const drv0 = cpuNs(Deno.pid);
  const o = await runScenario(pool, server, spec, args.options);
  const cpu1 = schedNs(server.pid);
  const drv1 = cpuNs(Deno.pid);
  if (cpu0 !== null && cpu1 !== null && o.ok) {
    o.cpuUs = (cpu1.run - cpu0.run) / 1000 / spec.count;
    o.waitUs = (cpu1.wait - cpu0.wait) / 1000 / spec.count;
  }
  if (drv0 !== null && drv1 !== null && o.ok) o.driverCpuUs = (drv1 - drv0) / 1000 / spec.count;
  if (profiler) {
    const profile = await profiler.stop();
    const path = `${args.profile}-${spec.system}-${spec.scenario}-${spec.size}.cpuprofile`;
    await Deno.writeTextFile(path, JSON.stringify(profile));
    o.hotspots = hotspots(profile, HOTSPOTS_SHOWN);
    say(`  profile: ${path}`);
    for (const h of o.hotspots) {
      say(`  ${(100 * h.self).toFixed(1).padStart(5)}%  ${h.fn}  ${h.where}`);
    }
  }
  return o;
}

async function runAll(pool: WorkerPool, fleet: Fleet, args: Args, outcomes: Outcome[]) {
  const systems = await fleet.startAll(args.systems);
  for (const scenario of args.scenarios) {
    // Warm the code paths of this scenario (a JIT server such as Relayr runs
    // the first few hundred thousand messages of a new path several times
    // slower); not reported. rpc warms up inside its run.
    if (scenario !== "rpc") {
      const size = args.sizes[0];
      const count = Math.min(WARMUP_MESSAGES, args.count(size));
      for (const system of systems.filter((s) => supports(s, scenario))) {
        const spec = { system, protocol: protocolOf(system), scenario, size, count };
        await measure(pool, fleet, spec, { ...args, profile: null });
      }
    }
    const running = systems.filter((s) => supports(s, scenario));
    for (const size of args.sizes) {
      const reps = new Map<System, Outcome[]>(running.map((s) => [s, []]));
      for (let rep = 0; rep < args.repeat; rep++) {
        for (const system of running) {
          const count = scenario === "rpc" ? args.rpcCount : args.count(size);
          const spec = { system, protocol: protocolOf(system), scenario, size, count };
          const o = await measure(pool, fleet, spec, args);
          reps.get(system)!.push(o);
          say(line(o));
        }
      }
      for (const system of running) outcomes.push(combine(reps.get(system)!));
    }
  }
}

/**
 * The server a ceiling mode runs against: the publisher's (`pub`) is
 * `discard`, which takes bytes off the socket without reading them, so the
 * ceiling is the publisher's and the kernel's; the receivers' is the sink's
 * source mode. Where `discard` cannot run (not Linux), `sink`, which reads
 * every byte as a broker does.
 */
async function ceilingServers(root: string): Promise<{ sink: Server; discard: Server }> {
  const sink = await start("sink", { root, relayrArgs: [] });
  try {
    return { sink, discard: await start("discard", { root, relayrArgs: [] }) };
  } catch (err) {
    say(`discard: ${(err as Error).message.split("\n")[0]}; the pub ceiling reads into sink.ts`);
    return { sink, discard: sink };
  }
}

/**
 * Driver ceilings: every selected protocol into, and out of, the sink. Each
 * mode and size is warmed up once (unreported, as the scenarios are) and run
 * `--repeat` times, reduced to its median like the scenarios' runs.
 */
export async function ceilings(pool: WorkerPool, args: Args, root: string, outcomes: Outcome[]) {
  const { sink, discard } = await ceilingServers(root);
  const protocols = [...new Set(args.systems.map(protocolOf))];
  try {
    for (const protocol of protocols) {
      // JetStream's publisher waits for publish acks the sink never sends: only its consumers run.
      const modes: Ceiling[] = protocol === "nats"
        ? ["pub", "recv", "fanout"]
        : protocol === "nats-js"
        ? ["ack"]
        : ["pub", "recv", "ack", "fanout"];
      for (const ceiling of modes) {
        const server = ceiling === "pub" ? discard : sink;
        const scenario = ceiling === "pub"
          ? "pub"
          : ceiling === "ack"
          ? "queue"
          : ceiling === "fanout"
          ? "fanout"
          : "sub";
        const spec = { system: server.system, protocol, scenario, ceiling } as const;
        const warmup = Math.min(WARMUP_MESSAGES, args.count(args.sizes[0]));
        await runScenario(
          pool,
          server,
          { ...spec, size: args.sizes[0], count: warmup },
          args.options,
        );
        for (const size of args.sizes) {
          const reps: Outcome[] = [];
          for (let rep = 0; rep < args.repeat; rep++) {
            reps.push(
              await runScenario(
                pool,
                server,
                { ...spec, size, count: args.count(size) },
                args.options,
              ),
            );
          }
          const o = combine(reps);
          outcomes.push(o);
          say(`${protocol.padEnd(6)} ${line(o)}`);
        }
      }
    }
  } finally {
    await sink.stop();
    if (discard !== sink) await discard.stop();
  }
}
