/**
 * Bindings across the cluster (`BIND <pattern> queue:<name>`, docs/CLUSTERING.md).
 *
 * - **Kept in etcd**, one key per binding, `relayr/bindings/<queue> <pattern>`
 *   = `{"pattern", "queue", "filter"?}`, with no lease: a binding made on any
 *   node holds for the whole cluster and outlives every node. A `BIND` is
 *   answered once etcd has it and this node applies it; every node applies
 *   the watch's changes, and makes its bindings exactly etcd's whenever it
 *   reads `relayr/` again (at the start, after etcd was away).
 * - **Applied where a topic message is published**, once: a node routes the
 *   topic messages its own clients publish (and its scheduled ones), never a
 *   peer's. A copy for a queue this node leads (or that nobody leads: it is
 *   held while this node claims it) is stored here; a copy for a queue
 *   another node leads is sent to that leader over a `CopyLink` and the
 *   publisher's reply waits for its answer: one copy per binding, stored and
 *   replicated at the queue's leader before the publisher's `OK`, as on a
 *   single broker.
 *
 * @module
 */
import type { BoundCopies, Broker, SharedBindings } from "../broker/mod.ts";
import { BrokerError } from "../broker/mod.ts";
import { CLUSTER_BIND_PENDING_MAX, CLUSTER_LINK_REDIAL_MS } from "../config/mod.ts";
import { compileFilter } from "../filter/mod.ts";
import { destinationError, type FilterOption } from "../protocol/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import { CopyLink } from "./copy_link.ts";
import { splitHostPort } from "./interconnect.ts";
import type { ClusterMeta, KeyValue, WatchEvent } from "./meta.ts";
import { CLUSTER_PREFIX, type ClusterNode } from "./node.ts";

/** Where etcd keeps the bindings. */
export const BINDINGS_PREFIX = `${CLUSTER_PREFIX}bindings/`;

/** A binding as etcd holds it. */
interface Stored {
  pattern: string;
  queue: string;
  filter?: string;
}

/** What the cluster's bindings are made of. */
export interface ClusterBindingsOptions {
  readonly meta: ClusterMeta;
  readonly broker: Broker;
  readonly node: Pick<ClusterNode, "id" | "leaderOf" | "addressOf">;
  readonly dial: (hostname: string, port: number) => Promise<Conn>;
  readonly log: (level: "info" | "warn", message: string) => void;
}

/** The cluster's bindings and the links their copies travel on (see the module comment). */
export class ClusterBindings implements SharedBindings, BoundCopies {
  readonly #o: ClusterBindingsOptions;
  #links = new Map<string, CopyLink>();
  #closed = false;
  /** Copies sent to other nodes' leaders since the start. */
  sent = 0;

  constructor(options: ClusterBindingsOptions) {
    this.#o = options;
  }

  // --- SharedBindings: BIND / UNBIND of this node's clients ---

  async bind(pattern: string, queue: string, filter: string | undefined): Promise<void> {
    const value: Stored = filter === undefined ? { pattern, queue } : { pattern, queue, filter };
    await this.#etcd(() => this.#o.meta.put(keyOf(queue, pattern), JSON.stringify(value)));
    // Applied here at once (the watch applies it again), so this client's next PUB is routed.
    await this.#o.broker.applyBinding(pattern, queue, filterOf(filter));
  }

  async unbind(pattern: string, queue: string): Promise<void> {
    await this.#etcd(() => this.#o.meta.delete(keyOf(queue, pattern)));
    await this.#o.broker.applyUnbind(pattern, queue);
  }

