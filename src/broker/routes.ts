/**
 * Bindings from topics into queues (`BIND <topic pattern> queue:<name>`):
 * what a topic publish is also enqueued in. Kept in one JSON record in a
 * store queue of its own (`$relayr.bindings`, see record_store.ts), so they
 * survive a restart with the log store. Which bindings a topic name matches
 * is worked out once per name and cached (`ROUTE_CACHE_TOPICS_MAX` names, the
 * cache starts over when full or when the bindings change), so a publish
 * costs one map lookup, not a pattern match per binding. A routed publish is
 * `check` (selectors, room in every queue: may refuse it), then `copy` (one
 * copy per binding), the topic's own fan-out by the broker, and `dispatch`.
 *
 * @module
 */
import { BINDINGS_MAX, ROUTE_CACHE_TOPICS_MAX } from "../config/mod.ts";
import { compileFilter, type Filter } from "../filter/mod.ts";
import { destinationError, type FilterOption, matches } from "../protocol/mod.ts";
import type { Message, QueueStore, Store } from "../storage/mod.ts";
import { routedCopy } from "./messages.ts";
import type { Queue } from "./queue.ts";
import { RecordStore } from "./record_store.ts";
import type { BindingStats } from "./stats.ts";
import { type BoundCopies, BrokerError, type QueueOverflow, storeFailed } from "./types.ts";

/** What routing needs from the broker around it. */
export interface RouteHost {
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly counters: { rejected: number; routed: number };
  /** The queue of that name, created if new (throws `LIMIT` when the broker is full). */
  queueFor(name: string): Queue;
  /** The overflow policy of `q`. */
  overflowOf(q: Queue): QueueOverflow;
  /** Applies `q`'s overflow policy before a message of `bytes` enters it (drops, or throws). */
  makeRoom(q: Queue, bytes: number): void;
  /** A fresh message id. */
  nextId(): number;
  /** The tick's time (epoch ms): a routed copy's default TTL counts from it. */
  readonly now: number;
  /** (cluster) Where copies for queues another node leads go; undefined: every queue is here. */
  readonly copies: BoundCopies | undefined;
}

/** Name of the store queue that holds the bindings record. */
export const BINDINGS_QUEUE = "$relayr.bindings";

/** The bindings record, version 1. */
export interface BindingsRecord {
  v: 1;
  bindings: { pattern: string; queue: string; filter?: string }[];
}

/** One binding: a topic pattern, the queue it feeds, an optional selector, and its counts. */
export class Route {
  /** Copies enqueued through it. */
  routed = 0;
  /** Publishes it refused (its queue was full under `reject`). */
  rejected = 0;
  constructor(
    readonly pattern: string,
    readonly queue: string,
    public filter: Filter | undefined,
    public filterSource: string | undefined,
  ) {}

  /** Its figures for the admin API. */
  stats(): BindingStats {
    return {
      pattern: this.pattern,
      queue: this.queue,
      ...(this.filterSource === undefined ? {} : { filter: this.filterSource }),
      routed: this.routed,
      rejected: this.rejected,
    };
  }
}

const NONE: readonly Route[] = [];

/** The broker's bindings. */
export class Routes {
  #routes = new Map<string, Route>();
  #cache = new Map<string, readonly Route[]>();
  #state: RecordStore<BindingsRecord>;
  #host: RouteHost;
  /**
   * The bindings a publish goes through, and their queues (reused: no array
   * per publish); a queue is undefined when another node leads it (cluster:
   * its copy is sent there).
   */
  #hits: Route[] = [];
  #queues: (Queue | undefined)[] = [];
  #copies: (Message | undefined)[] = [];

