/**
 * `TopicSet`: the topic side of the broker. Live topics by name, the
 * wildcard subscriptions that bind to topics as they appear, the
 * explicit-ack subscriptions whose deadlines the sweep checks, NACKed topic
 * deliveries waiting for their redelivery time, and the topic part of the
 * periodic sweep. The broker owns one and keeps the publish and subscribe
 * paths, which touch topics and queues alike. A topic with one exact
 * subscriber and nothing else is held by that subscription, without a
 * `Topic` (see topic_solo.ts): made one on first need, solo again when idle.
 *
 * @module
 */
import { Heap } from "../storage/mod.ts";
import type { Delivery } from "./inflight.ts";
import type { SubscriptionOptions } from "./subscription.ts";
import { byName, type Page, page, type PageOptions, type TopicStats } from "./stats.ts";
import { Topic, type TopicHost } from "./topic.ts";
import { soloStats, SoloTopic } from "./topic_solo.ts";
import {
  ExactSubscription,
  PatternSubscription,
  type TopicSubscription,
} from "./topic_subscription.ts";
import type { Client } from "./types.ts";

/** What a `TopicSet` needs of its broker: the host its topics live in, and the destination limit. */
export interface TopicSetHost extends TopicHost {
  /** Throws `LIMIT` when the broker holds as many destinations as it may. */
  checkRoom(): void;
}

/** The live topics of one broker. */
export class TopicSet {
  readonly #host: TopicSetHost;
  /** Live topics by name: a `Topic`, or the one subscription of a solo topic. */
  readonly #topics = new Map<string, Topic | ExactSubscription>();
  readonly #wildcards = new Set<PatternSubscription>();
  readonly #explicit = new Set<TopicSubscription>();
  readonly #redeliveries = new Heap<Delivery>();
  /** The figures of every solo topic that never had a message (all 0). */
  readonly #fresh: SoloTopic;
  readonly #view: ReadonlyMap<string, Topic>;

  constructor(host: TopicSetHost) {
    this.#host = host;
    this.#fresh = new SoloTopic(this, 0, 0, 0);
    this.#view = new TopicsView(this, this.#topics);
  }

  /** What its topics live in. */
  get host(): TopicHost {
    return this.#host;
  }

  /** Live topics by name; a solo one looked up is made a `Topic` (see `promote`). */
  get map(): ReadonlyMap<string, Topic> {
    return this.#view;
  }