  async #etcd(request: () => Promise<void>): Promise<void> {
    try {
      await request();
    } catch (e) {
      throw new BrokerError(
        "UNAVAILABLE",
        `the cluster's bindings cannot be changed now (etcd: ${(e as Error).message}); retry`,
      );
    }
  }

  // --- etcd's view ---

  /** Every key under `relayr/` was read again: the bindings become exactly etcd's. */
  listed(kvs: readonly KeyValue[]): void {
    const list: { pattern: string; queue: string; filter?: FilterOption }[] = [];
    for (const kv of kvs) {
      if (!kv.key.startsWith(BINDINGS_PREFIX)) continue;
      const b = this.#parse(kv);
      if (b !== undefined) list.push(b);
    }
    this.#o.broker.replaceBindings(list).catch((e) => this.#refused("the bindings", e));
  }

  /** A change under `relayr/`: applied when it is a binding's; returns whether it was. */
  keyChanged(e: WatchEvent): boolean {
    if (!e.key.startsWith(BINDINGS_PREFIX)) return false;
    const broker = this.#o.broker;
    if (e.kv === undefined) {
      const [queue, pattern] = e.key.slice(BINDINGS_PREFIX.length).split(" ");
      if (pattern !== undefined) {
        broker.applyUnbind(pattern, queue).catch((err) => this.#refused(e.key, err));
      }
      return true;
    }
    const b = this.#parse(e.kv);
    if (b === undefined) return true;
    try {
      broker.applyBinding(b.pattern, b.queue, b.filter).catch((err) => this.#refused(e.key, err));
    } catch (err) {
      this.#refused(e.key, err); // over BINDINGS_MAX here
    }
    return true;
  }

  #parse(kv: KeyValue): { pattern: string; queue: string; filter?: FilterOption } | undefined {
    try {
      const b = JSON.parse(kv.value) as Stored;
      if (
        typeof b?.pattern !== "string" || destinationError(b.pattern, true) !== undefined ||
        typeof b.queue !== "string" || destinationError(b.queue, false) !== undefined ||
        !b.queue.startsWith("queue:") || (b.filter !== undefined && typeof b.filter !== "string")
      ) {
        throw new Error("not a binding");
      }
      return { pattern: b.pattern, queue: b.queue, filter: filterOf(b.filter) };
    } catch (e) {
      this.#refused(kv.key, e);
      return undefined;
    }
  }

  #refused(what: string, e: unknown): void {
    this.#o.log("warn", `binding ${what} not applied: ${(e as Error).message}`);
  }

  // --- BoundCopies: copies for queues other nodes lead ---

  remote(queue: string): boolean {
    const node = this.#o.node;
    const l = node.leaderOf(queue);
    // Nobody leads it (stored here: held while this node claims it), or we do: the local store
    // checks the lease, once per tick (no clock read here per message).
    if (l === undefined || l.node === node.id) return false;
    const link = this.#link(l.node);
    if (link === undefined || link.dead) {
      throw new BrokerError(
        "UNAVAILABLE",
        `the leader of ${queue}, ${l.node}, cannot be reached${
          link ? ` (${link.why})` : ""
        }; retry`,
      );
    }
    if (link.pending >= CLUSTER_BIND_PENDING_MAX) {
      throw new BrokerError(
        "LIMIT",
        `${CLUSTER_BIND_PENDING_MAX} bound copies wait for ${l.node}, the leader of ${queue}`,
      );
    }
    return true;
  }

  send(queue: string, msg: Message): Promise<void> {
    // `remote` just found the link, in the same tick.
    const l = this.#o.node.leaderOf(queue)!;
    this.sent++;
    return this.#link(l.node)!.send(queue, msg);
  }

  #link(nodeId: string): CopyLink | undefined {
    const up = this.#links.get(nodeId);
    // A dead link stands for its node a moment (its publishes refused), not a dial per publish.
    if (up !== undefined && (!up.dead || Date.now() - up.diedAt < CLUSTER_LINK_REDIAL_MS)) {
      return up;
    }
    const address = this.#o.node.addressOf(nodeId);
    if (address === undefined || this.#closed) return undefined;
    const [hostname, port] = splitHostPort(address);
    const made = new CopyLink(nodeId, this.#o.node.id, () => this.#o.dial(hostname, port));
    this.#links.set(nodeId, made);
    return made;
  }

  /** The members changed: links to nodes that left are cut (what waits on them is unknown). */
  membersChanged(members: readonly { id: string }[]): void {
    const live = new Set(members.map((m) => m.id));
    for (const l of [...this.#links.values()]) {
      if (live.has(l.node)) continue;
      void l.close(`the queue's leader ${l.node} left the cluster`);
      this.#links.delete(l.node);
    }
  }

  /** Closes every link. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#links.values()].map((l) => l.close()));
    this.#links.clear();
  }
}

function keyOf(queue: string, pattern: string): string {
  return `${BINDINGS_PREFIX}${queue} ${pattern}`;
}

function filterOf(source: string | undefined): FilterOption | undefined {
  return source === undefined ? undefined : { source, match: compileFilter(source) };
}
