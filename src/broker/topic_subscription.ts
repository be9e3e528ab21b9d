/**
 * A subscription to a topic or a wildcard pattern: its bindings (one per
 * matching topic, each with a cursor into that topic's shared list), its
 * deliveries in flight, NACK-delayed redeliveries, and, for a durable, the
 * durable state it moves.
 *
 * Two kinds, for memory: an `ExactSubscription` names one topic for life and
 * is its own binding (no binding object, no array of one), and a
 * `PatternSubscription` (a wildcard) has a `TopicBinding` per topic it
 * matches. What only a few subscriptions ever have (a durable, delayed NACKs,
 * skipped messages) is in a `SubscriptionRare` made on first use: an idle
 * exact subscription is one object of 12 fields (0.3 KiB of heap in three
 * objects and two arrays before). While it is its topic's only subscriber it
 * holds the topic too (see topic_solo.ts).
 *
 * @module
 */
import { assert } from "../assert.ts";
import { matches, msgHead } from "../protocol/mod.ts";
import { MessageState } from "../storage/mod.ts";
import type { Message } from "../storage/mod.ts";
import type { Durable } from "./durable.ts";
import type { Delivery } from "./inflight.ts";
import type { SubscriptionStats } from "./stats.ts";
import { FLAGS_FREE, Subscription, type SubscriptionOptions } from "./subscription.ts";
import { type Binding, Topic, type TopicHost } from "./topic.ts";
import type { SoloTopic } from "./topic_solo.ts";
import type { Client } from "./types.ts";

/**
 * The delayed-NACK set of every subscription without one: a `Set` each (~0.15
 * KiB of heap with its table) for what few subscriptions ever do. Never added
 * to: `nack` gives a subscription its own set first.
 */
const NONE_SCHEDULED: ReadonlySet<Delivery> = new Set();

/** What few topic subscriptions ever have. */
class SubscriptionRare {
  /** Messages skipped: by the drop-oldest policy, or dropped by retention before it got them. */
  dropped = 0;
  /**
   * NACKed with a delay, waiting in the broker's heap (a durable's position
   * stays before them). Shared and empty until the first delayed NACK (see `nack`).
   */
  scheduled = NONE_SCHEDULED as Set<Delivery>;
  durable: Durable | undefined = undefined;
}

/** The rare part of every subscription that never needed one (frozen: a write to it throws). */
const NO_RARE: Readonly<SubscriptionRare> = Object.freeze(new SubscriptionRare());

/** `flags`: reported as a slow consumer (once). */
const SLOW = FLAGS_FREE;
/** `flags`: inside `activate` (a delivery may call it again). */
const RESUMING = FLAGS_FREE << 1;
/** `flags`: made with `start` or `durable`. */
const REPLAY = FLAGS_FREE << 2;
/** `flags` of an `ExactSubscription`: bound to its topic (from `bind` to `close`). */
const BOUND = FLAGS_FREE << 3;

/** A subscription to a topic or a wildcard pattern. */
export abstract class TopicSubscription extends Subscription {
  /** The topic name or wildcard pattern subscribed to. */
  abstract readonly pattern: string;
  /** The broker it lives in. */
  abstract readonly host: TopicHost;
  /** See `SubscriptionRare`: `NO_RARE` (shared, never written) until `own` makes its own. */
  #rare = NO_RARE as SubscriptionRare;

  constructor(sid: string, client: Client, o: SubscriptionOptions, durable?: Durable) {
    super(sid, client, o);
    if (durable !== undefined) {
      TopicSubscription.#own(this).durable = durable;
      durable.attach(this);
    }
  }

  /**
   * Its rare part, made its own first if it is still the shared one (static:
   * a private instance method would cost every instance a brand slot).
   */
  static #own(s: TopicSubscription): SubscriptionRare {
    if (s.#rare === NO_RARE) s.#rare = new SubscriptionRare();
    return s.#rare;
  }

  get destination(): string {
    return this.pattern;
  }

  override get durable(): boolean {
    return this.#rare.durable !== undefined;
  }

  /**
   * Bytes it may fall behind before the slow-consumer policy applies: the
   * broker's limit, or its user's lower one (asked when it lags, not kept).
   */
  get lagBytesMax(): number {
    return Math.min(this.host.subPendingBytesMax, this.client.lagBytesMax ?? Infinity);
  }