  /** Topics with at least one subscription or binding. */
  subscribed(): number {
    let n = 0;
    for (const t of this.#topics.values()) if (!(t instanceof Topic) || t.bindings.length > 0) n++;
    return n;
  }

  /** The topic a publish to `name` goes to: the live one, or a new one when a wildcard subscription wants it. */
  forPublish(name: string): Topic | undefined {
    const t = this.get(name);
    if (t !== undefined) return t;
    for (const s of this.#wildcards) if (s.wants(name)) return this.create(name);
    return undefined;
  }

  /** The topic of that name, if it exists (a solo one made a `Topic`). */
  get(name: string): Topic | undefined {
    const t = this.#topics.get(name);
    return t === undefined || t instanceof Topic ? t : this.promote(t);
  }

  /** Creates a topic and binds the wildcard subscriptions that match it (throws `LIMIT` when the broker is full). */
  create(name: string): Topic {
    this.#host.checkRoom();
    const t = new Topic(name, this.#host);
    this.#topics.set(name, t);
    for (const s of this.#wildcards) if (s.wants(name)) s.bind(t);
    return t;
  }

  /**
   * Makes the solo topic of `s` a `Topic`, bound to `s` as it was, and
   * returns it. A subscription that closed meanwhile gets one of its own,
   * not in the map.
   */
  promote(s: ExactSubscription): Topic {
    const t = new Topic(s.pattern, this.#host, s.solo);
    if (this.#topics.get(s.pattern) === s) this.#topics.set(s.pattern, t);
    s.joined(t);
    return t;
  }

  /**
   * A new plain (not durable, not replay) subscription to topic `name`
   * (`sid` of `client`), bound: the topic's only one is solo (no `Topic`
   * made), unless a wildcard subscription matches the name too.
   */
  subscribeExact(
    sid: string,
    name: string,
    client: Client,
    o: SubscriptionOptions,
  ): ExactSubscription {
    let t = this.get(name);
    if (t === undefined && !this.#wanted(name)) {
      this.#host.checkRoom();
      const s = new ExactSubscription(sid, name, this.#fresh, client, o);
      s.bind();
      this.#topics.set(name, s);
      return s;
    }
    t ??= this.create(name);
    const s = new ExactSubscription(sid, t.name, t, client, o);
    s.bind();
    return s;
  }

  /** A new wildcard subscription, bound to every topic it matches. */
  subscribePattern(s: PatternSubscription): PatternSubscription {
    this.#wildcards.add(s);
    for (const name of [...this.#topics.keys()]) if (s.wants(name)) s.bind(this.get(name)!);
    return s;
  }

  /** Whether a wildcard subscription wants topic `name`. */
  #wanted(name: string): boolean {
    for (const s of this.#wildcards) if (s.wants(name)) return true;
    return false;
  }

  /** Tracks a subscription with explicit acks (the sweep checks its deadlines). */
  tracked(s: TopicSubscription): void {
    if (s.explicit) this.#explicit.add(s);
  }

  /**
   * A wildcard subscription's connection got new permissions: it drops the
   * topics it may no longer read and binds the matching ones it now may.
   */
  rebind(sub: TopicSubscription): void {
    if (!(sub instanceof PatternSubscription) || !this.#wildcards.has(sub)) return;
    const bound = new Set<string>();
    for (const b of [...sub.bindings]) {
      if (sub.wants(b.topic.name)) bound.add(b.topic.name);
      else sub.unbindFrom(b.topic);
    }
    for (const name of [...this.#topics.keys()]) {
      if (!bound.has(name) && sub.wants(name)) sub.bind(this.get(name)!);
    }
    sub.activate();
  }

  /** A subscription closed and left `left`: topics nobody uses any more are forgotten. */
  closed(sub: TopicSubscription, left: readonly Topic[]): void {
    if (sub instanceof PatternSubscription) this.#wildcards.delete(sub);
    this.#explicit.delete(sub);
    if (this.#topics.get(sub.pattern) === sub) this.#topics.delete(sub.pattern); // a solo topic
    for (const t of left) {
      if (t.bindings.length === 0 && t.retention === undefined) this.#topics.delete(t.name);
    }
  }

  /** Schedules a NACKed topic delivery for redelivery at `dueAt`. */
  schedule(d: Delivery, dueAt: number): void {
    this.#redeliveries.push(dueAt, d);
  }

  /**
   * The topic part of the periodic sweep: due redeliveries, ack deadlines,
   * idle topics (forgotten or made solo), and (`block` policy) blocks held
   * longer than `blockMs`.
   */
  sweep(now: number, block: boolean, blockMs: number): void {
    while (this.#redeliveries.peekKey() <= now) {
      const d = this.#redeliveries.pop()!;
      d.binding!.sub.due(d);
    }
    for (const s of this.#explicit) s.expireAcks(now);
    this.#sweepIdle();
    if (block) {
      for (const t of this.#topics.values()) {
        if (t instanceof Topic && t.blockedAt !== 0) t.expireBlock(now, blockMs);
      }
    }
  }

  /** Topics by name, a page of them (a solo topic's figures read where they rest). */
  stats(o: PageOptions): Page<TopicStats> {
    return page(
      byName(this.#topics),
      o,
      (t) => t instanceof Topic ? t.stats() : soloStats(t.pattern, t.solo!),
    );
  }

  /**
   * Topics idle since the last sweep: forgotten when only wildcards are
   * bound to them (see `Topic.forgettable`), solo again when they are plain
   * with one exact subscriber that waits for no settle.
   */
  #sweepIdle(): void {
    for (const t of this.#topics.values()) {
      if (!(t instanceof Topic) || t.bindings.length === 0 || !t.swept()) continue;
      if (t.forgettable()) {
        for (const b of [...t.bindings]) b.sub.unbindFrom(t);
        this.#topics.delete(t.name);
        continue;
      }
      const s = t.bindings[0];
      if (t.bindings.length !== 1 || !(s instanceof ExactSubscription) || !t.plain()) continue;
      if (s.replay || s.holds(s)) continue;
      const at = t.published === 0 && t.delivered === 0 && t.lastId === 0
        ? this.#fresh
        : new SoloTopic(this, t.published, t.delivered, t.lastId);
      s.rested(t, at);
      this.#topics.set(t.name, s);
    }
  }
}

/**
 * `TopicSet.map`: the live topics as `Topic`s. Reading one by name (`get`)
 * or all of them (`values`, `entries`, `forEach`) makes the solo ones
 * `Topic`s; `has`, `keys` and `size` do not.
 */
class TopicsView implements ReadonlyMap<string, Topic> {
  readonly #set: TopicSet;
  readonly #all: ReadonlyMap<string, unknown>;

  constructor(set: TopicSet, all: ReadonlyMap<string, unknown>) {
    this.#set = set;
    this.#all = all;
  }

  get size(): number {
    return this.#all.size;
  }

  has(name: string): boolean {
    return this.#all.has(name);
  }

  get(name: string): Topic | undefined {
    return this.#set.get(name);
  }

  keys(): MapIterator<string> {
    return this.#all.keys();
  }

  values(): MapIterator<Topic> {
    return this.#topics().values();
  }

  entries(): MapIterator<[string, Topic]> {
    return this.#topics().entries();
  }

  [Symbol.iterator](): MapIterator<[string, Topic]> {
    return this.entries();
  }

  forEach(
    f: (t: Topic, name: string, map: ReadonlyMap<string, Topic>) => void,
    self?: unknown,
  ): void {
    for (const [name, t] of this.#topics()) f.call(self, t, name, this);
  }

  /** Every live topic as a `Topic`, in the map's order. */
  #topics(): Map<string, Topic> {
    const m = new Map<string, Topic>();
    for (const name of [...this.#all.keys()]) m.set(name, this.#set.get(name)!);
    return m;
  }
}
