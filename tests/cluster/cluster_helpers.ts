/**
 * Cluster test helpers: broker nodes as child processes joined to a test
 * etcd, and their `/api/cluster` view.
 */
import { type ClusterStats, Interconnect } from "../../src/cluster/mod.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { type ServerProcess, startServerProcess } from "../child.ts";
import { RawClient } from "../helpers.ts";

/**
 * An `Interconnect` (node "a", plain TCP) on a fresh 127.0.0.1 port, for
 * tests of the cluster port in process: what peers deliver goes to
 * `delivered`, its log lines to `logs`.
 */
export function linkOnFreePort(
  delivered: string[],
  logs: string[] = [],
): { link: Interconnect; port: number } {
  const listener = denoRuntime.listen({ hostname: "127.0.0.1", port: 0 });
  const link = new Interconnect({
    nodeId: "a",
    listener,
    dial: (h, p) => denoRuntime.connect({ hostname: h, port: p }),
    tick: () => {},
    deliver: (topic) => delivered.push(topic),
    log: (_, message) => logs.push(message),
  });
  return { link, port: listener.port };
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** A broker child process in a cluster. */
export interface Node extends ServerProcess {
  readonly id: string;
}

/**
 * Starts `relayr serve` as node `id` of the cluster on `etcdUrl` (under Bun
 * with `bun`); `denoFlags` go to `deno run` (a bench's `--inspect`).
 */
export async function startNode(
  etcdUrl: string,
  id: string,
  extra: string[] = [],
  bun = false,
  denoFlags: string[] = [],
): Promise<Node> {
  const [cmd, ...run] = bun ? ["bun", MAIN] : [Deno.execPath(), "run", ...denoFlags, "-A", MAIN];
  const p = await startServerProcess(cmd, [...run, ...serveArgs(etcdUrl, id, extra)]);
  return Object.assign(p, { id });
}

/** The arguments after the main module that make node `id` of the cluster on `etcdUrl`. */
export function serveArgs(etcdUrl: string, id: string, extra: string[]): string[] {
  return [
    "serve",
    "--cluster-etcd",
    etcdUrl,
    "--node-id",
    id,
    "--cluster-listen",
    "127.0.0.1:0",
    ...extra,
  ];
}

/** The node's `/api/cluster`. */
export async function clusterOf(node: ServerProcess): Promise<ClusterStats> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/cluster`);
  if (!res.ok) throw new Error(`/api/cluster answered ${res.status}: ${await res.text()}`);
  return await res.json();
}

/** Polls the node's view until `ok(view)` (bounded by `timeoutMs`); returns that view. */
export async function untilView(
  node: ServerProcess,
  ok: (c: ClusterStats) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<ClusterStats> {
  const deadline = Date.now() + timeoutMs;
  let last: ClusterStats | undefined;
  for (;;) {
    last = await clusterOf(node);
    if (ok(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last view: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The leader of `queue` in a view. */
export function leaderIn(
  c: ClusterStats,
  queue: string,
): { node: string; epoch: number } | undefined {
  return c.leaders.find((l) => l.queue === queue);
}

/** Publishes one message to `dest` on the node and waits for its OK. */
export async function publishOn(node: ServerProcess, dest: string, body: string): Promise<void> {
  const c = await RawClient.connect(node.port);
  try {
    // A refusal made before anything was stored ("...; retry": the queue is between leaders, or
    // its claim is not seen yet) is retried, as a client should; anything else fails the test.
    for (let attempt = 1;; attempt++) {
      await c.send(`PUB ${dest} ${new TextEncoder().encode(body).length}\r\n${body}\r\n`);
      const line = await c.line(5000);
      if (line.startsWith("OK")) return;
      if (!/^ERR UNAVAILABLE .*; retry$/.test(line) || attempt === 50) {
        throw new Error(`PUB ${dest} answered ${line}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.close();
  }
}

/** Starts nodes `ids` one after the other, each pushed to `into` as it starts (so a failure stops the ones before). */
export async function startNodes(
  etcdUrl: string,
  ids: string[],
  extra: string[],
  into: Node[],
): Promise<Node[]> {
  for (const id of ids) into.push(await startNode(etcdUrl, id, extra));
  return into;
}

/**
 * `first` holds `queue` first (and leads it), then `second` publishes to it
 * too (forwarded to `first`) and holds a copy of it, as its replica
 * (`--replicas` at least 2); returns the epoch.
 */
export async function leadThenShare(first: Node, second: Node, queue: string): Promise<number> {
  await publishOn(first, queue, "first");
  const v = await untilView(
    first,
    (c) => leaderIn(c, queue)?.node === first.id,
    `${first.id} leads`,
  );
  await publishOn(second, queue, "second");
  await untilView(
    second,
    (c) => c.replication?.queues.some((q) => q.queue === queue && q.messages === 2) ?? false,
    `${second.id} to hold a copy of ${queue}`,
  );
  return leaderIn(v, queue)!.epoch;
}

/**
 * Publishes to `queue` on `node` until that node leads it (bounded): while
 * the old leader's key lives, a publish is forwarded there (and answered
 * `UNAVAILABLE` once it is gone); once the key lapsed, the next publish makes
 * `node` claim the queue. Returns the node's view then.
 */
export async function takeOver(
  node: Node,
  queue: string,
  members: number,
  timeoutMs = 15_000,
): Promise<ClusterStats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await publishOn(node, queue, "take-over").catch(() => {});
    const v = await clusterOf(node);
    if (leaderIn(v, queue)?.node === node.id && v.members.length === members) return v;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${node.id} to lead ${queue}; last view: ${JSON.stringify(v)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A temporary cluster secret file (mode `mode`, 0600 unless given) holding `secret`; the caller removes it. */
export async function writeClusterSecret(secret: string, mode = 0o600): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "relayr-cluster-secret-" });
  await Deno.writeTextFile(path, secret + "\n");
  await Deno.chmod(path, mode);
  return path;
}
