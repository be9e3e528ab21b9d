/**
 * A subscription to a topic or a wildcard pattern: its bindings (one per
 * matching topic, each with a cursor into that topic's shared list), its
 * deliveries in flight, NACK-delayed redeliveries, and, for a durable, the
 * durable state it moves.
 *
 * @module
 */
import { matches } from "../protocol/mod.ts";
import { MessageState } from "../storage/mod.ts";
import type { Message } from "../storage/mod.ts";
import type { Durable } from "./durable.ts";
import type { Delivery } from "./inflight.ts";
import type { SubscriptionStats } from "./stats.ts";
import { Subscription, type SubscriptionOptions } from "./subscription.ts";
import type { Binding, Topic, TopicHost } from "./topic.ts";
import type { Client } from "./types.ts";

/**
 * The delayed-NACK set of every subscription without one: a `Set` each (~0.15
 * KiB of heap with its table) for what few subscriptions ever do. Never added
 * to: `nack` gives a subscription its own set first.
 */
const NONE_SCHEDULED: ReadonlySet<Delivery> = new Set();

/** A subscription to a topic or a wildcard pattern. */
export class TopicSubscription extends Subscription {
  readonly pattern: string;
  readonly host: TopicHost;
  /** Bytes it may fall behind before the slow-consumer policy applies: the broker's limit, or its user's lower one. */
  lagBytesMax: number;
  /** Messages skipped: by the drop-oldest policy, or dropped by retention before it got them. */
  dropped = 0;
  /** Its topics' bindings (most subscriptions have one: see `bind`). */
  #bindings: Binding[] = [];
  /**
   * NACKed with a delay, waiting in the broker's heap (a durable's position
   * stays before them). Shared and empty until the first delayed NACK (see `nack`).
   */
  #scheduled = NONE_SCHEDULED as Set<Delivery>;
  #durable: Durable | undefined;
  /** Set once it has been reported as a slow consumer. */
  #slow = false;
  #resuming = false;
  /** Made with `start` or `durable` (a declared topic's log): in a cluster, served by its leader only. */
  replay = false;

  constructor(
    sid: string,
    pattern: string,
    client: Client,
    host: TopicHost,
    o: SubscriptionOptions,
    durable?: Durable,
  ) {
    super(sid, client, o);
    this.pattern = pattern;
    this.host = host;
    this.lagBytesMax = Math.min(host.subPendingBytesMax, client.lagBytesMax ?? Infinity);
    this.#durable = durable;
    durable?.attach(this);
  }

  get destination(): string {
    return this.pattern;
  }

  override get durable(): boolean {
    return this.#durable !== undefined;
  }

