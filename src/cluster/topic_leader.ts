/**
 * Declared topics across the cluster (docs/CLUSTERING.md, "Declared topics
 * across nodes"). A declared topic is led like a queue: one leader at a time
 * (`relayr/leaders/topic:<name>`, the same claim, epochs and fence: a topic's
 * name carries its `topic:` prefix, so it never meets a queue's), and its
 * retained log is the store queue `topic:<name>`, which `ReplicatedStore`
 * replicates to the topic's replica set as it does a queue's.
 *
 * - **The declaration** (its retention limits, resolved with the leader's
 *   defaults) is metadata: `relayr/topics/topic:<name>`, written by the
 *   topic's leader under the fence of its leader key, kept without a lease.
 *   Every node learns it from its watch, and so which topics are declared.
 * - **Adopted by the leader only.** The broker declares the topic (retention,
 *   the replicated log) only on the node that leads it, once its store is
 *   served there (recovered from the most complete copy of a majority); on
 *   every other node it is a plain topic, fed by the inter-node link.
 * - **What goes to the leader** (forward.ts asks `led`): a `PUB` to a
 *   declared topic (answered `OK` once a majority of the replicas hold it;
 *   the leader then publishes it to every subscriber of the cluster through
 *   the link, the origin node included, so the origin never delivers it
 *   itself), a `SUB` with `start` or `durable` on one, and every topic
 *   `DECLARE`. A plain topic, and a live `SUB` of a declared one, stay on
 *   the node.
 * - **Deposed** (its store steps down), the node releases the topic: its
 *   replays and durable subscriptions are closed with `LEADER_CHANGED`, so
 *   that their clients (or the proxies of other nodes) go to the new leader.
 *
 * @module
 */
import { type Broker, BrokerError, type Retention } from "../broker/mod.ts";
import { CLUSTER_COMMIT_MS_MAX, DECLARED_TOPICS_MAX } from "../config/mod.ts";
import type { Frame, RetentionOptions } from "../protocol/mod.ts";
import { type FencedDeclarations, putDeclaration } from "./fenced_declaration.ts";
import type { WatchEvent } from "./meta.ts";
import type { ReplicatedStore } from "./replicated_store.ts";

/**
 * The store queue of a declared topic's durables' positions is its name
 * under this prefix (`durables:topic:orders`): no destination starts so, and
 * it is replicated under the topic's leadership (`leadership`).
 */
export const DURABLES_PREFIX = "durables:";

/** The store queue of the positions of `topic`'s durables. */
export function durablesOf(topic: string): string {
  return DURABLES_PREFIX + topic;
}

/** The leadership a store queue is replicated under: its own, or its topic's for a durables store. */
export function leadership(name: string): string {
  return name.startsWith(DURABLES_PREFIX) ? name.slice(DURABLES_PREFIX.length) : name;
}

/** Where etcd keeps the declarations of declared topics (under `relayr/`). */
export const TOPICS_KEY = "topics/";

/** What the declared topics need from the node around them. */
export interface TopicLeadersOptions extends FencedDeclarations {
  readonly broker: Broker;
  readonly store: ReplicatedStore;
}

/** The node's declared topics (see the module comment). */
export class TopicLeaders {
  readonly #o: TopicLeadersOptions;
  /** Every declared topic of the cluster, as etcd has it. */
  #decls = new Map<string, Retention>();
  /** The declared topics this node leads and serves. */
  #adopted = new Set<string>();
  /** Topics a DECLARE here is declaring now (claimed, their declaration on its way to etcd). */
  #declaring = new Set<string>();
  /**
   * Commands waiting for a topic to be served here (its leadership won, its
   * log recovering): a connection's read loop waits for one at most, so they
   * are bounded by the connections.
   */
  #waiting = new Map<string, Set<() => void>>();
  /**
   * Grows with every change of what is declared or served here: forwarding's
   * cached routes hold while it (and the node's view) stays the same, so a
   * topic released here is not run here again from a stale route.
   */
  version = 0;

  constructor(options: TopicLeadersOptions) {
    this.#o = options;
  }

  /** Whether `dest` is a declared topic of the cluster. */
  declared(dest: string): boolean {
    return this.#decls.has(dest);
  }

  /** Whether this node serves declared topic `dest` (leads it, its log recovered). */
  adopted(dest: string): boolean {
    return this.#adopted.has(dest);
  }

  /**
   * Whether this node keeps its leadership of `dest` (the claim loop hands
   * back the others): a declared topic, or one a DECLARE here is declaring,
   * whose leadership was claimed a moment before its declaration is stored.
   */
  holds(dest: string): boolean {
    return this.#decls.has(dest) || this.#declaring.has(dest);
  }

  /** The declared topics (a node claims those nobody leads, as it does the queues it holds). */
  names(): IterableIterator<string> {
    return this.#decls.keys();
  }

