/**
 * The broker: destinations by name, publish, subscribe, and the periodic
 * sweep (TTL expiry, NACK delays, ack timeouts, idle destinations). It knows
 * nothing of sockets: connections reach it through the `Client` interface.
 *
 * @module
 */
import { DESTINATIONS_MAX } from "../config/limits.ts";
import { hasWildcard, matches, type PubOptions, type SubOptions } from "../protocol/mod.ts";
import { Heap, Message, MessageState, StoreError } from "../storage/mod.ts";
import { IdGenerator } from "./ids.ts";
import { LatencyHistogram } from "./latency.ts";
import { Queue, QueueConsumer, type QueueHost } from "./queue.ts";
import { type Pending, Topic, type TopicHost, TopicSubscription } from "./topic.ts";
import {
  BrokerError,
  type BrokerOptions,
  type Client,
  type QueueOverflow,
  type SlowConsumerPolicy,
} from "./types.ts";

/** A subscription of either kind. */
export type Subscription = QueueConsumer | TopicSubscription;

/** Broker-wide counters. */
export interface BrokerCounters {
  published: number;
  publishedBytes: number;
  /** Topic messages published with no matching subscription. */
  unrouted: number;
  rejected: number;
}

/** The epoch time in fractional ms; read once per batch of frames, not per message. */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** Destinations, publish and subscribe. */
export class Broker implements QueueHost, TopicHost {
  /** Current time (epoch ms), set by `tick()` once per batch of work. */
  now = clock();
  readonly maxDeliveries: number;
  readonly slowConsumer: SlowConsumerPolicy;
  readonly subPendingMessagesMax: number;
  readonly subPendingBytesMax: number;
  readonly counters: BrokerCounters = { published: 0, publishedBytes: 0, unrouted: 0, rejected: 0 };
  readonly latency = new LatencyHistogram();
  readonly options: BrokerOptions;
  #queueOverflow: QueueOverflow;
  #queues = new Map<string, Queue>();
  #topics = new Map<string, Topic>();
  #wildcards = new Set<TopicSubscription>();
  #explicitTopicSubs = new Set<TopicSubscription>();
  #redeliveries = new Heap<Pending>();
  #ids: IdGenerator;
  #startedAt = Date.now();
  /** Messages with an id from here on were accepted in the current tick. */
  #tickFirstId = 0;

  constructor(options: BrokerOptions) {
    this.options = options;
    this.maxDeliveries = options.maxDeliveries;
    this.slowConsumer = options.slowConsumer;
    this.subPendingMessagesMax = options.subPendingMessagesMax;
    this.subPendingBytesMax = options.subPendingBytesMax;
    this.#queueOverflow = options.queueOverflow;
    this.#ids = new IdGenerator(options.store.lastId());
    for (const name of options.store.queueNames()) this.#queue(name);
  }

  /** Reads the clock once for the work that follows. */
  tick(): number {
    const now = this.now = clock();
    this.#tickFirstId = this.#ids.floor(now);
    return now;
  }

  /** Epoch ms when the broker started. */
  get startedAt(): number {
    return this.#startedAt;
  }

  /**
   * Accepts a message; returns its id, or a promise of it when the store
   * must make it durable first. Throws `BrokerError` when refused.
   */
  publish(dest: string, payload: Uint8Array, o: PubOptions | undefined): number | Promise<number> {
    const c = this.counters;
    if (dest.charCodeAt(0) === 0x74 /* t */) {
      const topic = this.#topics.get(dest) ?? this.#topicForPublish(dest);
      const msg = this.#message(dest, payload, o);
      c.published++;
      c.publishedBytes += payload.length;
      if (topic === undefined || topic.bindings.length === 0) c.unrouted++;
      else topic.publish(msg);
      return msg.id;
    }
    const q = this.#queue(dest);
    this.#makeRoom(q, payload.length);
    const msg = this.#message(dest, payload, o);
    let durable: void | Promise<void>;
    try {
      durable = q.store.push(msg);
    } catch (e) {
      throw storeFailed(e);
    }
    c.published++;
    c.publishedBytes += payload.length;
    q.counters.published++;
    q.dispatch();
    // Still waiting for a consumer: it may wait long, so it must not pin the read chunk.
    if (msg.state === MessageState.READY) msg.retain();
    if (durable === undefined) return msg.id;
    return durable.then(() => msg.id, (e) => {
      throw storeFailed(e);
    });
  }

