/**
 * The broker: destinations by name, publish, subscribe, and the periodic
 * sweep (TTL expiry, NACK delays, ack timeouts, idle destinations). It knows
 * nothing of sockets: connections reach it through the `Client` interface.
 *
 * @module
 */
import { DECLARED_TOPICS_MAX, DESTINATIONS_MAX, DURABLES_MAX } from "../config/limits.ts";
import {
  hasWildcard,
  matches,
  type PubOptions,
  type RetentionOptions,
  type StartPosition,
  type SubOptions,
} from "../protocol/mod.ts";
import { Heap, ID_SEQ_PER_MS, Message, MessageState, StoreError } from "../storage/mod.ts";
import { IdGenerator } from "./ids.ts";
import { LatencyHistogram } from "./latency.ts";
import { Queue, QueueConsumer, type QueueHost } from "./queue.ts";
import {
  Durable,
  type Pending,
  type Retention,
  Topic,
  type TopicHost,
  TopicSubscription,
} from "./topic.ts";
import { type TopicStateRecord, TopicStateStore } from "./topic_state.ts";
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
  /** Topics declared with retention. */
  #declared = new Set<Topic>();
  #durableCount = 0;
  #state: TopicStateStore;
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
    const names = options.store.queueNames();
    // The store also holds the logs of declared topics and their state record: not queues.
    for (const name of names) if (name.startsWith("queue:")) this.#queue(name);
    this.#state = new TopicStateStore(
      options.store,
      () => this.#ids.next(this.now),
      () => this.#stateRecord(),
    );
    this.#restoreTopics(names.filter((n) => n.startsWith("topic:")));
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
    return this.publishFrom(dest, payload, 0, payload.length, o);
  }

  /**
   * `publish` of the payload `buf[off, off + len)`, as the parser hands it
   * over: the message points into the read chunk, no view is made per message.
   */
  publishFrom(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): number | Promise<number> {
    const c = this.counters;
    if (dest.charCodeAt(0) === 0x74 /* t */) {
      const topic = this.#topics.get(dest) ?? this.#topicForPublish(dest);
      const msg = this.#message(dest, buf, off, len, o);
      let stored: void | Promise<void> = undefined;
      if (topic?.store !== undefined) {
        try {
          stored = topic.store.push(msg);
        } catch (e) {
          throw storeFailed(e);
        }
      }
      c.published++;
      c.publishedBytes += len;
      if (topic === undefined || (topic.bindings.length === 0 && topic.retention === undefined)) {
        c.unrouted++;
      } else topic.publish(msg);
      if (stored === undefined) return msg.id;
      return stored.then(() => msg.id, (e) => {
        throw storeFailed(e);
      });
    }
    const q = this.#queue(dest);
    this.#makeRoom(q, len);
    const msg = this.#message(dest, buf, off, len, o);
    let durable: void | Promise<void>;
    try {
      durable = q.store.push(msg);
    } catch (e) {
      throw storeFailed(e);
    }
    c.published++;
    c.publishedBytes += len;
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
      if (o.durable !== undefined || o.start !== undefined) {
        throw new BrokerError("BAD_ARGUMENT", "durable and start are for declared topics");
      }
      const q = this.#queue(dest);
      const c = new QueueConsumer(sid, q, client, {
        explicit: o.ack !== "none",
        prefetch,
        ackTimeoutMs,
      });
      q.addConsumer(c);
      return c;
    }
    if (o.durable !== undefined || o.start !== undefined) {
      return this.#replay(client, dest, sid, o, { prefetch, ackTimeoutMs });
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

  /**
   * Ends a subscription; unacked queue messages go back to the queue. A
   * durable keeps its position, or with `forget` is deleted.
   */
  unsubscribe(sub: Subscription, forget = false): void {
    if (sub instanceof QueueConsumer) {
      sub.queue.removeConsumer(sub);
      return;
    }
    const d = sub.durable;
    if (d !== undefined) {
      // Its position is kept: everything before its oldest unsettled message.
      const b = sub.bindings[0];
      if (b !== undefined) d.acked = Math.max(d.acked, b.topic.position(b));
      d.sub = undefined;
      if (forget && sub.bindings[0]?.topic.durables.delete(d.name)) this.#durableCount--;
      void this.#state.save();
    }
    for (const id of sub.inflight.keys()) sub.client.untrack(id);
    sub.inflight.clear();
    for (const b of sub.bindings) {
      b.topic.unbind(b);
      if (b.topic.bindings.length === 0 && b.topic.retention === undefined) {
        this.#topics.delete(b.topic.name);
      }
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
    for (const t of this.#declared) t.sweep(now);
  }

  /**
   * Declares `dest` (a topic) with retention, or changes its limits; limits
   * not given take the queue limits (and no age limit). Resolves when the
   * declaration is stored.
   */
  declare(dest: string, o: RetentionOptions): Promise<void> {
    const r: Retention = {
      messages: o.messages ?? this.options.queueMessagesMax,
      bytes: o.bytes ?? this.options.queueBytesMax,
      ageMs: o.ageMs ?? 0,
    };
    const t = this.#topics.get(dest);
    if (t?.retention !== undefined) t.declare(r, t.store!);
    else {
      if (this.#declared.size >= DECLARED_TOPICS_MAX) {
        throw new BrokerError("LIMIT", `the server holds ${DECLARED_TOPICS_MAX} declared topics`);
      }
      this.#declareTopic(t ?? this.#newTopic(dest), r);
    }
    return this.#state.save();
  }

  /** A promise that settles once durable positions changed by now are stored. */
  stateSaved(): Promise<void> {
    return this.#state.save();
  }

  /** Part of TopicHost: a durable position moved; stored at the end of the tick. */
  durableMoved(): void {
    void this.#state.save();
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

  #message(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): Message {
    const now = this.now;
    const id = this.#ids.next(now);
    const msg = o === undefined
      ? new Message(id, dest, EMPTY, 0, 0, 0, 0, undefined, undefined, undefined, now)
      : this.#messageWith(id, dest, o, now);
    msg.buf = buf;
    msg.off = off;
    msg.len = len;
    return msg;
  }

  #messageWith(id: number, dest: string, o: PubOptions, now: number): Message {
    return new Message(
      id,
      dest,
      EMPTY,
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

  /** A SUB with `durable` or `start`: on a declared topic, bound from a retained message. */
  #replay(
    client: Client,
    dest: string,
    sid: string,
    o: SubOptions,
    limits: { prefetch: number; ackTimeoutMs: number },
  ): TopicSubscription {
    if (hasWildcard(dest)) {
      throw new BrokerError(
        "BAD_DESTINATION",
        "a durable subscription or a replay takes one topic, not a wildcard",
      );
    }
    const t = this.#topics.get(dest);
    if (t?.retention === undefined) {
      throw new BrokerError("NOT_DECLARED", `${dest} is not declared: DECLARE it first`);
    }
    if (o.durable !== undefined && o.ack === "none") {
      throw new BrokerError("BAD_ARGUMENT", "a durable subscription takes explicit acks");
    }
    let d: Durable | undefined;
    let after: number;
    if (o.durable !== undefined) {
      d = t.durables.get(o.durable);
      if (d?.sub !== undefined) {
        throw new BrokerError(
          "DURABLE_IN_USE",
          `durable ${JSON.stringify(o.durable)} of ${dest} has a live subscription`,
        );
      }
      if (d === undefined) {
        if (this.#durableCount >= DURABLES_MAX) {
          throw new BrokerError("LIMIT", `the server holds ${DURABLES_MAX} durables`);
        }
        d = new Durable(o.durable, startAfter(t, o.start));
        t.durables.set(d.name, d);
        this.#durableCount++;
      }
      after = d.acked;
    } else after = startAfter(t, o.start);
    const explicit = d !== undefined || o.ack === "explicit";
    const s = new TopicSubscription(sid, dest, client, this, { explicit, ...limits });
    s.durable = d;
    s.bindings.push(t.bind(s, t.seqAfter(after)));
    if (explicit) this.#explicitTopicSubs.add(s);
    if (d !== undefined) {
      d.sub = s;
      void this.#state.save();
    }
    return s;
  }

  #declareTopic(t: Topic, r: Retention): void {
    t.declare(r, this.options.store.openQueue(t.name));
    this.#declared.add(t);
  }

  /** Declared topics, their durables and retained messages from the store, at start. */
  #restoreTopics(logs: string[]): void {
    const rec = this.#state.load();
    for (const x of rec?.topics ?? []) {
      const t = this.#topics.get(x.name) ?? this.#newTopic(x.name);
      this.#declareTopic(t, { messages: x.messages, bytes: x.bytes, ageMs: x.ageMs });
    }
    // A log whose declaration was lost (not yet stored at a crash) is kept under default limits.
    for (const name of logs) {
      if (this.#topics.has(name)) continue;
      const o = this.options;
      this.#declareTopic(this.#newTopic(name), {
        messages: o.queueMessagesMax,
        bytes: o.queueBytesMax,
        ageMs: 0,
      });
    }
    for (const x of rec?.durables ?? []) {
      const t = this.#topics.get(x.topic);
      if (t === undefined) continue;
      const d = new Durable(x.name, x.acked);
      d.skipped = x.skipped;
      t.durables.set(d.name, d);
      this.#durableCount++;
    }
    for (const t of this.#declared) {
      t.restore([...t.store!.messages()].sort((a, b) => a.id - b.id));
    }
  }

  /** The state record: declarations, and durable positions (live ones brought up to date). */
  #stateRecord(): TopicStateRecord {
    const rec: TopicStateRecord = { v: 1, topics: [], durables: [] };
    for (const t of this.#declared) {
      const r = t.retention!;
      rec.topics.push({ name: t.name, messages: r.messages, bytes: r.bytes, ageMs: r.ageMs });
      for (const d of t.durables.values()) {
        const b = d.sub?.bindings[0];
        if (b !== undefined) d.acked = Math.max(d.acked, t.position(b));
        rec.durables.push({ topic: t.name, name: d.name, acked: d.acked, skipped: d.skipped });
      }
    }
    return rec;
  }

  #checkRoom(): void {
    if (this.#queues.size + this.#topics.size >= DESTINATIONS_MAX) {
      throw new BrokerError("LIMIT", `the server holds ${DESTINATIONS_MAX} destinations already`);
    }
  }
}

/** The position (last settled id) a new durable or a replay starts after. */
function startAfter(t: Topic, start: StartPosition | undefined): number {
  switch (start?.kind) {
    case undefined:
    case "new":
      return t.lastId;
    case "first":
      return -1;
    case "id":
      return start.id - 1;
    case "time":
      return start.ms * ID_SEQ_PER_MS - 1;
  }
}

const EMPTY = new Uint8Array(0);

function storeFailed(e: unknown): BrokerError {
  const why = e instanceof StoreError ? e.message : String(e);
  return new BrokerError("STORE_FAILED", `message not stored: ${why}`);
}