  constructor(store: Store, host: RouteHost) {
    this.#host = host;
    this.#state = new RecordStore(
      store,
      BINDINGS_QUEUE,
      () => host.nextId(),
      () => this.#record(),
      checkRecord,
    );
  }

  /**
   * The first half of a routed publish, with no side effect but drops under
   * drop-oldest: collects the bindings whose selector takes `msg` and their
   * queues (in `#hits`, `#queues`), and checks that every queue has room
   * for its copies (a queue bound twice gets two) before any is enqueued, so
   * that a full queue under `reject` refuses the whole publish: nothing is
   * enqueued anywhere, nor published to the topic. Returns how many copies.
   */
  check(msg: Message, topic: string): number {
    const routes = this.match(topic);
    const hits = this.#hits;
    const qs = this.#queues;
    hits.length = qs.length = 0;
    const h = this.#host;
    const remote = h.copies;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i];
      if (r.filter !== undefined && !r.filter(msg)) continue;
      hits.push(r);
      qs.push(remote?.remote(r.queue) ? undefined : h.queueFor(r.queue));
    }
    if (hits.length === 0) return 0;
    for (let i = 0; i < qs.length; i++) {
      const q = qs[i];
      // Another node's queue: its leader checks its room (docs/CLUSTERING.md, bindings).
      if (q === undefined) continue;
      let need = 0;
      for (let j = 0; j < qs.length; j++) if (qs[j] === q) need++;
      const s = q.store;
      // The queue's own limits: a declared queue's, or the server's.
      const full = s.size + need > q.settings.messagesMax ||
        s.bytes + need * msg.len > q.settings.bytesMax;
      if (full && h.overflowOf(q) === "reject") {
        hits[i].rejected++;
        q.counters.rejected++;
        h.counters.rejected++;
        throw new BrokerError(
          "QUEUE_FULL",
          `${q.name} is full (${s.size} messages, ${s.bytes} bytes): bound to ${topic}, nothing was published`,
        );
      }
    }
    for (let i = 0; i < qs.length; i++) {
      const q = qs[i];
      if (q !== undefined) h.makeRoom(q, msg.len);
    }
    return hits.length;
  }

  /**
   * Enqueues one copy of `msg` per binding found by `check`. The copies
   * share the payload bytes (retained once). A store that fails part way
   * (the log of one queue is failing) takes back the copies already made, and
   * the topic's own record: a publish is enqueued everywhere or nowhere. All
   * of it runs in one tick, before the tick's log records are written, so no
   * other publish interleaves; the records go out in the tick's one write.
   */
  copy(msg: Message, topicStore: QueueStore | undefined): void | Promise<void> {
    const hits = this.#hits;
    const qs = this.#queues;
    const copies = this.#copies;
    copies.length = 0;
    msg.retain();
    let waits: Promise<void>[] | undefined;
    for (let i = 0; i < hits.length; i++) {
      const q = qs[i];
      if (q === undefined) {
        // Sent to the queue's leader (cluster); it cannot be taken back, so the local ones undo alone.
        (waits ??= []).push(this.#host.copies!.send(hits[i].queue, msg));
        copies.push(undefined);
        continue;
      }
      const copy = routedCopy(msg, this.#host.nextId(), q.settings.ttlMs, this.#host.now);
      let p: void | Promise<void>;
      try {
        p = q.store.push(copy);
      } catch (e) {
        for (let j = 0; j < copies.length; j++) {
          const c = copies[j];
          if (c !== undefined) qs[j]!.store.remove(c, "dropped");
        }
        topicStore?.remove(msg, "dropped");
        // Copies already sent to other nodes stand; nobody waits for their answers now.
        if (waits !== undefined) { for (const w of waits) w.catch(() => {}); }
        throw storeFailed(e);
      }
      copies.push(copy);
      if (p !== undefined) (waits ??= []).push(p);
    }
    for (let i = 0; i < hits.length; i++) {
      hits[i].routed++;
      const q = qs[i];
      if (q !== undefined) q.counters.published++;
    }
    this.#host.counters.routed += hits.length;
    if (waits === undefined) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => {});
  }

  /** Dispatches the queues a routed publish fed, once the topic's subscribers had it. */
  dispatch(): void {
    const qs = this.#queues;
    for (let i = 0; i < qs.length; i++) qs[i]?.dispatch();
    this.#hits.length = qs.length = this.#copies.length = 0;
  }

  /** Number of bindings. */
  get size(): number {
    return this.#routes.size;
  }

  /** Bindings whose pattern matches topic `name` (cached per name). */
  match(name: string): readonly Route[] {
    let rs = this.#cache.get(name);
    if (rs !== undefined) return rs;
    const found: Route[] = [];
    for (const r of this.#routes.values()) if (matches(r.pattern, name)) found.push(r);
    rs = found.length === 0 ? NONE : found;
    if (this.#cache.size >= ROUTE_CACHE_TOPICS_MAX) this.#cache.clear();
    this.#cache.set(name, rs);
    return rs;
  }

  /** Adds a binding, or replaces the selector of the same (pattern, queue); resolves when stored. */
  bind(pattern: string, queue: string, filter: FilterOption | undefined): Promise<void> {
    const key = `${pattern} ${queue}`;
    const r = this.#routes.get(key);
    if (r !== undefined) {
      r.filter = filter?.match;
      r.filterSource = filter?.source;
    } else {
      if (this.#routes.size >= BINDINGS_MAX) {
        throw new BrokerError("LIMIT", `the server holds ${BINDINGS_MAX} bindings`);
      }
      this.#routes.set(key, new Route(pattern, queue, filter?.match, filter?.source));
      this.#cache.clear();
    }
    return this.#state.save();
  }

  /** The binding of `pattern` into `queue`, if it exists. */
  get(pattern: string, queue: string): Route | undefined {
    return this.#routes.get(`${pattern} ${queue}`);
  }

  /**
   * (cluster) Makes the bindings exactly `list` (etcd's, read again): those
   * not in it go, the others are added or take its selector. Resolves when stored.
   */
  replace(
    list: readonly { pattern: string; queue: string; filter?: FilterOption }[],
  ): Promise<void> {
    // A binding kept keeps its counts.
    const before = this.#routes;
    this.#routes = new Map();
    for (const b of list) {
      if (this.#routes.size >= BINDINGS_MAX) break;
      const key = `${b.pattern} ${b.queue}`;
      const r = before.get(key) ?? new Route(b.pattern, b.queue, undefined, undefined);
      r.filter = b.filter?.match;
      r.filterSource = b.filter?.source;
      this.#routes.set(key, r);
    }
    this.#cache.clear();
    return this.#state.save();
  }

  /** Removes a binding (none: nothing to do); resolves when stored. */
  unbind(pattern: string, queue: string): Promise<void> {
    if (!this.#routes.delete(`${pattern} ${queue}`)) return Promise.resolve();
    this.#cache.clear();
    return this.#state.save();
  }

  /** The bindings stored before a restart. */
  restore(): void {
    for (const b of this.#state.load()?.bindings ?? []) {
      const filter = b.filter === undefined
        ? undefined
        : { source: b.filter, match: compileFilter(b.filter) };
      this.#routes.set(
        `${b.pattern} ${b.queue}`,
        new Route(b.pattern, b.queue, filter?.match, filter?.source),
      );
    }
    this.#cache.clear();
  }

  /** Every binding's figures, by pattern then queue. */
  stats(): BindingStats[] {
    return [...this.#routes.keys()].sort().map((k) => this.#routes.get(k)!.stats());
  }

  #record(): BindingsRecord {
    const bindings: BindingsRecord["bindings"] = [];
    for (const r of this.#routes.values()) {
      bindings.push({
        pattern: r.pattern,
        queue: r.queue,
        ...(r.filterSource === undefined ? {} : { filter: r.filterSource }),
      });
    }
    return { v: 1, bindings };
  }
}

function checkRecord(x: unknown, id: number): BindingsRecord {
  const rec = x as BindingsRecord;
  const ok = rec?.v === 1 && Array.isArray(rec.bindings) &&
    rec.bindings.every((b) =>
      typeof b?.pattern === "string" && destinationError(b.pattern, true) === undefined &&
      typeof b.queue === "string" && destinationError(b.queue, false) === undefined &&
      (b.filter === undefined || typeof b.filter === "string")
    );
  if (!ok) throw new Error(`the bindings record ${id} is not version 1`);
  return rec;
}
