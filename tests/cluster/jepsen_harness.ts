/**
 * The Jepsen harness: etcd and broker nodes as child processes on fixed
 * 127.0.0.1 ports (picked free at start, kept across restarts so clients
 * dial the same addresses), each with its own data dir, and the nemeses:
 *
 * - `kill`: SIGKILL the leader of the queue (from `/api/cluster`), wait for
 *   another node to lead it with a larger epoch, restart the dead one on its
 *   data dir (once its lease has lapsed and its node id is free again);
 * - `pause`: SIGSTOP the leader until another node leads the queue (its
 *   lease lapsed: cut off from etcd), then SIGCONT; it must come back as a
 *   follower;
 * - `wipe`: SIGKILL a node that does not lead the queue, delete its data dir,
 *   restart it empty (it must catch up);
 * - `etcd`: SIGKILL etcd until every node says it is unreachable, restart it
 *   on its data dir, wait until every node reaches it again.
 *
 * Every wait is for an event, bounded in time; only PIDs this harness
 * spawned are signalled.
 *
 * @module
 */
import type { ClusterStats } from "../../src/cluster/mod.ts";
import { Etcd, freePort } from "./etcd.ts";
import type { History } from "./history.ts";
import type { Target } from "./jepsen_client.ts";

/** This checkout's main.ts (`ClusterOptions.root` runs another build). */
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();
/** Output kept per node (the tail), shown when something fails. */
const OUTPUT_CHARS_MAX = 64 * 1024;
/** Longest wait for a node to listen (a restarted one waits for its old lease to lapse). */
const START_TIMEOUT_MS = 30_000;
/** Longest wait for the cluster to settle after a fault (a new leader, a rejoin). */
const SETTLE_TIMEOUT_MS = 30_000;
/** Longest wait for one `/api/cluster` answer (a stopped node never answers). */
const VIEW_TIMEOUT_MS = 2_000;

/** One broker node: a child process on fixed ports and its data dir. */
export class JepsenNode implements Target {
  readonly id: string;
  readonly port = freePort();
  readonly httpPort = freePort();
  readonly clusterPort = freePort();
  readonly dataDir: string;
  readonly #args: string[];
  #child: Deno.ChildProcess | undefined;
  #pumps: Promise<void>[] = [];
  #out = "";
  /** Whether it is SIGSTOPped now. */
  paused = false;

  readonly #main: string;

  constructor(id: string, dataDir: string, args: string[], main = MAIN) {
    this.id = id;
    this.dataDir = dataDir;
    this.#args = args;
    this.#main = main;
  }

  /** Whether its process is running (paused or not). */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** The tail of what it printed. */
  get output(): string {
    return this.#out;
  }