  /** Messages skipped: by the drop-oldest policy, or dropped by retention before it got them. */
  get dropped(): number {
    return this.#rare.dropped;
  }

  /** Made with `start` or `durable` (a declared topic's log): in a cluster, served by its leader only. */
  get replay(): boolean {
    return (this.flags & REPLAY) !== 0;
  }

  set replay(on: boolean) {
    this.flags = on ? this.flags | REPLAY : this.flags & ~REPLAY;
  }

  /** The topics it is bound to, one binding each. */
  abstract get bindings(): readonly Binding[];

  /** Drops its binding to `topic` (an idle topic the broker forgets; it binds again if one comes back). */
  abstract unbindFrom(topic: Topic): void;

  /** Its first binding: a durable's or a replay's only one. */
  protected abstract get first(): Binding | undefined;

  /** Sends held messages while the connection takes them (`activate`, not re-entered). */
  protected abstract resume(): void;

  /** Sends `b`'s held messages of `t` while the connection takes them. */
  protected drain(t: Topic, b: Binding): void {
    while (this.hasRoom() && t.sendNext(b));
  }

  /** How far behind it is, the most of its bindings. */
  protected lag(): { messages: number; bytes: number } {
    let messages = 0;
    let bytes = 0;
    for (const b of this.bindings) {
      const l = b.topic.lag(b);
      messages = Math.max(messages, l.messages);
      bytes = Math.max(bytes, l.bytes);
    }
    return { messages, bytes };
  }

  /** Unbinds it from every topic; returns them. */
  protected abstract unbindAll(): Topic[];

  /**
   * Whether it should be bound to the topic `name`: the pattern matches and
   * the connection's user may read it. Asked when a topic appears or the
   * subscription starts, so a denied topic costs nothing per message: it is
   * never bound, and its messages never reach this subscription.
   */
  wants(name: string): boolean {
    return matches(this.pattern, name) && (this.client.mayRead?.(name) ?? true);
  }

  override permissionsChanged(): void {
    this.host.rebind(this);
  }

