/**
 * The broker: destinations by name, publish, subscribe, and the periodic
 * sweep (TTL expiry, NACK delays, ack timeouts, idle destinations). It knows
 * nothing of sockets: connections reach it through the `Client` interface,
 * and it reads time only from the `Clock` it is given.
 *
 * @module
 */
import {
  DESTINATIONS_MAX,
  PEEK_MESSAGES_MAX,
  REPLAY_MESSAGES_MAX,
  SLOW_CONSUMER_BLOCK_MS,
} from "../config/mod.ts";
import {
  type FilterOption,
  hasWildcard,
  type PubOptions,
  type QueueDeclareOptions,
  type RetentionOptions,
  type SubOptions,
} from "../protocol/mod.ts";
import { type Clock, systemClock } from "../runtime/mod.ts";
import { Heap, type Message, MessageState } from "../storage/mod.ts";
import { AdminError, peeked, type PeekedMessage, queueName, topicName } from "./admin.ts";
import { type DeclaredHost, DeclaredTopics } from "./declared.ts";
import { Deduplicator } from "./dedup.ts";
import { IdGenerator } from "./ids.ts";
import type { Delivery } from "./inflight.ts";
import { LATENCY_BUCKETS_S, LatencyHistogram } from "./latency.ts";
import { copyOf, published } from "./messages.ts";
import { type RouteHost, Routes } from "./routes.ts";
import { Queue, QueueConsumer, type QueueHost } from "./queue.ts";
import { DeclaredQueues, type QueueDeclaration, resolveSettings } from "./queue_settings.ts";
import { type ScheduledHost, Scheduler } from "./scheduled.ts";
import {
  type BindingStats,
  type BrokerStats,
  byName,
  type Page,
  page,
  type PageOptions,
  type QueueStats,
  type TopicStats,
} from "./stats.ts";
import type { Subscription } from "./subscription.ts";
import { Topic } from "./topic.ts";
import { TopicSubscription } from "./topic_subscription.ts";
import {
  BrokerError,
  type BrokerOptions,
  type Client,
  type QueueOverflow,
  type SlowConsumerPolicy,
  storeFailed,
  type TopicInterest,
} from "./types.ts";

/** Broker-wide counters. */
export interface BrokerCounters {
  published: number;
  publishedBytes: number;
  /** Topic messages published with no matching subscription or binding. */
  unrouted: number;
  rejected: number;
  /** Copies of topic messages enqueued through bindings. */
  routed: number;
}

/** Destinations, publish and subscribe. */
export class Broker implements QueueHost, DeclaredHost, RouteHost, ScheduledHost {
  /** Current time (epoch ms), set by `tick()` once per batch of work. */
  now: number;
  readonly clock: Clock;
  readonly slowConsumer: SlowConsumerPolicy;
  readonly subPendingMessagesMax: number;
  readonly subPendingBytesMax: number;
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  readonly counters: BrokerCounters = {
    published: 0,
    publishedBytes: 0,
    unrouted: 0,
    rejected: 0,
    routed: 0,
  };
  readonly latency = new LatencyHistogram();
  readonly options: BrokerOptions;
  #queues = new Map<string, Queue>();
  /** The cluster's link (src/cluster/), told of topic interest and local publishes; undefined: single node. */
  interest: TopicInterest | undefined;
  #fromPeer = false;
  #topics = new Map<string, Topic>();
  #wildcards = new Set<TopicSubscription>();
  #explicitTopicSubs = new Set<TopicSubscription>();
  #redeliveries = new Heap<Delivery>();
  #declared: DeclaredTopics;
  #routes: Routes;
  #declaredQueues = new DeclaredQueues();
  #scheduler: Scheduler;
  #dedup = new Deduplicator();
  /** Id of the message the last `#publishTopic` made. */
  #lastTopicId = 0;
  #ids: IdGenerator;
  #startedAt: number;
  /** Messages with an id from here on were accepted in the current tick. */
  #tickFirstId = 0;
  /** Whether a message published since `takePinned()` still points into its caller's buffer. */
  #pinned = false;
  /** A topic published to since `takeBlocked()` whose publishers are to pause (`block` policy). */
  #blockedBy: Topic | undefined = undefined;
  #blockMs: number;