  /** The PID of its process. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Starts the process and waits until it listens. A start refused because
   * its node id is still held (a SIGKILLed predecessor's lease) is retried
   * until it is free.
   */
  async start(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (let attempt = 1;; attempt++) {
      const from = this.#out.length;
      const child = this.#child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", this.#main, "serve", ...this.#argv()],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      this.#pumps = [this.#pump(child.stdout), this.#pump(child.stderr)];
      const exited = child.status.then((s) => s.code);
      for (;;) {
        if (/listening on /.test(this.#out.slice(from))) return;
        const r = await Promise.race([exited, new Promise((r) => setTimeout(r, 25, "wait"))]);
        if (r !== "wait" || Date.now() > deadline) break;
      }
      await this.kill();
      const taken = /is taken by a live node/.test(this.#out.slice(from));
      if (!taken || Date.now() > deadline) {
        throw new Error(
          `${this.id} did not start (attempt ${attempt}):\n${this.#out.slice(-4000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  #argv(): string[] {
    return [
      "--host",
      "127.0.0.1",
      "--port",
      String(this.port),
      "--http-host",
      "127.0.0.1",
      "--http-port",
      String(this.httpPort),
      "--no-grpc",
      "--log-format",
      "text",
      ...this.#args.map((a) =>
        a.replace("{dir}", this.dataDir).replace("{id}", this.id).replace(
          "{cluster}",
          `127.0.0.1:${this.clusterPort}`,
        )
      ),
    ];
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream) {
      this.#out += decoder.decode(chunk);
      if (this.#out.length > 2 * OUTPUT_CHARS_MAX) this.#out = this.#out.slice(-OUTPUT_CHARS_MAX);
    }
  }

  /** SIGKILL (continuing it first if paused), then waits for it. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
      if (this.paused) child.kill("SIGCONT");
    } catch { /* already gone */ }
    this.paused = false;
    await child.status;
    await Promise.all(this.#pumps);
  }

  /** SIGSTOP: the process stops answering anyone (etcd included) until resumed. */
  pause(): void {
    this.#child!.kill("SIGSTOP");
    this.paused = true;
  }

  /** SIGCONT. */
  resume(): void {
    this.#child!.kill("SIGCONT");
    this.paused = false;
  }

  /** Its `/api/cluster`, or undefined when it does not answer in time. */
  async view(): Promise<ClusterStats | undefined> {
    if (!this.running || this.paused) return undefined;
    try {
      const res = await fetch(`http://127.0.0.1:${this.httpPort}/api/cluster`, {
        signal: AbortSignal.timeout(VIEW_TIMEOUT_MS),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      return await res.json();
    } catch {
      return undefined;
    }
  }
}

/** Options of a {@linkcode JepsenCluster}. */
export interface ClusterOptions {
  nodes: number;
  /** Without etcd: single-node mode (then `nodes` must be 1). */
  etcd: boolean;
  /** `--memory` instead of a data dir. */
  memory?: boolean;
  /** `--cluster-lease-ttl`, seconds. */
  leaseTtl?: number;
  /** More `serve` arguments for every node. */
  extra?: string[];
  /** Another checkout to run `main.ts` from (an A/B of builds); default this one. */
  root?: string;
}

/** etcd (optional) and broker nodes, with the nemeses. */
export class JepsenCluster {
  readonly nodes: JepsenNode[] = [];
  readonly dir: string;
  etcd: Etcd | undefined;
  readonly #history: History;
  readonly #queue: string;

  private constructor(dir: string, history: History, queue: string) {
    this.dir = dir;
    this.#history = history;
    this.#queue = queue;
  }

  /** Starts etcd (when asked) and the nodes, one after the other. */
  static async start(o: ClusterOptions, history: History, queue: string): Promise<JepsenCluster> {
    const c = new JepsenCluster(
      await Deno.makeTempDir({ prefix: "relayr-jepsen-" }),
      history,
      queue,
    );
    try {
      if (o.etcd) c.etcd = await Etcd.start();
      for (let i = 1; i <= o.nodes; i++) {
        const args = o.memory ? ["--memory"] : ["--data-dir", "{dir}"];
        if (c.etcd !== undefined) {
          args.push(
            "--cluster-etcd",
            c.etcd.url,
            "--node-id",
            "{id}",
            "--cluster-listen",
            "{cluster}",
          );
          args.push("--cluster-lease-ttl", String(o.leaseTtl ?? 1));
        }
        const main = o.root === undefined ? undefined : `${o.root}/main.ts`;
        const n = new JepsenNode(`n${i}`, `${c.dir}/n${i}`, [...args, ...(o.extra ?? [])], main);
        c.nodes.push(n);
        await n.start();
      }
      if (c.etcd !== undefined) {
        await c.#everyNode((v) => v.members.length === o.nodes, "every node to see every member");
      }
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** The nodes clients may dial (all of them: a dead one refuses, a paused one times out). */
  targets = (): readonly JepsenNode[] => this.nodes;

  /** Polls `ok` every 50 ms until it holds, at most `timeoutMs`. */
  async #until(ok: () => Promise<boolean>, what: string, timeoutMs = SETTLE_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until every node's view passes `ok` (a node that does not answer fails it). */
  #everyNode(ok: (v: ClusterStats) => boolean, what: string): Promise<void> {
    return this.#until(async () => {
      for (const n of this.nodes) {
        const v = await n.view();
        if (v === undefined || !ok(v)) return false;
      }
      return true;
    }, what);
  }

  /** The queue's leader and epoch as the live nodes see it (agreed by all that answer). */
  async leader(): Promise<{ node: JepsenNode; epoch: number } | undefined> {
    let found: { node: string; epoch: number } | undefined;
    for (const n of this.nodes) {
      const l = (await n.view())?.leaders.find((x) => x.queue === this.#queue);
      if (l === undefined) continue;
      if (found !== undefined && (found.node !== l.node || found.epoch !== l.epoch)) {
        return undefined;
      }
      found = l;
    }
    const node = this.nodes.find((n) => n.id === found?.node);
    return node === undefined || !node.running ? undefined : { node, epoch: found!.epoch };
  }

  /** Waits until the live nodes agree on a leader of the queue with an epoch above `after`. */
  async #newLeader(after: number, not?: JepsenNode): Promise<{ node: JepsenNode; epoch: number }> {
    let got: { node: JepsenNode; epoch: number } | undefined;
    await this.#until(async () => {
      got = await this.leader();
      return got !== undefined && got.epoch > after && got.node !== not && !got.node.paused;
    }, `a new leader of ${this.#queue} (epoch above ${after})`);
    return got!;
  }

  /** Kill: SIGKILL the queue's leader, wait for the next one, restart it on its data dir. */
  async killLeader(): Promise<string> {
    const l = await this.#newLeader(0);
    const t0 = performance.now();
    await l.node.kill();
    this.#history.note(`kill -9 ${l.node.id} (leader, epoch ${l.epoch})`);
    const next = await this.#newLeader(l.epoch, l.node);
    const failover = Math.round(performance.now() - t0);
    this.#history.note(`${next.node.id} leads (epoch ${next.epoch}) after ${failover} ms`);
    await l.node.start();
    await this.#rejoined(l.node);
    this.#history.note(`${l.node.id} restarted on its data dir`);
    return `kill -9 ${l.node.id}: ${next.node.id} leads after ${failover} ms`;
  }

  /** Pause: SIGSTOP the leader until another node leads, then SIGCONT. */
  async pauseLeader(): Promise<string> {
    const l = await this.#newLeader(0);
    l.node.pause();
    this.#history.note(`SIGSTOP ${l.node.id} (leader, epoch ${l.epoch})`);
    const next = await this.#newLeader(l.epoch, l.node);
    this.#history.note(`${next.node.id} leads (epoch ${next.epoch}); SIGCONT ${l.node.id}`);
    l.node.resume();
    await this.#rejoined(l.node);
    return `SIGSTOP ${l.node.id} until ${next.node.id} led, then SIGCONT`;
  }

  /** Wipe: SIGKILL a node that does not lead the queue, empty its data dir, restart it. */
  async wipeFollower(): Promise<string> {
    const l = await this.#newLeader(0);
    const others = this.nodes.filter((n) => n !== l.node);
    const n = others[Math.floor(Math.random() * others.length)];
    await n.kill();
    await Deno.remove(n.dataDir, { recursive: true }).catch(() => {});
    this.#history.note(`kill -9 ${n.id} and delete its data dir`);
    await n.start();
    await this.#rejoined(n);
    this.#history.note(`${n.id} restarted empty`);
    return `${n.id} restarted with an empty data dir`;
  }

  /** etcd: SIGKILL it until every node notices, then restart it and wait until all reach it. */
  async restartEtcd(): Promise<string> {
    const etcd = this.etcd!;
    await etcd.kill();
    this.#history.note("kill -9 etcd");
    await this.#everyNode((v) => !v.etcd_reachable, "every node to notice etcd is away");
    await etcd.restart();
    this.#history.note("etcd restarted");
    await this.#everyNode((v) => v.etcd_reachable, "every node to reach etcd again");
    return "etcd restarted";
  }

  /** Waits until `n` sees every node as a member again. */
  async #rejoined(n: JepsenNode): Promise<void> {
    if (this.etcd === undefined) return;
    await this.#until(
      async () => (await n.view())?.members.length === this.nodes.length,
      `${n.id} to rejoin`,
    );
  }