  /** Whether a delivery in flight or waiting out a NACK delay came through `b` (it needs `b` to be sent again). */
  holds(b: Binding): boolean {
    for (let d = this.inflight.first; d !== undefined; d = d.next) if (d.binding === b) return true;
    for (const d of this.#rare.scheduled) if (d.binding === b) return true;
    return false;
  }

  /** Writes a message's first delivery to it at `now` (the topic moves the binding's cursor, counts it and times it). */
  take(b: Binding, msg: Message, now: number): void {
    this.send(b.head, msg, 1, b, now);
  }

  /** Counts a message it will never get; `byRetention`: a declared topic dropped it first. */
  skipped(byRetention: boolean): void {
    const x = TopicSubscription.#own(this);
    x.dropped++;
    if (byRetention && x.durable !== undefined) x.durable.skipped++;
  }

  /** Reports it as a slow consumer (once); true the first time. */
  slowConsumer(why: string): boolean {
    if ((this.flags & SLOW) !== 0) return false;
    this.flags |= SLOW;
    this.client.slowConsumer(`subscription ${this.sid} ${why}`);
    return true;
  }

  /** Delivers held messages while the connection takes them, in publish order across topics. */
  activate(): void {
    if ((this.flags & RESUMING) !== 0) return;
    this.flags |= RESUMING;
    try {
      this.resume();
    } finally {
      this.flags &= ~RESUMING;
    }
  }

  ack(d: Delivery): void {
    this.settle(d);
    this.activate();
  }

  override settle(_d: Delivery): void {
    if (this.#rare.durable !== undefined) this.host.durableMoved(this.first?.topic);
  }

  nack(d: Delivery, delayMs: number): void {
    if (delayMs === 0) return this.#redeliver(d);
    const x = TopicSubscription.#own(this);
    if (x.scheduled === NONE_SCHEDULED) x.scheduled = new Set();
    x.scheduled.add(d);
    this.host.schedule(d, this.host.now + delayMs);
    this.activate(); // its prefetch room is free while it waits
  }

  /** A NACK delay ran out: sends `d` again, unless the subscription closed meanwhile. */
  due(d: Delivery): void {
    if (this.#rare.scheduled.delete(d)) this.#redeliver(d);
  }

  protected expired(ds: Delivery[]): void {
    for (const d of ds) this.#redeliver(d);
  }

  /**
   * Sends a delivery again. One that retention dropped meanwhile is skipped
   * (counted); one whose TTL passed is passed over, as a held message is.
   */
  #redeliver(d: Delivery): void {
    const msg = d.msg;
    const now = this.host.now;
    const dropped = msg.state === MessageState.DONE;
    if (!dropped && !msg.expired(now)) return this.resend(d, d.binding!.head, now);
    const durable = this.#rare.durable;
    if (dropped) {
      TopicSubscription.#own(this).dropped++;
      d.binding!.topic.countDropped();
      if (durable !== undefined) durable.skipped++;
    }
    if (durable !== undefined) this.host.durableMoved(this.first?.topic);
    this.activate();
  }

  /**
   * A durable's position while it is live: everything before its oldest
   * unsettled message, or, with none, before the next one it needs.
   */
  position(): number {
    const b = this.first;
    if (b === undefined) return -1;
    const next = b.topic.nextId(b);
    let p = next === Infinity ? b.topic.lastId : next - 1;
    for (let d = this.inflight.first; d !== undefined; d = d.next) p = Math.min(p, d.msg.id - 1);
    for (const d of this.#rare.scheduled) p = Math.min(p, d.msg.id - 1);
    return p;
  }

  /**
   * Ends it. Its deliveries in flight are not redelivered (a topic message
   * is each subscription's own); a durable keeps its position, or with
   * `forget` is deleted.
   */
  close(forget: boolean): void {
    const d = this.#rare.durable;
    if (d !== undefined) {
      d.detach();
      if (forget) this.first?.topic.durables.delete(d.name);
      this.host.durableMoved(this.first?.topic);
    }
    this.takeAll();
    this.#rare.scheduled.clear();
    this.host.closed(this, this.unbindAll());
  }

  stats(): SubscriptionStats {
    const { messages, bytes } = this.lag();
    return {
      sid: this.sid,
      ack: this.explicit ? "explicit" : "none",
      prefetch: this.prefetch,
      inflight: this.inflight.size,
      delivered: this.delivered,
      destination: this.pattern,
      ...(this.filterSource === undefined ? {} : { filter: this.filterSource }),
      dropped: this.dropped,
      lag_msgs: messages,
      lag_bytes: bytes,
    };
  }
}

/**
 * A subscription to one topic by its exact name: its own binding to that
 * topic (`sub` is itself), bound from `bind` until `close`. While it is the
 * topic's only subscriber and the topic keeps nothing else, the topic has
 * no `Topic`: the subscription holds its figures (`solo`, see topic_solo.ts).
 */
export class ExactSubscription extends TopicSubscription implements Binding {
  /** Its topic's name. */
  readonly pattern: string;
  cursor = 0;
  /** Its topic: a `Topic`, or a solo topic's figures (one field for both: 12 in all, see `Subscription.flags`). */
  #at: Topic | SoloTopic;
  #head: Uint8Array | undefined = undefined;

  /** Bound to topic `name` (a `Topic`, or solo: `SoloTopic`) by `bind`, which its maker calls next. */
  constructor(
    sid: string,
    name: string,
    at: Topic | SoloTopic,
    client: Client,
    o: SubscriptionOptions,
    durable?: Durable,
  ) {
    super(sid, client, o, durable);
    this.pattern = name;
    this.#at = at;
  }

  /** Its topic, made a `Topic` first if it is solo (the caller needs one). */
  get topic(): Topic {
    const at = this.#at;
    return at instanceof Topic ? at : at.set.promote(this);
  }

  /** Its solo topic's figures; undefined when its topic is a `Topic`. */
  get solo(): SoloTopic | undefined {
    const at = this.#at;
    return at instanceof Topic ? undefined : at;
  }

  /** Its topic's host (not a field of its own). */
  get host(): TopicHost {
    return this.#at.host;
  }

  /** As a binding: the subscription it belongs to, itself. */
  get sub(): this {
    return this;
  }

  /** `MSG <topic> sub_id:<sid>`, made at its first delivery and kept (see `Binding.head`). */
  get head(): Uint8Array {
    return this.#head ??= msgHead(this.pattern, this.sid);
  }

  get bindings(): readonly Binding[] {
    return (this.flags & BOUND) === 0 ? [] : [this];
  }

  /** Binds it to its topic: from a retained message (`fromSeq`, see `Topic.seqAfter`), or from now on. */
  bind(fromSeq?: number): void {
    assert((this.flags & BOUND) === 0, () => `${this.sid} binds once`);
    const at = this.#at;
    if (at instanceof Topic) at.bind(this, fromSeq);
    this.flags |= BOUND;
  }

  /** (TopicSet) Its solo topic is a `Topic` now: bound to it, caught up. */
  joined(t: Topic): void {
    this.#at = t;
    if ((this.flags & BOUND) !== 0) t.bind(this);
  }

  /** (TopicSet) Its topic, plain and idle, is solo again: unbound from its `Topic`, which is dropped. */
  rested(t: Topic, at: SoloTopic): void {
    t.unbind(this);
    this.#at = at;
  }

  unbindFrom(topic: Topic): void {
    if (topic === this.#at) this.unbindAll();
  }

  protected get first(): Binding | undefined {
    return (this.flags & BOUND) === 0 ? undefined : this;
  }

  protected resume(): void {
    const at = this.#at;
    if ((this.flags & BOUND) !== 0 && at instanceof Topic) this.drain(at, this); // solo: holds nothing
  }

  protected override lag(): { messages: number; bytes: number } {
    const at = this.#at;
    return at instanceof Topic && (this.flags & BOUND) !== 0
      ? at.lag(this)
      : { messages: 0, bytes: 0 };
  }

  protected unbindAll(): Topic[] {
    if ((this.flags & BOUND) === 0) return [];
    this.flags &= ~BOUND;
    const at = this.#at;
    if (!(at instanceof Topic)) return []; // solo: the set forgets it when told it closed
    at.unbind(this);
    return [at];
  }
}

/** A wildcard subscription's binding to one topic it matches. */
class TopicBinding implements Binding {
  cursor = 0;
  #head: Uint8Array | undefined = undefined;

  constructor(readonly sub: TopicSubscription, readonly topic: Topic) {}

  get head(): Uint8Array {
    return this.#head ??= msgHead(this.topic.name, this.sub.sid);
  }
}

/** A subscription to a wildcard pattern: bound to each topic it matches, as topics appear. */
export class PatternSubscription extends TopicSubscription {
  readonly pattern: string;
  readonly host: TopicHost;
  /** Its topics' bindings (see `bind`). */
  #bindings: Binding[] = [];

  constructor(
    sid: string,
    pattern: string,
    client: Client,
    host: TopicHost,
    o: SubscriptionOptions,
  ) {
    super(sid, client, o);
    this.pattern = pattern;
    this.host = host;
  }

  get bindings(): readonly Binding[] {
    return this.#bindings;
  }

  /** Binds it to `topic`: from a retained message (`fromSeq`, see `Topic.seqAfter`), or from now on. */
  bind(topic: Topic, fromSeq?: number): void {
    const b = new TopicBinding(this, topic);
    topic.bind(b, fromSeq);
    // A pushed-to empty array grows to 17 slots (0.15 KiB): one binding is a common case.
    if (this.#bindings.length === 0) this.#bindings = [b];
    else this.#bindings.push(b);
  }

  unbindFrom(topic: Topic): void {
    const i = this.#bindings.findIndex((b) => b.topic === topic);
    if (i < 0) return;
    topic.unbind(this.#bindings[i]);
    this.#bindings.splice(i, 1);
  }

  protected get first(): Binding | undefined {
    return this.#bindings[0];
  }

  protected resume(): void {
    const bs = this.#bindings;
    if (bs.length === 1) return this.drain(bs[0].topic, bs[0]); // no order across topics to keep
    while (this.hasRoom()) {
      let best: Binding | undefined;
      let bestId = Infinity;
      for (const b of bs) {
        const id = b.topic.nextId(b);
        if (id < bestId) {
          bestId = id;
          best = b;
        }
      }
      if (best === undefined) return;
      best.topic.sendNext(best);
    }
  }

  protected unbindAll(): Topic[] {
    const left = this.#bindings.map((b) => b.topic);
    for (const b of this.#bindings) b.topic.unbind(b);
    this.#bindings.length = 0;
    return left;
  }
}
