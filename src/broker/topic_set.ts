/**
 * `TopicSet`: the topic side of the broker. Live topics by name, the
 * wildcard subscriptions that bind to topics as they appear, the
 * explicit-ack subscriptions whose deadlines the sweep checks, NACKed topic
 * deliveries waiting for their redelivery time, and the topic part of the
 * periodic sweep. The broker owns one and keeps the publish and subscribe
 * paths, which touch topics and queues alike.
 *
 * @module
 */
import { Heap } from "../storage/mod.ts";
import type { Delivery } from "./inflight.ts";
import { byName, type Page, page, type PageOptions, type TopicStats } from "./stats.ts";
import { Topic, type TopicHost } from "./topic.ts";
import type { TopicSubscription } from "./topic_subscription.ts";

/** What a `TopicSet` needs of its broker: the host its topics live in, and the destination limit. */
export interface TopicSetHost extends TopicHost {
  /** Throws `LIMIT` when the broker holds as many destinations as it may. */
  checkRoom(): void;
}

/** The live topics of one broker. */
export class TopicSet {
  readonly #host: TopicSetHost;
  readonly #topics = new Map<string, Topic>();
  readonly #wildcards = new Set<TopicSubscription>();
  readonly #explicit = new Set<TopicSubscription>();
  readonly #redeliveries = new Heap<Delivery>();

  constructor(host: TopicSetHost) {
    this.#host = host;
  }

  /** Live topics by name. */
  get map(): ReadonlyMap<string, Topic> {
    return this.#topics;
  }

  /** Topics with at least one subscription or binding. */
  subscribed(): number {
    let n = 0;
    for (const t of this.#topics.values()) if (t.bindings.length > 0) n++;
    return n;
  }

  /** The topic a publish to `name` goes to: the live one, or a new one when a wildcard subscription wants it. */
  forPublish(name: string): Topic | undefined {
    const t = this.#topics.get(name);
    if (t !== undefined) return t;
    for (const s of this.#wildcards) if (s.wants(name)) return this.create(name);
    return undefined;
  }

  /** The topic of that name, created if new. */
  open(name: string): Topic {
    return this.#topics.get(name) ?? this.create(name);
  }

  /** Creates a topic and binds the wildcard subscriptions that match it (throws `LIMIT` when the broker is full). */
  create(name: string): Topic {
    this.#host.checkRoom();
    const t = new Topic(name, this.#host);
    this.#topics.set(name, t);
    for (const s of this.#wildcards) if (s.wants(name)) s.bind(t);
    return t;
  }

  /** Binds a new plain (not durable, not replay) subscription to its topic, or to every topic its wildcard matches. */
  bindNew(s: TopicSubscription, wildcard: boolean): void {
    if (!wildcard) {
      s.bind(this.open(s.pattern));
      return;
    }
    this.#wildcards.add(s);
    for (const t of this.#topics.values()) if (s.wants(t.name)) s.bind(t);
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
    if (!this.#wildcards.has(sub)) return;
    const bound = new Set<Topic>();
    for (const b of [...sub.bindings]) {
      if (sub.wants(b.topic.name)) bound.add(b.topic);
      else sub.unbindFrom(b.topic);
    }
    for (const t of this.#topics.values()) if (!bound.has(t) && sub.wants(t.name)) sub.bind(t);
    sub.activate();
  }

  /** A subscription closed and left `left`: topics nobody uses any more are forgotten. */
  closed(sub: TopicSubscription, left: readonly Topic[]): void {
    this.#wildcards.delete(sub);
    this.#explicit.delete(sub);
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
   * idle wildcard-only topics, and (`block` policy) blocks held longer than
   * `blockMs`.
   */
  sweep(now: number, block: boolean, blockMs: number): void {
    while (this.#redeliveries.peekKey() <= now) {
      const d = this.#redeliveries.pop()!;
      d.binding!.sub.due(d);
    }
    for (const s of this.#explicit) s.expireAcks(now);
    this.#forgetIdle();
    if (block) {
      for (const t of this.#topics.values()) if (t.blockedAt !== 0) t.expireBlock(now, blockMs);
    }
  }

  /** Topics by name, a page of them. */
  stats(o: PageOptions): Page<TopicStats> {
    return page(byName(this.#topics), o, (t) => t.stats());
  }

  /** Topics only wildcards bound to, idle since the last sweep (see `Topic.forgettable`). */
  #forgetIdle(): void {
    for (const t of this.#topics.values()) {
      if (t.bindings.length === 0 || !t.forgettable()) continue;
      for (const b of [...t.bindings]) b.sub.unbindFrom(t);
      this.#topics.delete(t.name);
    }
  }
}