  /** Starts a subscription for `client`; `sid` is already unique on the connection. */
  subscribe(client: Client, dest: string, sid: string, o: SubOptions): Subscription {
    const prefetch = o.prefetch ?? this.options.prefetch;
    const ackTimeoutMs = o.ackTimeoutMs ?? this.options.ackTimeoutMs;
    if (dest.startsWith("queue:")) {
      const q = this.#queue(dest);
      const c = new QueueConsumer(sid, q, client, {
        explicit: o.ack !== "none",
        prefetch,
        ackTimeoutMs,
      });
      q.addConsumer(c);
      return c;
    }
    const explicit = o.ack === "explicit";
    const s = new TopicSubscription(sid, dest, client, this, { explicit, prefetch, ackTimeoutMs });
    if (hasWildcard(dest)) {
      this.#wildcards.add(s);
      for (const t of this.#topics.values()) if (matches(dest, t.name)) s.bindings.push(t.bind(s));
    } else {
      const t = this.#topics.get(dest) ?? this.#newTopic(dest);
      s.bindings.push(t.bind(s));
    }
    if (explicit) this.#explicitTopicSubs.add(s);
    return s;
  }

  /** Starts or resumes deliveries to a subscription (after its OK, or when its socket drained). */
  activate(sub: Subscription): void {
    if (sub instanceof QueueConsumer) sub.queue.dispatch();
    else sub.resume();
  }

  /** Ends a subscription; unacked queue messages go back to the queue. */
  unsubscribe(sub: Subscription): void {
    if (sub instanceof QueueConsumer) {
      sub.queue.removeConsumer(sub);
      return;
    }
    for (const id of sub.inflight.keys()) sub.client.untrack(id);
    sub.inflight.clear();
    for (const b of sub.bindings) {
      b.topic.unbind(b);
      if (b.topic.bindings.length === 0) this.#topics.delete(b.topic.name);
    }
    sub.bindings.length = 0;
    this.#wildcards.delete(sub);
    this.#explicitTopicSubs.delete(sub);
  }

  /** Periodic work: expiry, delays, ack timeouts, idle queues. Cost is O(destinations). */
  sweep(): void {
    const now = this.tick();
    for (const q of this.#queues.values()) {
      if (q.store.nextDueAt() <= now) {
        q.store.sweep(now);
        q.dispatch();
      }
      for (const c of q.consumers) if (c.inflight.size > 0) c.expireAcks(now);
      if (q.consumers.length === 0 && q.store.size === 0) {
        this.#queues.delete(q.name);
        this.options.store.dropQueue(q.name);
      }
    }
    while (this.#redeliveries.peekKey() <= now) {
      const p = this.#redeliveries.pop()!;
      const sub = p.binding.sub;
      if (sub.bindings.includes(p.binding)) sub.redeliver(p);
    }
    for (const s of this.#explicitTopicSubs) s.expireAcks(now);
  }

  /** Part of TopicHost: schedules a delayed topic redelivery. */
  schedule(p: Pending, dueAt: number): void {
    this.#redeliveries.push(dueAt, p);
  }

  /**
   * Part of QueueHost and TopicHost. A message delivered in the tick that
   * accepted it waited no time in the broker; an older one waited since the
   * millisecond its id was taken in (half a millisecond is the unbiased guess
   * within it): the id holds the accept time, so messages need no field for it.
   */
  observeDelivery(msg: Message): void {
    this.latency.observe(
      msg.id >= this.#tickFirstId ? 0 : Math.max(0, this.now - msg.acceptedAt - 0.5),
    );
  }

  /** Part of QueueHost: moves a message to `<queue>.dlq`; false when that queue is full. */
  deadLetter(queue: Queue, msg: Message): boolean {
    let dlq: Queue;
    try {
      dlq = this.#queue(`${queue.name}.dlq`);
      this.#makeRoom(dlq, msg.len);
    } catch {
      return false;
    }
    const copy = new Message(
      this.#ids.next(this.now),
      dlq.name,
      msg.payload,
      msg.hdrBytes,
      msg.priority,
      msg.ttlMs,
      msg.expiresAt,
      msg.correlationId,
      msg.replyTo,
      msg.contentType,
      this.now,
    );
    copy.retain();
    try {
      void dlq.store.push(copy);
    } catch {
      return false;
    }
    dlq.counters.published++;
    dlq.dispatch();
    return true;
  }

  /** Live queues by name (for stats). */
  get queues(): ReadonlyMap<string, Queue> {
    return this.#queues;
  }

  /** Live topics by name (for stats). */
  get topics(): ReadonlyMap<string, Topic> {
    return this.#topics;
  }

  #message(dest: string, payload: Uint8Array, o: PubOptions | undefined): Message {
    const now = this.now;
    const id = this.#ids.next(now);
    if (o === undefined) {
      return new Message(id, dest, payload, 0, 0, 0, 0, undefined, undefined, undefined, now);
    }
    return new Message(
      id,
      dest,
      payload,
      o.hdrBytes,
      o.priority,
      o.ttlMs,
      o.ttlMs === 0 ? 0 : now + o.ttlMs,
      o.correlationId,
      o.replyTo,
      o.contentType,
      now,
    );
  }

  /** Applies the capacity policy before a message of `bytes` enters `q`. */
  #makeRoom(q: Queue, bytes: number): void {
    const o = this.options;
    const s = q.store;
    while (s.size + 1 > o.queueMessagesMax || s.bytes + bytes > o.queueBytesMax) {
      if (this.#queueOverflow === "reject" || s.dropOldest() === undefined) {
        q.counters.rejected++;
        this.counters.rejected++;
        throw new BrokerError(
          "QUEUE_FULL",
          `${q.name} is full (${s.size} messages, ${s.bytes} bytes)`,
        );
      }
    }
  }

  #queue(name: string): Queue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      this.#checkRoom();
      q = new Queue(this.options.store.openQueue(name), this);
      this.#queues.set(name, q);
    }
    return q;
  }

  /** A topic is created on publish only when a wildcard subscription wants it. */
  #topicForPublish(name: string): Topic | undefined {
    for (const s of this.#wildcards) if (matches(s.pattern, name)) return this.#newTopic(name);
    return undefined;
  }

  /** Creates a topic and binds the wildcard subscriptions that match it. */
  #newTopic(name: string): Topic {
    this.#checkRoom();
    const t = new Topic(name, this);
    this.#topics.set(name, t);
    for (const s of this.#wildcards) if (matches(s.pattern, name)) s.bindings.push(t.bind(s));
    return t;
  }

  #checkRoom(): void {
    if (this.#queues.size + this.#topics.size >= DESTINATIONS_MAX) {
      throw new BrokerError("LIMIT", `the server holds ${DESTINATIONS_MAX} destinations already`);
    }
  }
}

function storeFailed(e: unknown): BrokerError {
  const why = e instanceof StoreError ? e.message : String(e);
  return new BrokerError("STORE_FAILED", `message not stored: ${why}`);
}