  /** Whether the command goes to the topic's leader (see the module comment). */
  led(f: Frame): boolean {
    switch (f.op) {
      case "DECLARE":
        return f.queue === undefined;
      case "PUB":
        return this.#decls.has(f.dest);
      case "SUB":
        return (f.options.durable !== undefined || f.options.start !== undefined) &&
          this.#decls.has(f.dest);
      default:
        return false;
    }
  }

  /** A key under `relayr/` that is neither a member nor a leader: the declarations. */
  keyChanged(e: WatchEvent): void {
    const prefix = `relayr/${TOPICS_KEY}`;
    if (!e.key.startsWith(prefix)) return;
    const dest = e.key.slice(prefix.length);
    this.version++;
    if (e.kv === undefined) return void this.#decls.delete(dest);
    const r = parseRetention(e.kv.value);
    if (r === undefined || !dest.startsWith("topic:")) return;
    if (!this.#decls.has(dest) && this.#decls.size >= DECLARED_TOPICS_MAX) return;
    this.#decls.set(dest, r);
    this.#adopt(dest);
  }

  /**
   * A `DECLARE` of a topic on its leader: the declaration goes to etcd under
   * the leader's fence, then the topic is adopted here (at once, or when its
   * log is recovered). Rejects with `LIMIT` or `UNAVAILABLE`.
   */
  async declare(dest: string, o: RetentionOptions): Promise<void> {
    this.#declaring.add(dest);
    try {
      await this.#declare(dest, o);
    } finally {
      this.#declaring.delete(dest);
    }
  }

  async #declare(dest: string, o: RetentionOptions): Promise<void> {
    const b = this.#o.broker;
    if (!this.#decls.has(dest) && this.#decls.size >= DECLARED_TOPICS_MAX) {
      throw new BrokerError("LIMIT", `the cluster holds ${DECLARED_TOPICS_MAX} declared topics`);
    }
    const r: Retention = {
      messages: o.messages ?? b.queueMessagesMax,
      bytes: o.bytes ?? b.queueBytesMax,
      ageMs: o.ageMs ?? 0,
    };
    await putDeclaration(this.#o, dest, TOPICS_KEY + dest, JSON.stringify(r));
    this.#decls.set(dest, r);
    this.version++;
    this.#adopt(dest);
  }

  /** Replication serves the store `name` here now (it leads it): a declared topic is adopted. */
  serving(name: string): void {
    this.#adopt(leadership(name));
  }

  /** This node stopped serving the store `name` (deposed): the topic is released. */
  deposed(store: string, why: string): void {
    const name = leadership(store);
    if (!this.#adopted.delete(name)) return;
    this.version++;
    this.#o.broker.releaseTopic(name, `no longer the leader of ${name}: ${why}`);
  }

  /**
   * Resolves once this node serves declared topic `dest`, or after
   * `CLUSTER_COMMIT_MS_MAX` (the command is then refused `UNAVAILABLE`).
   */
  whenAdopted(dest: string): Promise<void> {
    if (this.#adopted.has(dest)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let set = this.#waiting.get(dest);
      if (set === undefined) this.#waiting.set(dest, set = new Set());
      const waiters = set;
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, CLUSTER_COMMIT_MS_MAX);
      set.add(done);
    });
  }

  /** Stops: wakes every waiting command (refused then). */
  close(): void {
    for (const set of this.#waiting.values()) for (const wake of [...set]) wake();
    this.#waiting.clear();
  }

  /** Declares the topic in the broker when it is declared, this node leads it and its store is served. */
  #adopt(name: string): void {
    const r = this.#decls.get(name);
    const q = this.#o.store.queues.get(name);
    const d = this.#o.store.queues.get(durablesOf(name));
    if (r === undefined || q?.role !== "leader" || d?.role !== "leader") return;
    if (!this.#o.leads(name)) return;
    const b = this.#o.broker;
    b.tick();
    if (this.#adopted.has(name)) return b.adoptTopic(name, r, [], durablesOf(name)); // new limits
    const msgs = [...q.live()];
    b.adoptTopic(name, r, msgs, durablesOf(name));
    this.#adopted.add(name);
    this.version++;
    this.#o.log("info", `serving declared topic ${name} (${msgs.length} retained messages)`);
    const set = this.#waiting.get(name);
    this.#waiting.delete(name);
    for (const wake of set ?? []) wake();
  }
}

/** A declaration's value from etcd; undefined when it is not one. */
function parseRetention(value: string): Retention | undefined {
  try {
    const v = JSON.parse(value) as Retention;
    const ok = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
    return ok(v.messages) && ok(v.bytes) && ok(v.ageMs)
      ? { messages: v.messages, bytes: v.bytes, ageMs: v.ageMs }
      : undefined;
  } catch {
    return undefined;
  }
}
