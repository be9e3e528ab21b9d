/**
 * Helpers of the replication tests: publishing with retries and a record of
 * what was confirmed, consuming with ACKs, and a node's view of a queue's
 * replication (its `/api/cluster`).
 */
import type { ReplQueueStats } from "../../src/cluster/mod.ts";
import { RawClient } from "../helpers.ts";
import { clusterOf, type Node, untilView } from "./cluster_helpers.ts";
import { Etcd } from "./etcd.ts";

/** Retryable answers while a queue has no ready leader here. */
export const RETRYABLE = /^ERR (UNAVAILABLE|NOT_LEADER)/;

/** The node's replication view of `queue`, if it has one. */
export async function replOf(node: Node, queue: string): Promise<ReplQueueStats | undefined> {
  return (await clusterOf(node)).replication?.queues.find((q) => q.queue === queue);
}

/** Waits (bounded) until `node` leads `queue` and serves it; returns its view. */
export async function untilLeading(
  node: Node,
  queue: string,
  timeoutMs = 15_000,
): Promise<ReplQueueStats> {
  const v = await untilView(
    node,
    (c) => c.replication?.queues.some((q) => q.queue === queue && q.role === "leader") ?? false,
    `${node.id} to serve ${queue}`,
    timeoutMs,
  );
  return v.replication!.queues.find((q) => q.queue === queue)!;
}

/** The node of `nodes` that serves `queue` now (bounded wait). */
export async function leaderOf(nodes: Node[], queue: string, timeoutMs = 20_000): Promise<Node> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const n of nodes) {
      const q = await replOf(n, queue).catch(() => undefined);
      if (q?.role === "leader") return n;
    }
    if (Date.now() > deadline) throw new Error(`no node serves ${queue}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Publishes `body` on `node` until it is answered `OK` (retrying the
 * retryable errors, bounded); returns the reply. Any other answer throws.
 */
export async function publishRetry(
  node: Node,
  queue: string,
  body: string,
  timeoutMs = 20_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const c = await RawClient.connect(node.port);
  try {
    for (;;) {
      await c.pub(queue, body);
      const line = await c.line(15_000);
      if (line.startsWith("OK")) return line;
      if (!RETRYABLE.test(line) || Date.now() > deadline) {
        throw new Error(`PUB ${body} answered ${line}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await c.close();
  }
}

/**
 * How many copies of a queue's first message (sent with `publishRetry`) its
 * leader holds: one, or two when a first try's outcome was unknown (a commit
 * past `CLUSTER_COMMIT_MS_MAX` on a loaded machine, a leader change) and the
 * retry stored it again. Exact counts after it start from this.
 */
export async function seedsOf(leader: Node, queue: string): Promise<number> {
  const seeds = (await replOf(leader, queue))?.messages;
  if (seeds !== 1 && seeds !== 2) throw new Error(`${leader.id} holds ${seeds} seeds of ${queue}`);
  return seeds;
}

/**
 * Sends `line` (a command; a PUB with its payload) to `node` on a new
 * connection until it is answered other than a retryable refusal (a leader
 * change, a claim etcd was slow to answer); returns that answer. Bounded.
 */
export async function answerRetry(node: Node, line: string): Promise<string> {
  const c = await RawClient.connect(node.port);
  try {
    for (let attempt = 1;; attempt++) {
      await c.send(`${line}\r\n`);
      const a = await c.line(15_000);
      if (!RETRYABLE.test(a) || attempt >= 100) return a;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.close();
  }
}

/** Pipelines `bodies` on one connection; returns each one's answer, in order. */
export async function publishAll(node: Node, queue: string, bodies: string[]): Promise<string[]> {
  const c = await RawClient.connect(node.port);
  try {
    for (const b of bodies) await c.pub(queue, b);
    const out: string[] = [];
    for (let i = 0; i < bodies.length; i++) out.push(await c.line(15_000));
    return out;
  } finally {
    await c.close();
  }
}

/**
 * Subscribes to `queue` on `node` with explicit acks and reads messages until
 * `done(bodies)` or `timeoutMs` of silence; ACKs those `ack` accepts, and
 * returns the bodies delivered and the ones whose ACK was answered OK.
 */
export async function consume(
  node: Node,
  queue: string,
  opts: { ack: (body: string) => boolean; done: (seen: Set<string>) => boolean; idleMs?: number },
): Promise<{ delivered: string[]; acked: string[]; ids: Map<string, string> }> {
  const c = await RawClient.connect(node.port);
  const delivered: string[] = [];
  const acked: string[] = [];
  const ids = new Map<string, string>(); // body to the msg_id it was delivered with
  const seen = new Set<string>();
  const waiting: string[] = []; // bodies whose ACK's answer is still due, in order
  try {
    await c.send(`SUB ${queue} sub_id:s ack:explicit prefetch:64\r\n`);
    const ok = await c.line(5000);
    if (!ok.startsWith("OK")) throw new Error(`SUB answered ${ok}`);
    for (;;) {
      if (opts.done(seen) && waiting.length === 0) break;
      let f;
      try {
        f = await c.frame(opts.idleMs ?? 3000);
      } catch {
        break; // silence: nothing more comes
      }
      if (f.payload !== undefined) {
        const body = new TextDecoder().decode(f.payload);
        delivered.push(body);
        seen.add(body);
        ids.set(body, f.fields!.msg_id);
        if (opts.ack(body)) {
          waiting.push(body);
          await c.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
        }
      } else if (f.line.startsWith("OK")) {
        const b = waiting.shift();
        if (b !== undefined) acked.push(b);
      } else if (f.line.startsWith("ERR")) waiting.shift();
    }
    return { delivered, acked, ids };
  } finally {
    await c.close();
  }
}

/** How many of a node's last log lines a failed cluster test prints. */
const FAILURE_LOG_LINES = 40;

/**
 * Prints the last lines each node logged: a cluster test that fails once in
 * a hundred runs (a leader change at the wrong moment) is explained by what
 * the nodes did, which the assertion alone does not say.
 */
export function dumpLogs(nodes: readonly Node[]): void {
  for (const n of nodes) {
    const lines = n.output().trimEnd().split("\n").slice(-FAILURE_LOG_LINES);
    console.error(`--- ${n.id} (pid ${n.pid}), last ${lines.length} log lines ---`);
    console.error(lines.join("\n"));
  }
}

/**
 * Runs `fn` with a fresh etcd and a list it fills with the nodes it starts;
 * every node in the list is killed and etcd stopped afterwards, whatever
 * happened. When `fn` fails, the nodes' last log lines are printed.
 */
export async function withCluster(
  fn: (etcd: Etcd, nodes: Node[]) => Promise<void>,
): Promise<void> {
  const etcd = await Etcd.start();
  const nodes: Node[] = [];
  try {
    await fn(etcd, nodes);
  } catch (e) {
    dumpLogs(nodes);
    throw e;
  } finally {
    for (const n of nodes) await n.stop("SIGKILL");
    await etcd.stop();
  }
}
