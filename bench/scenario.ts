/**
 * Runs one scenario against one system and checks it: starts the receivers,
 * waits until they are subscribed, starts the publisher, watches progress
 * through the shared control array, and reports a rate and latencies only if
 * every message arrived (and in order where the system promises order).
 *
 * @module
 */
import type { Kind, Protocol } from "./drivers/mod.ts";
import { createQueue, deleteQueue } from "./jetstream.ts";
import type { Job, WorkerPool } from "./pool.ts";
import type { Server, System } from "./servers.ts";
import {
  CTL_RECV,
  CTL_SENT,
  FILTER_STRIDE,
  type PublishResult,
  type PublishTask,
  type ReceiveResult,
  type ReceiveTask,
  type RequestResult,
  type Route,
  type TaskResult,
} from "./tasks.ts";

/** The scenarios, in the order they run. */
export const SCENARIOS = [
  "pub",
  "sub",
  "fanout",
  "queue",
  "delayed",
  "rpc",
  "filter",
  "bind",
] as const;
/** One of {@linkcode SCENARIOS}. */
export type Scenario = typeof SCENARIOS[number];

/** The delay of every message in the `delayed` scenario, ms. */
export const DELAYED_MS = 100;

/** What a scenario means, for `--help` and the README. */
export const SCENARIO_TEXT: Record<Scenario, string> = {
  pub: "publish only, no subscriber; ends with PING/PONG",
  sub: "publish to 1 subscriber; every message checked in order",
  fanout: "publish to 4 subscribers; rate per subscriber",
  queue: "a queue with 2 competing consumers (Relayr and JetStream ACK every message)",
  delayed:
    `the queue scenario with every PUB delay:${DELAYED_MS} (Relayr only); latency includes the delay`,
  rpc: "request/reply round trips, one at a time, one client",
  filter: "Relayr only: 4 subscribers with filter:, each takes 25%; rate of the topic",
  bind: "Relayr only: 1 topic bound to 4 queues, 1 consumer each (ACKs); rate per queue",
};

/**
 * Driver-ceiling runs against the sink: publish into it, receive (and ACK)
 * from it, or receive on the fan-out's 4 connections at once (their threads
 * share the cores as in a fan-out run).
 */
export type Ceiling = "pub" | "recv" | "ack" | "fanout";

/** Whether `system` can run `scenario` (nats-js is JetStream, driven for the queue only; delays are Relayr's). */
export function supports(system: System, scenario: Scenario): boolean {
  if (scenario === "filter" || scenario === "bind" || scenario === "delayed") {
    return system.startsWith("relayr");
  }
  return system !== "nats-js" || scenario === "queue";
}

/** Subscribers or consumers per scenario. */
const RECEIVERS: Record<Scenario, number> = {
  pub: 0,
  sub: 1,
  fanout: 4,
  queue: 2,
  delayed: 2,
  rpc: 0,
  filter: FILTER_STRIDE,
  bind: 4,
};
/** Latency samples a receiver aims for (every Nth message is stamped). */
const SAMPLES_TARGET = 20_000;
/** Longest wait for receivers to subscribe. */
const READY_TIMEOUT_MS = 15_000;
/** How often the coordinator looks at the progress counters. */
const WATCH_INTERVAL_MS = 10;
/** Longest wait for a stopped task to report. */
const REPORT_TIMEOUT_MS = 5_000;

/** Knobs that apply to every run. */
export interface RunOptions {
  /** Most messages a publisher runs ahead of its receivers. */
  window: number;
  /** The same window in payload bytes (whichever is smaller applies). */
  windowBytes: number;
  /** Queue consumers' prefetch (Relayr) or pipelined BRPOPs (Redis). */
  prefetch: number;
  /** How Relayr consumers ACK: `ids` (ACK lines of msg_ids) or `upto` (one cumulative ACK per read). */
  ack: "ids" | "upto";
  /** A run with no progress for this long fails. */
  stallMs: number;
  /** Requests sent before the timed ones in `rpc`. */
  rpcWarmup: number;
}

/** What one run is. */
export interface RunSpec {
  system: System;
  protocol: Protocol;
  scenario: Scenario;
  size: number;
  /** Messages (or requests for `rpc`). */
  count: number;
  /** Set for a driver-ceiling run against the sink. */
  ceiling?: Ceiling;
}