  constructor(options: BrokerOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.now = this.#startedAt = this.clock.now();
    this.slowConsumer = options.slowConsumer;
    this.subPendingMessagesMax = options.subPendingMessagesMax;
    this.subPendingBytesMax = options.subPendingBytesMax;
    this.queueMessagesMax = options.queueMessagesMax;
    this.queueBytesMax = options.queueBytesMax;
    this.#blockMs = options.slowConsumerBlockMs ?? SLOW_CONSUMER_BLOCK_MS;
    this.#ids = new IdGenerator(options.store.lastId());
    const names = options.store.queueNames();
    // The store also holds the logs of declared topics and their state record: not queues.
    for (const name of names) if (name.startsWith("queue:")) this.#queue(name);
    this.#declared = new DeclaredTopics(this, options.store);
    this.#declaredQueues.restore(
      this.#declared.restore(names.filter((n) => n.startsWith("topic:"))),
    );
    this.#routes = new Routes(options.store, this);
    this.#routes.restore();
    for (const q of this.#queues.values()) {
      this.#settle(q);
      this.#dedup.restoreQueue(q, this.now);
    }
    this.#scheduler = new Scheduler(this, options.store);
    this.#scheduler.restore(names, this.#queues.values());
  }

  /**
   * Whether the last publish was answered as a duplicate of a `dedup_id`
   * (its result is then the first message's id). Publishes are synchronous,
   * so the caller reads it right after the call, as `takeBlocked()`.
   */
  get duplicate(): boolean {
    return this.#dedup.duplicate;
  }

  /** Where the server learns the due time to wake up at for scheduled messages (see `Scheduler.onDue`). */
  set onDue(fn: ((at: number) => void) | undefined) {
    this.#scheduler.onDue = fn;
  }

  /**
   * Makes the scheduled messages due by now visible (queues) or publishes
   * them (topics), and asks for the next due time through `onDue`; the
   * server's due-time timer calls it. Cheaper than `sweep()`, which does it
   * too, at its own pace.
   */
  fireDue(): void {
    this.#scheduler.fire(this.tick());
  }

  /** Reads the clock once for the work that follows. */
  tick(): number {
    const now = this.now = this.clock.now();
    this.#tickFirstId = this.#ids.floor(now);
    return now;
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
    this.#dedup.duplicate = false;
    if (dest.charCodeAt(0) === 0x74 /* t */) {
      const r = o !== undefined && (o.dedupId !== undefined || o.delayMs !== 0 || o.deliverAt !== 0)
        ? this.#publishTopicWith(dest, buf, off, len, o)
        : this.#publishTopic(dest, buf, off, len, o);
      // Accepted here (not refused, not a duplicate): the other nodes with a subscriber get it,
      // options and all (they apply a delay and deduplicate as this node does).
      if (this.interest !== undefined && !this.#fromPeer && !this.#dedup.duplicate) {
        this.interest.published(dest, buf, off, len, o);
      }
      return r;
    }
    return this.#publishQueue(dest, buf, off, len, o);
  }

  /** A topic publish, delivered now. */
  #publishTopic(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): number | Promise<number> {
    const c = this.counters;
    const topic = this.#topics.get(dest) ?? this.#topicForPublish(dest);
    const msg = published(this.#ids.next(this.now), dest, buf, off, len, o, this.now);
    this.#lastTopicId = msg.id;
    const routed = this.#routes.size === 0 ? 0 : this.#routes.check(msg, dest);
    let stored: void | Promise<void> = undefined;
    if (topic?.store !== undefined) {
      try {
        stored = topic.store.push(msg);
      } catch (e) {
        throw storeFailed(e);
      }
    }
    let copied: void | Promise<void> = undefined;
    if (routed > 0) copied = this.#routes.copy(msg, topic?.store);
    c.published++;
    c.publishedBytes += len;
    if (topic === undefined || (topic.bindings.length === 0 && topic.retention === undefined)) {
      if (routed === 0) c.unrouted++;
    } else {
      topic.publish(msg);
      if (topic.blocked) this.#blockedBy = topic;
    }
    if (routed > 0) this.#routes.dispatch();
    // What a topic holds for later is retained (copied) first, but a store
    // or a delivery in flight (explicit acks) may hold it as it is.
    if (msg.buf === buf && topic !== undefined && keepsAsIs(topic)) this.#pinned = true;
    if (stored === undefined && copied === undefined) return msg.id;
    return Promise.all([stored, copied]).then(() => msg.id, (e) => {
      throw storeFailed(e);
    });
  }

  /** A queue publish: deduplicated, scheduled, or ready now. */
  #publishQueue(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): number | Promise<number> {
    const c = this.counters;
    const q = this.#queue(dest);
    const now = this.now;
    let dueAt = 0;
    if (o !== undefined) {
      if (o.dedupId !== undefined) {
        const first = this.#dedup.ofQueue(q, o.dedupId, now);
        if (first !== undefined) return first;
      }
      dueAt = visibleAt(o, now);
    }
    this.#makeRoom(q, len);
    const msg = published(
      this.#ids.next(now),
      dest,
      buf,
      off,
      len,
      o,
      now,
      q.settings.ttlMs,
      dueAt,
    );
    let durable: void | Promise<void>;
    try {
      durable = q.store.push(msg, dueAt);
    } catch (e) {
      throw storeFailed(e);
    }
    c.published++;
    c.publishedBytes += len;
    q.counters.published++;
    if (dueAt === 0) q.dispatch();
    else this.#scheduler.queued(q, dueAt);
    // Still waiting for a consumer (or its time): it may wait long, so it must not pin the read chunk.
    if (msg.state === MessageState.READY || msg.state === MessageState.DELAYED) msg.retain();
    else if (msg.buf === buf) this.#pinned = true; // in flight: it points into buf until settled
    const r = durable === undefined ? msg.id : durable.then(() => msg.id, (e) => {
      throw storeFailed(e);
    });
    if (o?.dedupId !== undefined) this.#dedup.rememberQueue(q, o.dedupId, msg.id, r);
    return r;
  }

  /** A topic publish with a `dedup_id`, a `delay` or a `deliver_at`. */
  #publishTopicWith(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions,
  ): number | Promise<number> {
    const now = this.now;
    const key = o.dedupId;
    if (key !== undefined) {
      const first = this.#dedup.ofTopic(dest, key, now);
      if (first !== undefined) return first;
    }
    const dueAt = visibleAt(o, now);
    let r: number | Promise<number>;
    let id: number;
    if (dueAt === 0) {
      r = this.#publishTopic(dest, buf, off, len, o);
      id = this.#lastTopicId;
    } else {
      const msg = published(this.#ids.next(now), dest, buf, off, len, o, now, 0, dueAt);
      let stored: void | Promise<void>;
      try {
        stored = this.#scheduler.schedule(dest, msg, dueAt);
      } catch (e) {
        if (e instanceof BrokerError) throw e;
        throw storeFailed(e);
      }
      this.counters.published++;
      this.counters.publishedBytes += len;
      id = msg.id;
      r = stored === undefined ? msg.id : stored.then(() => msg.id, (e) => {
        throw storeFailed(e);
      });
    }
    if (key !== undefined) this.#dedup.rememberTopic(dest, key, id, r);
    return r;
  }

  /**
   * Part of ScheduledHost: publishes a due scheduled message to its topic, as
   * a copy (the store releases the original). A plain topic keeps its id, the
   * one the publisher was answered with; a declared topic gives it a new one,
   * as its log holds messages in id order.
   */
  fire(topic: string, msg: Message, payload: Uint8Array): void {
    let t: Topic | undefined;
    try {
      t = this.#topics.get(topic) ?? this.#topicForPublish(topic);
    } catch {
      t = undefined; // no room for the topic: nobody can be subscribed to it
    }
    const id = t?.store === undefined ? msg.id : this.#ids.next(this.now);
    const copy = copyOf(msg, id, topic, this.now, payload);
    // Bound queues get their copies as for a publish now. Nobody waits to be
    // told of a full queue (under reject) or a failing log: the bindings are
    // skipped then (counted by `check` as rejected), the subscribers still get it.
    let routed = 0;
    if (this.#routes.size > 0) {
      try {
        routed = this.#routes.check(copy, topic);
        // Dropped: a failing log keeps the copies and retries (no one waits on it).
        if (routed > 0) this.#routes.copy(copy, undefined)?.catch(() => {});
      } catch {
        routed = 0;
      }
    }
    if (t?.store !== undefined) {
      try {
        void t.store.push(copy);
      } catch { /* a failing log: live subscribers still get it */ }
    }
    if (t === undefined || (t.bindings.length === 0 && t.retention === undefined)) {
      if (routed === 0) this.counters.unrouted++;
    } else {
      t.publish(copy);
      if (t.blocked) this.#blockedBy = t;
    }
    if (routed > 0) this.#routes.dispatch();
  }

  /**
   * `publishFrom` of a message a peer node forwarded (src/cluster/): delivered
   * to local subscribers only, never handed to `interest` again, so a message
   * crosses one link at most and never loops.
   */
  publishFromPeer(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): number | Promise<number> {
    this.#fromPeer = true;
    try {
      return this.publishFrom(dest, buf, off, len, o);
    } finally {
      this.#fromPeer = false;
    }
  }

  /**
   * Whether a message published since the last call (`publishFrom`) still
   * points into the buffer it was published from (a queue delivery in
   * flight, a topic delivery to an explicit-ack subscriber, a store's copy);
   * clears it. Publishes are synchronous, so a connection that calls this
   * before and after its batch learns whether it may read into the batch's
   * chunk again.
   */
  takePinned(): boolean {
    const p = this.#pinned;
    this.#pinned = false;
    return p;
  }

  /**
   * The topic, if any, that a publish since the last call found blocked by a
   * stalled subscriber (`block` policy): the publishing connection stops
   * reading until `topic.unblocked()`. Clears it. Publishes are synchronous,
   * so a connection that calls this right after its batch gets its own.
   */
  takeBlocked(): Topic | undefined {
    const t = this.#blockedBy;
    this.#blockedBy = undefined;
    return t;
  }

  /**
   * Starts a subscription for `client` (`sid` is already unique on the
   * connection). Deliveries begin with its `activate()`, after the OK.
   */
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
        ackTimeoutMs: o.ackTimeoutMs ?? q.settings.ackTimeoutMs,
        filter: o.filter,
      });
      q.addConsumer(c);
      return c;
    }
    let s: TopicSubscription;
    if (o.durable !== undefined || o.start !== undefined) {
      s = this.#declared.subscribe(
        { client, dest, sid, durable: o.durable, start: o.start, ack: o.ack },
        { prefetch, ackTimeoutMs, filter: o.filter },
      );
    } else {
      const explicit = o.ack === "explicit";
      s = new TopicSubscription(sid, dest, client, this, {
        explicit,
        prefetch,
        ackTimeoutMs,
        filter: o.filter,
      });
      if (hasWildcard(dest)) {
        this.#wildcards.add(s);
        for (const t of this.#topics.values()) if (s.wants(t.name)) s.bind(t);
      } else s.bind(this.#topics.get(dest) ?? this.#newTopic(dest));
    }
    if (s.explicit) this.#explicitTopicSubs.add(s);
    this.interest?.added(s.pattern);
    return s;
  }

  /**
   * Part of TopicHost: the user of a wildcard subscription's connection got
   * new permissions; it drops the topics it may no longer read and binds the
   * matching ones it now may (from now on, as a new subscription would).
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

  /** Periodic work: expiry, delays, ack timeouts, idle queues. Cost is O(destinations). */
  sweep(): void {
    const now = this.tick();
    for (const q of this.#queues.values()) {
      if (q.store.nextDueAt() <= now) {
        q.store.sweep(now);
        q.dispatch();
      }
      for (const c of q.consumers) if (c.inflight.size > 0) c.expireAcks(now);
      q.dedup?.sweep(now);
      // A declared queue stays (its stats show it), and one whose dedup window holds ids.
      if (
        q.consumers.length === 0 && q.store.size === 0 && q.settings.declared === undefined &&
        (q.dedup === undefined || q.dedup.size === 0)
      ) {
        this.#queues.delete(q.name);
        this.options.store.dropQueue(q.name);
      }
    }
    while (this.#redeliveries.peekKey() <= now) {
      const d = this.#redeliveries.pop()!;
      d.binding!.sub.due(d);
    }
    for (const s of this.#explicitTopicSubs) s.expireAcks(now);
    this.#forgetIdleTopics();
    if (this.slowConsumer === "block") {
      for (const t of this.#topics.values()) {
        if (t.blockedAt !== 0) t.expireBlock(now, this.#blockMs);
      }
    }
    this.#declared.sweep(now);
    this.#scheduler.sweep(now);
    this.#dedup.sweep(now);
  }

  /** Declares `dest` (a topic) with retention, or changes its limits; resolves when stored. */
  declare(dest: string, o: RetentionOptions): Promise<void> {
    return this.#declared.declare(dest, o);
  }

  /**
   * Declares queue `name` with settings over the server's defaults; the same
   * settings again are fine, others throw `DECLARE_CONFLICT`. Resolves when stored.
   */
  declareQueue(name: string, d: QueueDeclareOptions): Promise<void> {
    this.#declaredQueues.declare(name, d);
    this.#settle(this.#queue(name));
    return this.#declared.saved();
  }

  /** Part of DeclaredHost: queue declarations for the state record. */
  queueDeclarations(): QueueDeclaration[] {
    return this.#declaredQueues.record();
  }

  /** A promise that settles once durable positions changed by now are stored. */
  stateSaved(): Promise<void> {
    return this.#declared.saved();
  }

  /** Part of TopicHost: a durable position moved; stored at the end of the tick. */
  durableMoved(): void {
    void this.#declared.saved();
  }

  /** Part of DeclaredHost: the topic of that name, if it exists. */
  topic(name: string): Topic | undefined {
    return this.#topics.get(name);
  }

  /** Part of DeclaredHost: creates a topic (see `#newTopic`). */
  newTopic(name: string): Topic {
    return this.#newTopic(name);
  }

  /** Part of DeclaredHost: a fresh message id. */
  nextId(): number {
    return this.#ids.next(this.now);
  }

  /** Part of TopicHost: schedules a delayed topic redelivery. */
  schedule(d: Delivery, dueAt: number): void {
    this.#redeliveries.push(dueAt, d);
  }

  /** Part of TopicHost: a topic subscription closed; topics nobody uses any more are forgotten. */
  closed(sub: TopicSubscription, left: readonly Topic[]): void {
    this.interest?.removed(sub.pattern);
    this.#wildcards.delete(sub);
    this.#explicitTopicSubs.delete(sub);
    for (const t of left) {
      if (t.bindings.length === 0 && t.retention === undefined) this.#topics.delete(t.name);
    }
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

  /** Part of QueueHost: moves a message to its dead-letter queue (`dlq:none`: drops it); false when that queue is full. */
  deadLetter(queue: Queue, msg: Message): boolean {
    const to = queue.settings.dlq;
    if (to === null) return true;
    let dlq: Queue;
    try {
      dlq = this.#queue(to);
      this.#makeRoom(dlq, msg.len);
    } catch {
      return false;
    }
    const copy = copyOf(msg, this.#ids.next(this.now), dlq.name, this.now);
    try {
      void dlq.store.push(copy);
    } catch {
      return false;
    }
    dlq.counters.published++;
    dlq.dispatch();
    return true;
  }

  // --- admin actions (src/broker/admin.ts; the HTTP API and the CLI call these) ---

  /**
   * Removes every ready and delayed message of a queue; messages in flight
   * stay with their consumers, to be acked (or, when given back, delivered
   * again: they were taken before the purge). Returns how many were removed.
   */
  purgeQueue(name: string): number {
    const q = this.#existingQueue(name);
    const n = q.store.purge();
    q.counters.purged += n;
    return n;
  }

  /**
   * The first `n` messages a consumer would get next (priority, then FIFO),
   * without taking them: nothing is delivered, counted or reordered.
   */
  peekQueue(name: string, n: number): PeekedMessage[] {
    if (!Number.isSafeInteger(n) || n < 1 || n > PEEK_MESSAGES_MAX) {
      throw new AdminError("BAD_REQUEST", `n must be an integer from 1 to ${PEEK_MESSAGES_MAX}`);
    }
    const q = this.#existingQueue(name);
    const out: PeekedMessage[] = [];
    for (const m of q.store.messages()) {
      if (m.expired(this.now)) continue; // never delivered again; the sweep takes it
      out.push(peeked(m));
      if (out.length === n) break;
    }
    return out;
  }

  /**
   * Moves the ready messages of a queue's dead-letter queue back to the
   * queue (`name` may be either), oldest first, each as a new message of the
   * queue with a fresh delivery count. Stops at the queue's capacity or after
   * `max`; returns how many moved and how many ready ones are left in the DLQ.
   */
  replayDeadLetters(name: string, max = REPLAY_MESSAGES_MAX): { moved: number; left: number } {
    const { target, source } = this.#deadLetterRoute(queueName(name));
    const dlq = this.#queues.get(source);
    if (dlq === undefined) throw new AdminError("NOT_FOUND", `${target} has no dead letters`);
    const q = this.#queue(target);
    const take: Message[] = [];
    for (const m of dlq.store.messages()) {
      if (take.length >= Math.min(max, REPLAY_MESSAGES_MAX)) break;
      if (!m.expired(this.now)) take.push(m);
    }
    // Ready order is priority first; a replay keeps the order they died in.
    take.sort((a, b) => a.id - b.id);
    let moved = 0;
    for (const m of take) {
      // The queue's own limits, whatever its overflow policy: a replay never drops live messages.
      const st = q.settings;
      if (q.store.size + 1 > st.messagesMax || q.store.bytes + m.len > st.bytesMax) break;
      const copy = copyOf(m, this.#ids.next(this.now), target, this.now);
      try {
        // The copy's PUB is appended before the DLQ's REMOVE, and written first (see
        // LogQueueStore.#removed): a crash in between duplicates a message, never loses one.
        void q.store.push(copy);
      } catch (e) {
        if (moved === 0) throw storeFailed(e);
        break;
      }
      dlq.store.remove(m, "replayed");
      q.counters.published++;
      moved++;
    }
    q.dispatch();
    return { moved, left: dlq.store.ready };
  }

  /**
   * Which queue `name` is in a replay: a queue with a dead-letter queue
   * (its `dlq` setting), or the dead-letter queue of one, or `<q>.dlq`.
   */
  #deadLetterRoute(name: string): { target: string; source: string } {
    const dlq = this.#queues.get(name)?.settings.dlq;
    if (dlq != null && this.#queues.has(dlq)) return { target: name, source: dlq };
    for (const q of this.#queues.values()) {
      if (q.settings.dlq === name) return { target: q.name, source: name };
    }
    if (name.endsWith(".dlq")) return { target: name.slice(0, -4), source: name };
    return { target: name, source: dlq ?? `${name}.dlq` };
  }

  /** Deletes a queue that holds no message and has no consumer (else `CONFLICT`). */
  deleteQueue(name: string): void {
    const q = this.#existingQueue(name);
    if (q.consumers.length > 0) {
      throw new AdminError("CONFLICT", `${q.name} has ${q.consumers.length} consumers`);
    }
    if (q.store.size > 0) {
      throw new AdminError("CONFLICT", `${q.name} holds ${q.store.size} messages; purge it first`);
    }
    this.#queues.delete(q.name);
    this.options.store.dropQueue(q.name);
  }

  /**
   * Deletes a durable subscription of a declared topic (not while a
   * subscription uses it: `CONFLICT`); resolves once the state record
   * without it is stored.
   */
  deleteDurable(topic: string, durable: string): Promise<void> {
    return this.#declared.deleteDurable(topicName(topic), durable);
  }

  #existingQueue(name: string): Queue {
    const q = this.#queues.get(queueName(name));
    if (q === undefined) throw new AdminError("NOT_FOUND", `no queue ${queueName(name)}`);
    return q;
  }

  /** Live queues by name (read-only; admin data goes through `stats()`, tests look closer). */
  get queues(): ReadonlyMap<string, Queue> {
    return this.#queues;
  }

  /** Live topics by name (read-only, as `queues`). */
  get topics(): ReadonlyMap<string, Topic> {
    return this.#topics;
  }

  /** Broker-wide figures. */
  stats(): BrokerStats {
    let subscribed = 0;
    for (const t of this.#topics.values()) if (t.bindings.length > 0) subscribed++;
    const h = this.latency;
    let cumulative = 0;
    const buckets = LATENCY_BUCKETS_S.map((le, i) => ({ le, count: cumulative += h.counts[i] }));
    const c = this.counters;
    return {
      started_at_ms: this.#startedAt,
      published_msgs: c.published,
      published_bytes: c.publishedBytes,
      rejected_msgs: c.rejected,
      unrouted_msgs: c.unrouted,
      queues: this.#queues.size,
      topics: subscribed,
      declared_topics: this.#declared.size,
      declared_queues: this.#declaredQueues.size,
      scheduled_msgs: this.#scheduler.size,
      duplicate_msgs: this.#dedup.duplicates,
      durables: this.#declared.durables,
      bindings: this.#routes.size,
      routed_msgs: c.routed,
      latency: { count: h.count, sum_s: h.sumMs / 1000, buckets },
    };
  }

  /** Queues by name, a page of them. */
  queueStats(o: PageOptions): Page<QueueStats> {
    return page(byName(this.#queues), o, (q) => q.stats());
  }

  /** Topics by name, a page of them. */
  topicStats(o: PageOptions): Page<TopicStats> {
    return page(byName(this.#topics), o, (t) => t.stats());
  }

  /** Adds or changes a binding from topics matching `pattern` into `queue`; resolves when stored. */
  bind(pattern: string, queue: string, filter: FilterOption | undefined): Promise<void> {
    this.#queue(queue);
    return this.#routes.bind(pattern, queue, filter);
  }

  /** Removes a binding (idempotent); resolves when stored. */
  unbind(pattern: string, queue: string): Promise<void> {
    return this.#routes.unbind(pattern, queue);
  }

  /** Every binding's figures. */
  bindingStats(o: PageOptions): Page<BindingStats> {
    return page(this.#routes.stats(), o, (b) => b);
  }

  /** Part of RouteHost: the queue of that name, created if new. */
  queueFor(name: string): Queue {
    return this.#queue(name);
  }

  /** Part of RouteHost: the overflow policy of `q` (its declaration's, or the server's). */
  overflowOf(q: Queue): QueueOverflow {
    return q.settings.overflow;
  }

  /** Part of RouteHost: applies the capacity policy before a message of `bytes` enters `q`. */
  makeRoom(q: Queue, bytes: number): void {
    this.#makeRoom(q, bytes);
  }

  /** Applies the capacity policy before a message of `bytes` enters `q`. */
  #makeRoom(q: Queue, bytes: number): void {
    const o = q.settings;
    const s = q.store;
    while (s.size + 1 > o.messagesMax || s.bytes + bytes > o.bytesMax) {
      if (o.overflow === "reject" || s.dropOldest() === undefined) {
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
      const d = this.#declaredQueues.get(name);
      q = new Queue(
        this.options.store.openQueue(name),
        this,
        resolveSettings(name, d, this.options),
      );
      this.#queues.set(name, q);
    }
    return q;
  }

  /** Applies its declaration (if any) to a queue. */
  #settle(q: Queue): void {
    q.settings = resolveSettings(q.name, this.#declaredQueues.get(q.name), this.options);
    if (q.dedup !== undefined) q.dedup.windowMs = q.settings.dedupWindowMs;
  }

  /** A topic is created on publish only when a wildcard subscription wants it. */
  #topicForPublish(name: string): Topic | undefined {
    for (const s of this.#wildcards) if (s.wants(name)) return this.#newTopic(name);
    return undefined;
  }

  /** Creates a topic and binds the wildcard subscriptions that match it. */
  #newTopic(name: string): Topic {
    this.#checkRoom();
    const t = new Topic(name, this);
    this.#topics.set(name, t);
    for (const s of this.#wildcards) if (s.wants(name)) s.bind(t);
    return t;
  }

  /** Topics only wildcards bound to, idle since the last sweep (see `Topic.forgettable`). */
  #forgetIdleTopics(): void {
    for (const t of this.#topics.values()) {
      if (t.bindings.length === 0 || !t.forgettable()) continue;
      for (const b of [...t.bindings]) b.sub.unbindFrom(t);
      this.#topics.delete(t.name);
    }
  }

  #checkRoom(): void {
    if (this.#queues.size + this.#topics.size >= DESTINATIONS_MAX) {
      throw new BrokerError("LIMIT", `the server holds ${DESTINATIONS_MAX} destinations already`);
    }
  }
}

/** When a PUB's `delay`/`deliver_at` makes it visible (0: now, also for a time already past). */
function visibleAt(o: PubOptions, now: number): number {
  const at = o.delayMs !== 0 ? now + o.delayMs : o.deliverAt;
  return at > now ? at : 0;
}

/** Whether a message `topic` just published may still point into its read chunk. */
function keepsAsIs(topic: Topic): boolean {
  if (topic.store !== undefined) return true;
  const bs = topic.bindings;
  for (let i = 0; i < bs.length; i++) if (bs[i].sub.explicit) return true;
  return false;
}
