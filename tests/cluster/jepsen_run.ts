/**
 * One Jepsen run: a cluster (`jepsen_harness.ts`), the workload
 * (`jepsen_client.ts`) publishing and consuming one queue through it, the
 * faults one after the other (each waiting for the workload to make progress
 * again before the next), then the heal, the final drain and the check
 * (`checker.ts`). Used by tests/cluster/jepsen_test.ts (short) and
 * `deno task bench:jepsen` (long).
 *
 * @module
 */
import { RawClient } from "../helpers.ts";
import { check, type Verdict } from "./checker.ts";
import { History } from "./history.ts";
import { type ClusterOptions, JepsenCluster, type JepsenNode } from "./jepsen_harness.ts";
import { Workload, type WorkloadOptions } from "./jepsen_client.ts";

/** The nemeses (see jepsen_harness.ts). */
export type Fault = "kill" | "pause" | "wipe" | "etcd";
/** All of them, for flag validation. */
export const FAULTS: readonly Fault[] = ["kill", "pause", "wipe", "etcd"];

/** Options of {@linkcode runJepsen}. */
export interface RunOptions {
  cluster: ClusterOptions;
  workload?: Partial<Omit<WorkloadOptions, "targets">>;
  faults: Fault[];
  /** Go on cycling through `faults` until this long has passed since the start (ms). */
  durationMs?: number;
  /** OK'd publishes to wait for before the first fault and after each one (progress). */
  progress?: number;
  /** Final drain: quiet time after the last OK'd publish is delivered, and its bound. */
  quietMs?: number;
  drainMs?: number;
  /** Check per-publisher order of first deliveries (needs one consumer). */
  order?: boolean;
  /**
   * Check that a payload delivered again is marked a redelivery (default: with etcd, i.e. a
   * replicated cluster, whose new leaders mark what they recover).
   */
  marked?: boolean;
  /** Called with each line of progress (what the nemesis did). */
  log?: (line: string) => void;
  /**
   * Publish to this topic instead of the queue, after `BIND <topic> <queue>` on the first
   * node: every payload reaches the queue as a binding's copy (docs/CLUSTERING.md).
   */
  bindTopic?: string;
}

/** What a run saw. */
export interface RunResult {
  history: History;
  verdict: Verdict;
  /** One line per fault. */
  faults: string[];
  /** Whether the drain saw every OK'd publish delivered. */
  drained: boolean;
  ms: number;
  /** The tail of each node's output at the end of the run (for a failure's diagnosis). */
  outputs: string;
  /**
   * Each node's copy of the queue when the drain ended (role, epoch, lsn, messages): whether
   * what the drain missed was still held somewhere (slow) or nowhere (lost).
   */
  copies: string;
}

/** Longest wait for the workload to make progress (before the first fault, after each). */
const PROGRESS_TIMEOUT_MS = 30_000;

/** How much of each node's output a result keeps. */
const OUTPUT_TAIL_CHARS = 20_000;

/** The queue every run uses. */
export const JEPSEN_QUEUE = "queue:jepsen";

/** Workload defaults: a few publishers and consumers, small windows, a bounded op time. */
export const WORKLOAD_DEFAULTS: Omit<WorkloadOptions, "targets"> = {
  queue: JEPSEN_QUEUE,
  publishers: 3,
  consumers: 3,
  window: 4,
  pacingMs: 5,
  prefetch: 16,
  ackDelayMs: 30,
  ackTimeoutMs: 5_000,
  opTimeoutMs: 5_000,
};

/** Waits until `n` more publishes than now were answered OK (bounded). */
async function progress(w: Workload, n: number): Promise<void> {
  const target = w.okd.size + n;
  const deadline = Date.now() + PROGRESS_TIMEOUT_MS;
  while (w.okd.size < target) {
    if (Date.now() > deadline) {
      throw new Error(`no progress: ${w.okd.size} publishes OK'd, waiting for ${target}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs the faults against a cluster under load, heals, drains and checks the history. */
export async function runJepsen(o: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  const history = new History();
  const wo = { ...WORKLOAD_DEFAULTS, ...o.workload, publishTo: o.bindTopic };
  const cluster = await JepsenCluster.start(o.cluster, history, wo.queue);
  if (o.bindTopic !== undefined) {
    try {
      await bind(cluster.nodes, o.bindTopic, wo.queue);
      history.note(`BIND ${o.bindTopic} ${wo.queue}`);
    } catch (e) {
      await cluster.stop();
      throw e;
    }
  }
  const workload = new Workload(history, { ...wo, targets: cluster.targets });
  const log = o.log ?? (() => {});
  const faults: string[] = [];
  let drained = false;
  let outputs = "";
  let copies = "";
  try {
    workload.startConsumers();
    workload.startPublishers();
    await progress(workload, o.progress ?? 50);
    const more = (i: number) =>
      i < o.faults.length ||
      (o.faults.length > 0 && performance.now() - t0 < (o.durationMs ?? 0));
    for (let i = 0; more(i); i++) {
      const f = o.faults[i % o.faults.length];
      const what = f === "kill"
        ? await cluster.killLeader()
        : f === "pause"
        ? await cluster.pauseLeader()
        : f === "wipe"
        ? await cluster.wipeFollower()
        : await cluster.restartEtcd();
      faults.push(what);
      log(`round ${i + 1}: ${what}`);
      await progress(workload, o.progress ?? 50);
    }
    history.note("faults over: stop publishing, drain");
    await workload.stopPublishing();
    drained = await workload.drain(o.quietMs ?? 1_000, o.drainMs ?? 15_000);
    history.note(drained ? "drained" : "drain timed out");
    copies = await cluster.copies();
    outputs = cluster.outputs(OUTPUT_TAIL_CHARS);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${cluster.outputs()}`);
  } finally {
    await workload.stop();
    await cluster.stop();
  }
  const verdict = check(history.ops, { order: o.order, marked: o.marked ?? o.cluster.etcd });
  return {
    history,
    verdict,
    faults,
    drained,
    ms: Math.round(performance.now() - t0),
    outputs,
    copies,
  };
}

/**
 * `BIND <topic> <queue>` on the first node, then waits (bounded) until every node lists it:
 * a node publishes with the bindings its watch brought, so none may publish before it has it.
 */
async function bind(nodes: readonly JepsenNode[], topic: string, queue: string): Promise<void> {
  const c = await RawClient.connect(nodes[0].port);
  try {
    await c.send(`BIND ${topic} ${queue}\r\n`);
    const line = await c.line(5_000);
    if (line !== "OK") throw new Error(`BIND answered ${line}`);
  } finally {
    await c.close();
  }
  const deadline = Date.now() + PROGRESS_TIMEOUT_MS;
  for (const n of nodes) {
    for (;;) {
      const stats = await (await fetch(`http://127.0.0.1:${n.httpPort}/api/stats`)).json();
      if (stats.bindings.list.some((b: { pattern: string }) => b.pattern === topic)) break;
      if (Date.now() > deadline) throw new Error(`${n.id} never listed the binding of ${topic}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