/** What one run measured; numbers only when `ok`. */
export interface Outcome {
  system: System;
  protocol: Protocol;
  scenario: Scenario;
  ceiling?: Ceiling;
  size: number;
  count: number;
  ok: boolean;
  /** Why the check failed. */
  error?: string;
  /** Messages per second (per subscriber for fan-out; requests for rpc). */
  rate?: number;
  /** Payload megabytes (10^6) per second at `rate`. */
  mbps?: number;
  /** Latency percentiles, ms: send to receive, or the round trip for rpc. */
  p50?: number;
  p99?: number;
  p999?: number;
  samples?: number;
  durationMs?: number;
  /** Server CPU time (all threads) per message published, µs; undefined where unreadable. */
  cpuUs?: number;
  /** Time the server's threads were runnable but waited for a core, per message, µs. */
  waitUs?: number;
  /** The load drivers' CPU time (this process, all threads) per message published, µs. */
  driverCpuUs?: number;
  /** The server's busiest functions during the run (`--profile`). */
  hotspots?: { fn: string; where: string; self: number }[];
  /** The rate of every run when `--repeat` ran it more than once (this outcome is the median). */
  repeats?: number[];
}

let runs = 0;

/** Percentile `q` (0..1) of sorted values. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function latencies(outcome: Outcome, parts: Float64Array[]): void {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  all.sort();
  outcome.samples = all.length;
  if (all.length === 0) return;
  outcome.p50 = percentile(all, 0.5);
  outcome.p99 = percentile(all, 0.99);
  outcome.p999 = percentile(all, 0.999);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits for a job's report, killing its worker if it does not come. */
async function report(job: Job): Promise<TaskResult | Error> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(r, REPORT_TIMEOUT_MS, "late"));
  try {
    const result = await Promise.race([job.done, late]);
    if (result !== "late") return result;
    job.kill();
    return new Error("did not report within 5 s");
  } catch (err) {
    return err as Error;
  } finally {
    clearTimeout(timer);
  }
}

/** Everything that goes wrong in one run, joined into the FAILED text. */
class Problems {
  list: string[] = [];
  add(text: string): void {
    if (!this.list.includes(text)) this.list.push(text);
  }
  errors(who: string, errors: string[]): void {
    for (const e of errors.slice(0, 3)) this.add(`${who}: ${e}`);
  }
  get ok(): boolean {
    return this.list.length === 0;
  }
}

/** Runs one scenario; `server` is the system (or the sink, for a ceiling run). */
export async function runScenario(
  pool: WorkerPool,
  server: Server,
  spec: RunSpec,
  options: RunOptions,
): Promise<Outcome> {
  const outcome: Outcome = {
    system: spec.system,
    protocol: spec.protocol,
    scenario: spec.scenario,
    ceiling: spec.ceiling,
    size: spec.size,
    count: spec.count,
    ok: false,
  };
  // Short (the destination's bytes are parsed with every message) and unique
  // within the process, which owns its servers.
  const name = `r${runs++}`;
  const problems = new Problems();
  if (spec.scenario === "rpc") await rpc(pool, server, spec, options, name, outcome, problems);
  else await flow(pool, server, spec, options, name, outcome, problems);
  outcome.ok = problems.ok;
  if (!problems.ok && server.exitCode() === null) {
    const d = await server.diagnostics();
    if (d) problems.add(d);
  }
  if (!problems.ok) {
    outcome.error = problems.list.join("; ");
    for (const k of ["rate", "mbps", "p50", "p99", "p999"] as const) delete outcome[k];
  }
  return outcome;
}