  /** Kill a node (single-node mode): SIGKILL it and start it again. */
  async restart(n: JepsenNode): Promise<void> {
    await n.kill();
    this.#history.note(`kill -9 ${n.id}`);
    await n.start();
    this.#history.note(`${n.id} restarted`);
  }

  /** Each node's copy of the queue as its `/api/cluster` shows it, one line per node. */
  async copies(): Promise<string> {
    const lines: string[] = [];
    for (const n of this.nodes) {
      const v = await n.view();
      const q = v?.replication?.queues.find((x) => x.queue === this.#queue);
      const l = v?.leaders.find((x) => x.queue === this.#queue);
      lines.push(
        `${n.id}: ${
          v === undefined ? "no answer" : q === undefined ? "no copy" : JSON.stringify(q)
        }; leader in its view: ${l === undefined ? "none" : `${l.node} (epoch ${l.epoch})`}`,
      );
    }
    return lines.join("\n");
  }

  /** The tail of each node's output, for a failure message. */
  outputs(chars = 3000): string {
    return this.nodes.map((n) => `--- ${n.id}:\n${n.output.slice(-chars)}`).join("\n");
  }

  /** Stops every node and etcd and removes their data. */
  async stop(): Promise<void> {
    for (const n of this.nodes) await n.kill();
    await this.etcd?.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