  /** The topics it is bound to, one binding each. */
  get bindings(): readonly Binding[] {
    return this.#bindings;
  }

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
    this.lagBytesMax = Math.min(this.host.subPendingBytesMax, this.client.lagBytesMax ?? Infinity);
    this.host.rebind(this);
  }

  /** Binds it to `topic`: from a retained message (`fromSeq`, see `Topic.seqAfter`), or from now on. */
  bind(topic: Topic, fromSeq?: number): void {
    const b = topic.bind(this, fromSeq);
    // A pushed-to empty array grows to 17 slots (0.15 KiB): one binding is the common case.
    if (this.#bindings.length === 0) this.#bindings = [b];
    else this.#bindings.push(b);
  }

  /** Whether a delivery in flight or waiting out a NACK delay came through `b` (it needs `b` to be sent again). */
  holds(b: Binding): boolean {
    for (let d = this.inflight.first; d !== undefined; d = d.next) if (d.binding === b) return true;
    for (const d of this.#scheduled) if (d.binding === b) return true;
    return false;
  }

  /** Drops its binding to `topic` (an idle topic the broker forgets; it binds again if one comes back). */
  unbindFrom(topic: Topic): void {
    const i = this.#bindings.findIndex((b) => b.topic === topic);
    if (i < 0) return;
    topic.unbind(this.#bindings[i]);
    this.#bindings.splice(i, 1);
  }

  /** Writes a message's first delivery to it (the topic moved the binding's cursor). */
  take(b: Binding, msg: Message): void {
    const now = this.host.now;
    this.send(b.head, msg, 1, b, now);
    b.topic.counters.delivered++;
    this.host.observeDelivery(msg);
  }

  /** Counts a message it will never get; `byRetention`: a declared topic dropped it first. */
  skipped(byRetention: boolean): void {
    this.dropped++;
    if (byRetention && this.#durable !== undefined) this.#durable.skipped++;
  }

  /** Reports it as a slow consumer (once); true the first time. */
  slowConsumer(why: string): boolean {
    if (this.#slow) return false;
    this.#slow = true;
    this.client.slowConsumer(`subscription ${this.sid} ${why}`);
    return true;
  }

  /** Delivers held messages while the connection takes them, in publish order across topics. */
  activate(): void {
    if (this.#resuming) return;
    this.#resuming = true;
    try {
      const bs = this.#bindings;
      if (bs.length === 1) {
        const b = bs[0];
        while (this.hasRoom() && b.topic.sendNext(b));
        return;
      }
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
    } finally {
      this.#resuming = false;
    }
  }

  ack(d: Delivery): void {
    this.settle(d);
    this.activate();
  }

  override settle(_d: Delivery): void {
    if (this.#durable !== undefined) this.host.durableMoved(this.#bindings[0]?.topic);
  }

  nack(d: Delivery, delayMs: number): void {
    if (delayMs === 0) return this.#redeliver(d);
    if (this.#scheduled === NONE_SCHEDULED) this.#scheduled = new Set();
    this.#scheduled.add(d);
    this.host.schedule(d, this.host.now + delayMs);
    this.activate(); // its prefetch room is free while it waits
  }

  /** A NACK delay ran out: sends `d` again, unless the subscription closed meanwhile. */
  due(d: Delivery): void {
    if (this.#scheduled.delete(d)) this.#redeliver(d);
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
    if (dropped) {
      this.dropped++;
      d.binding!.topic.counters.dropped++;
      if (this.#durable !== undefined) this.#durable.skipped++;
    }
    if (this.#durable !== undefined) this.host.durableMoved(this.#bindings[0]?.topic);
    this.activate();
  }

  /**
   * A durable's position while it is live: everything before its oldest
   * unsettled message, or, with none, before the next one it needs.
   */
  position(): number {
    const b = this.#bindings[0];
    if (b === undefined) return -1;
    const next = b.topic.nextId(b);
    let p = next === Infinity ? b.topic.lastId : next - 1;
    for (let d = this.inflight.first; d !== undefined; d = d.next) p = Math.min(p, d.msg.id - 1);
    for (const d of this.#scheduled) p = Math.min(p, d.msg.id - 1);
    return p;
  }

  /**
   * Ends it. Its deliveries in flight are not redelivered (a topic message
   * is each subscription's own); a durable keeps its position, or with
   * `forget` is deleted.
   */
  close(forget: boolean): void {
    const d = this.#durable;
    if (d !== undefined) {
      d.detach();
      if (forget) this.#bindings[0]?.topic.durables.delete(d.name);
      this.host.durableMoved(this.#bindings[0]?.topic);
    }
    this.takeAll();
    this.#scheduled.clear();
    const left = this.#bindings.map((b) => b.topic);
    for (const b of this.#bindings) b.topic.unbind(b);
    this.#bindings.length = 0;
    this.host.closed(this, left);
  }

  stats(): SubscriptionStats {
    let messages = 0;
    let bytes = 0;
    for (const b of this.#bindings) {
      const l = b.topic.lag(b);
      messages = Math.max(messages, l.messages);
      bytes = Math.max(bytes, l.bytes);
    }
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