/** Publisher plus receivers: pub, sub, fanout, queue, and the ceiling runs. */
async function flow(
  pool: WorkerPool,
  server: Server,
  spec: RunSpec,
  options: RunOptions,
  name: string,
  outcome: Outcome,
  problems: Problems,
): Promise<void> {
  const { size, count } = spec;
  const route: Route | undefined = spec.ceiling
    ? undefined
    : spec.scenario === "filter" || spec.scenario === "bind"
    ? spec.scenario
    : undefined;
  const queued = spec.scenario === "queue" || spec.scenario === "delayed";
  const kind: Kind = queued || spec.ceiling === "ack" ? "queue" : "topic";
  // Each receiver of a `bind` run consumes a queue of its own that gets every message.
  const recvKind: Kind = route === "bind" ? "queue" : kind;
  const each = kind === "topic";
  const source = spec.ceiling === "recv" || spec.ceiling === "ack" || spec.ceiling === "fanout";
  const receivers = source && spec.ceiling !== "fanout" ? 1 : RECEIVERS[spec.scenario];
  const stampEvery = Math.max(1, Math.floor(count / SAMPLES_TARGET));
  const ctlBuffer = new SharedArrayBuffer(4 * (CTL_RECV + receivers));
  const ctl = new Int32Array(ctlBuffer);
  const base = {
    protocol: spec.protocol,
    port: server.port,
    tls: server.tls,
    ws: server.wsUrl,
    name,
    size,
    auth: server.connectAuth,
  };
  const inBefore = spec.ceiling ? null : await server.inMsgs();
  // JetStream: the run's file-storage stream and durable pull consumer come first.
  const jetstream = spec.protocol === "nats-js" && !spec.ceiling;
  if (jetstream) {
    try {
      await createQueue(server.port, name);
    } catch (err) {
      problems.add(`jetstream setup: ${(err as Error).message}`);
      return;
    }
  }

  const receiveJobs: Job[] = [];
  for (let index = 0; index < receivers; index++) {
    const task: ReceiveTask = {
      ...base,
      role: "receive",
      route,
      kind: recvKind,
      index,
      count,
      stampEvery,
      prefetch: options.prefetch,
      ackUpto: options.ack === "upto",
      source,
    };
    receiveJobs.push(pool.run(task, ctlBuffer));
  }
  const ended = receiveJobs.map(() => false);
  receiveJobs.forEach((j, i) => j.done.finally(() => ended[i] = true).catch(() => {}));
  const subscribed = Promise.all(receiveJobs.map((j) => j.ready));
  if (await Promise.race([subscribed.then(() => true), sleep(READY_TIMEOUT_MS)]) !== true) {
    problems.add("receivers did not subscribe within 15 s");
  }

  let publishJob: Job | null = null;
  let published = false;
  if (!source && problems.ok) {
    const task: PublishTask = {
      ...base,
      role: "publish",
      route,
      kind,
      count,
      stampEvery,
      windowMode: receivers === 0 ? "none" : kind === "queue" ? "sum" : "min",
      window: Math.max(1, Math.min(options.window, Math.floor(options.windowBytes / size))),
      receivers,
      options: spec.scenario === "delayed" ? `delay:${DELAYED_MS}` : undefined,
    };
    publishJob = pool.run(task, ctlBuffer);
    publishJob.done.finally(() => published = true).catch(() => {});
  }

  // Watch until every message arrived, something ended early, or nothing moves.
  const complete = () => {
    if (publishJob && !published) return false;
    let sum = 0;
    for (let r = 0; r < receivers; r++) {
      const got = Atomics.load(ctl, CTL_RECV + r);
      if (each && got < count) return false;
      sum += got;
    }
    return each || sum >= count;
  };
  let last = -1;
  let lastMove = performance.now();
  while (problems.ok && !complete()) {
    let progress = Atomics.load(ctl, CTL_SENT) + (published ? 1 : 0);
    for (let r = 0; r < receivers; r++) progress += Atomics.load(ctl, CTL_RECV + r);
    const now = performance.now();
    if (server.exitCode() !== null) {
      problems.add(`${server.system} exited with code ${server.exitCode()}`);
    } else if (ended.some((e) => e)) {
      problems.add(`receiver ${ended.indexOf(true)} lost its connection`);
    } else if (progress !== last) {
      last = progress;
      lastMove = now;
    } else if (now - lastMove > options.stallMs) {
      problems.add(`stalled for ${options.stallMs / 1000} s`);
    }
    if (!problems.ok) break;
    // Poll: waking on every receiver tick would cost the receivers a core share.
    await sleep(WATCH_INTERVAL_MS);
  }
  if (!problems.ok) {
    const got = receiveJobs.map((_, r) => Atomics.load(ctl, CTL_RECV + r)).join("+");
    problems.add(`sent ${Atomics.load(ctl, CTL_SENT)}, received ${got || "-"} of ${count}`);
    publishJob?.stop();
  }
  for (const j of receiveJobs) j.stop();

  const pub = publishJob ? await report(publishJob) : null;
  const recv = await Promise.all(receiveJobs.map(report));
  let t0 = 0;
  let tEnd = 0;
  if (pub instanceof Error) problems.add(`publisher: ${pub.message}`);
  else if (pub) {
    const p = pub as PublishResult;
    t0 = p.t0;
    tEnd = p.tEnd;
    problems.errors("publisher", p.errors);
    if (p.sent !== count) problems.add(`publisher sent ${p.sent} of ${count}`);
    if (spec.protocol === "redis" && !spec.ceiling && p.replies !== count) {
      problems.add(`redis replied to ${p.replies} of ${count} commands`);
    }
    if (jetstream && p.replies !== count) {
      problems.add(`jetstream acked ${p.replies} of ${count} publishes`);
    }
  }
  const inAfter = inBefore === null ? null : await server.inMsgs();
  if (inBefore !== null && inAfter !== null && inAfter - inBefore !== count) {
    problems.add(`server counted ${inAfter - inBefore} of ${count} messages in`);
  }
  const results: ReceiveResult[] = [];
  recv.forEach((r, i) => {
    if (r instanceof Error) problems.add(`receiver ${i}: ${r.message}`);
    else results.push(r as ReceiveResult);
  });
  checkReceivers(recvKind, route, count, results, problems);
  if (jetstream && server.exitCode() === null) {
    await deleteQueue(server.port, name).catch((err) =>
      problems.add(`jetstream cleanup: ${(err as Error).message}`)
    );
  }
  if (source) t0 = Math.min(...results.map((r) => r.t0));
  if (receivers > 0) tEnd = Math.max(...results.map((r) => r.tLast));
  outcome.durationMs = tEnd - t0;
  outcome.rate = count / ((tEnd - t0) / 1000);
  outcome.mbps = outcome.rate * size / 1e6;
  latencies(outcome, results.map((r) => r.latencies));
}

function checkReceivers(
  kind: Kind,
  route: Route | undefined,
  count: number,
  results: ReceiveResult[],
  problems: Problems,
) {
  results.forEach((r, i) => {
    problems.errors(`receiver ${i}`, r.errors);
    if (r.orderErrors > 0) {
      problems.add(`receiver ${i}: ${r.orderErrors} out of order (first: ${r.firstOrderError})`);
    }
    // A `filter` subscriber gets sequence numbers i, i + 4, ...; a `bind` queue gets all of them.
    const want = route === "filter" ? Math.ceil((count - i) / FILTER_STRIDE) : count;
    if ((kind === "topic" || route === "bind") && r.count !== want) {
      problems.add(`receiver ${i} got ${r.count} of ${want}`);
    }
  });
  if (kind !== "queue" || route === "bind" || results.length === 0) return;
  const total = results.reduce((n, r) => n + r.count, 0);
  let duplicates = results.reduce((n, r) => n + r.duplicates, 0);
  let distinct = 0;
  const union = new Uint8Array(Math.ceil(count / 8));
  for (const r of results) {
    const seen = r.seen!;
    for (let b = 0; b < union.length; b++) {
      duplicates += popcount(union[b] & seen[b]);
      union[b] |= seen[b];
    }
  }
  for (let b = 0; b < union.length; b++) distinct += popcount(union[b]);
  if (duplicates > 0) problems.add(`${duplicates} duplicate deliveries`);
  if (distinct !== count) problems.add(`consumers got ${distinct} distinct of ${count}`);
  if (total !== count && duplicates === 0) problems.add(`consumers got ${total} of ${count}`);
}

function popcount(b: number): number {
  let n = 0;
  for (; b; b &= b - 1) n++;
  return n;
}

/** Request/reply: a responder, then one requester timing round trips. */
async function rpc(
  pool: WorkerPool,
  server: Server,
  spec: RunSpec,
  options: RunOptions,
  name: string,
  outcome: Outcome,
  problems: Problems,
): Promise<void> {
  const ctl = new SharedArrayBuffer(4 * CTL_RECV);
  const base = {
    protocol: spec.protocol,
    port: server.port,
    tls: server.tls,
    ws: server.wsUrl,
    name,
    size: spec.size,
    auth: server.connectAuth,
  };
  const responder = pool.run({ ...base, role: "respond" }, ctl);
  await responder.ready;
  const requester = pool.run({
    ...base,
    role: "request",
    count: spec.count,
    warmup: options.rpcWarmup,
  }, ctl);
  let finished = false;
  requester.done.finally(() => finished = true).catch(() => {});
  const deadline = performance.now() + 10 * options.stallMs;
  while (!finished && server.exitCode() === null && performance.now() < deadline) await sleep(20);
  if (server.exitCode() !== null) {
    problems.add(`${server.system} exited with code ${server.exitCode()}`);
  }
  if (!finished) {
    problems.add("requests did not finish in time");
    requester.stop();
  }
  const req = await report(requester);
  responder.stop();
  const res = await report(responder);
  if (res instanceof Error) problems.add(`responder: ${res.message}`);
  else problems.errors("responder", res.errors);
  if (req instanceof Error) {
    problems.add(`requester: ${req.message}`);
    return;
  }
  const r = req as RequestResult;
  problems.errors("requester", r.errors);
  if (r.mismatches > 0) problems.add(`${r.mismatches} replies did not match their request`);
  if (r.count !== spec.count) problems.add(`${r.count} of ${spec.count} round trips completed`);
  outcome.durationMs = r.tEnd - r.t0;
  outcome.rate = r.count / ((r.tEnd - r.t0) / 1000);
  outcome.mbps = outcome.rate * spec.size / 1e6;
  latencies(outcome, [r.rtts]);
}
