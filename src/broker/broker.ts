/**
 * The broker: destinations by name, publish, subscribe, and the periodic
 * sweep (TTL expiry, NACK delays, ack timeouts, idle destinations). It knows
 * nothing of sockets: connections reach it through the `Client` interface,
 * and it reads time only from the `Clock` it is given.
 *
 * @module
 */
import { BINDINGS_MAX, DESTINATIONS_MAX, SLOW_CONSUMER_BLOCK_MS } from "../config/mod.ts";
import type {
  FilterOption,
  PubOptions,
  QueueDeclareOptions,
  RetentionOptions,
  SubOptions,
} from "../protocol/mod.ts";
import { type Clock, systemClock } from "../runtime/mod.ts";
import { type Message, MessageState } from "../storage/mod.ts";
import { type PeekedMessage, topicName } from "./admin.ts";
import { type DeclaredHost, DeclaredTopics } from "./declared.ts";
import { Deduplicator } from "./dedup.ts";
import { IdGenerator } from "./ids.ts";
import type { Delivery } from "./inflight.ts";
import { LATENCY_BUCKETS_S, LatencyHistogram } from "./latency.ts";
import { copyOf, published } from "./messages.ts";
import { keepsAsIs, RunPublisher } from "./publish_run.ts";
import { type RouteHost, Routes } from "./routes.ts";
import type { Queue } from "./queue.ts";
import type { QueueDeclaration } from "./queue_settings.ts";
import { QueueSet, type QueueSetHost } from "./queue_set.ts";
import { type ScheduledHost, Scheduler } from "./scheduled.ts";
import { subscribe, type SubscribeParts } from "./subscribe.ts";
import {
  type BindingStats,
  type BrokerStats,
  type Page,
  page,
  type PageOptions,
  type QueueStats,
  type TopicStats,
} from "./stats.ts";
import type { Subscription } from "./subscription.ts";
import type { Retention, Topic } from "./topic.ts";
import type { TopicSubscription } from "./topic_subscription.ts";
import { TopicSet } from "./topic_set.ts";
import {
  type BoundCopies,
  BrokerError,
  type BrokerOptions,
  type Client,
  type QueueOverflow,
  type SharedBindings,
  type SharedQueueDeclarations,
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

/** How a publish was asked for (flags: a peer's publish may one day be deferred too). */
const PublishAs = {
  /** `publishDeferred`: a wait for the store is left in `durable`, not returned. */
  DEFERRED: 1,
  /** `publishFromPeer`: delivered here only, never handed to `interest` again. */
  FROM_PEER: 2,
} as const;

/** Destinations, publish and subscribe. */
export class Broker implements QueueSetHost, DeclaredHost, RouteHost, ScheduledHost {
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
  /** The queues, their declarations and the operators' actions on them. */
  #qs: QueueSet;
  /** The cluster's link (src/cluster/), told of topic interest and local publishes; undefined: single node. */
  interest: TopicInterest | undefined;
  /**
   * (cluster) The cluster-wide bindings: BIND/UNBIND go there, and each node
   * applies them (`applyBinding`); a topic message's bindings are then applied
   * on the node it was published on only, never again on a peer.
   */
  bindings: SharedBindings | undefined;
  /**
   * (cluster) The cluster-wide queue declarations: a `DECLARE queue:` at the
   * queue's leader goes there (stored for the cluster, so that a later leader
   * serves the queue by it), and each node adopts them (`adoptQueueDeclaration`).
   */
  sharedDeclarations: SharedQueueDeclarations | undefined;
  /** (cluster) Part of RouteHost: bound copies for queues another node leads. */
  copies: BoundCopies | undefined;
  /** The constructor's restore is done (queues opened later rebuild their dedup window when made). */
  #opened = false;
  /** The topics, their wildcard and explicit-ack subscriptions, and NACKed topic redeliveries. */
  #ts: TopicSet;
  #declared: DeclaredTopics;
  #routes: Routes;
  #scheduler: Scheduler;
  #dedup = new Deduplicator();
  /** What `subscribe` makes subscriptions in. */
  #subParts: SubscribeParts;
  /** The bulk path of `publishRun`. */
  #run: RunPublisher;
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
    this.#qs = new QueueSet(this);
    this.#ts = new TopicSet(this);
    const names = options.store.queueNames();
    // The store also holds the logs of declared topics and their state record: not queues.
    for (const name of names) if (name.startsWith("queue:")) this.#qs.open(name);
    this.#declared = new DeclaredTopics(this, options.store, options.ledTopics);
    this.#qs.restoreDeclarations(
      this.#declared.restore(names.filter((n) => n.startsWith("topic:"))),
    );
    this.#routes = new Routes(options.store, this);
    this.#routes.restore();
    for (const q of this.#qs.map.values()) {
      this.#qs.settle(q);
      this.#dedup.restoreQueue(q, this.now);
    }
    this.#opened = true;
    this.#scheduler = new Scheduler(this, options.store);
    this.#subParts = { host: this, qs: this.#qs, ts: this.#ts, declared: this.#declared };
    this.#run = new RunPublisher({
      host: this,
      ids: this.#ids,
      qs: this.#qs,
      ts: this.#ts,
      routes: this.#routes,
      dedup: this.#dedup,
    });
    this.#scheduler.restore(names, this.#qs.map.values());
  }

  /**
   * Whether the last publish was answered as a duplicate of a `dedup_id`
   * (its result is then the first message's id). Publishes are synchronous,
   * so the caller reads it right after the call, as `takeBlocked()`.
   */
  get duplicate(): boolean {
    return this.#dedup.duplicate;
  }

  /**
   * After `publishDeferred` returned an id: the store's promise that id waits
   * for (a replicated store's majority, `--fsync always`), or undefined when
   * it is stored already. Many publishes of one tick share one promise, so a
   * connection answers them together instead of one promise per message.
   */
  durable: Promise<void> | undefined = undefined;
  /** How the publish under way was asked for: `PublishAs` flags, set by `#publishAs` for its length. */
  #as = 0;

  /**
   * `publishFrom`, but a publish (without `dedup_id`) that waits for its store
   * (a queue's, or a topic's log and bound copies) returns its id at once and
   * leaves the wait in `durable`; the caller answers `STORE_FAILED`
   * (`storeFailed`) itself when that rejects.
   */
  publishDeferred(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): number | Promise<number> {
    return this.#publishAs(PublishAs.DEFERRED, dest, buf, off, len, o);
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
    return this.#publishAs(PublishAs.FROM_PEER, dest, buf, off, len, o);
  }

  /** `publishFrom` with the `PublishAs` flag `as` set while it runs (and any already set kept). */
  #publishAs(
    as: number,
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): number | Promise<number> {
    const was = this.#as;
    this.#as = was | as;
    try {
      return this.publishFrom(dest, buf, off, len, o);
    } finally {
      this.#as = was;
    }
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
    this.durable = undefined;
    if (dest.charCodeAt(0) === 0x74 /* t */) {
      const r = o !== undefined && (o.dedupId !== undefined || o.delayMs !== 0 || o.deliverAt !== 0)
        ? this.#publishTopicWith(dest, buf, off, len, o)
        : this.#publishTopic(dest, buf, off, len, o);
      // Accepted here (not refused, not a duplicate): the other nodes with a subscriber get it,
      // options and all (they apply a delay and deduplicate as this node does).
      if (
        this.interest !== undefined && (this.#as & PublishAs.FROM_PEER) === 0 &&
        !this.#dedup.duplicate
      ) {
        this.interest.published(dest, buf, off, len, o);
      }
      return r;
    }
    return this.#publishQueue(dest, buf, off, len, o);
  }

  /**
   * Publishes `buf`'s payloads `offs[2k], offs[2k + 1]` (offset, length) for
   * `k` in `[from, to)` to `dest`, without options, as a run of
   * `publishFrom`s would: the parser's `PubRun`, a bulk publisher's read
   * chunk. Taken as one only where each publish would be synchronous and
   * could not fail, outside a cluster: a topic without a store and no
   * bindings anywhere, or a queue in the memory store with room for the run
   * (src/broker/publish_run.ts). False: nothing was done (publish one by one).
   */
  publishRun(dest: string, buf: Uint8Array, offs: Int32Array, from: number, to: number): boolean {
    const run = this.#run;
    if (!run.publish(dest, buf, offs, from, to)) return false;
    if (run.pinned) {
      run.pinned = false;
      this.#pinned = true;
    }
    if (run.blockedBy !== undefined) {
      this.#blockedBy = run.blockedBy;
      run.blockedBy = undefined;
    }
    return true;
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
    const topic = this.#ts.forPublish(dest);
    if (topic === undefined && this.#routes.size === 0) {
      // Nobody to deliver to, nothing to keep or copy: an id, the counters,
      // and no message object (publish-only at 16 B: one allocation less per PUB).
      c.published++;
      c.publishedBytes += len;
      c.unrouted++;
      return this.#lastTopicId = this.#ids.next(this.now);
    }
    const msg = published(this.#ids.next(this.now), dest, buf, off, len, o, this.now);
    this.#lastTopicId = msg.id;
    const routed = this.#routes.size === 0 || !this.#routesHere()
      ? 0
      : this.#routes.check(msg, dest);
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
    const wait = stored === undefined
      ? copied!
      : copied === undefined
      ? stored
      : Promise.all([stored, copied]).then(() => {});
    // As a queue publish: the publishes of a tick waiting for one promise (a replicated copy's
    // commit, an fsync) are answered together, no promise of their own each.
    if ((this.#as & PublishAs.DEFERRED) !== 0 && o?.dedupId === undefined) {
      this.durable = wait;
      return msg.id;
    }
    return wait.then(() => msg.id, (e) => {
      throw storeFailed(e);
    });
  }

  /** Whether this publish's bindings are applied here: not a peer's message when bindings are cluster-wide. */
  #routesHere(): boolean {
    return (this.#as & PublishAs.FROM_PEER) === 0 || this.bindings === undefined;
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
    const q = this.#qs.open(dest);
    const now = this.now;
    let dueAt = 0;
    if (o !== undefined) {
      if (o.dedupId !== undefined) {
        const first = this.#dedup.ofQueue(q, o.dedupId, now);
        if (first !== undefined) return first;
      }
      dueAt = visibleAt(o, now);
    }
    this.#qs.makeRoom(q, len);
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
    if (
      durable !== undefined && (this.#as & PublishAs.DEFERRED) !== 0 && o?.dedupId === undefined
    ) {
      this.durable = durable;
      return msg.id;
    }
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
        stored = this.#scheduler.schedule(dest, msg, dueAt, !this.#routesHere());
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
  fire(topic: string, msg: Message, payload: Uint8Array, unrouted = false): void {
    let t: Topic | undefined;
    try {
      t = this.#ts.forPublish(topic);
    } catch {
      t = undefined; // no room for the topic: nobody can be subscribed to it
    }
    const id = t?.store === undefined ? msg.id : this.#ids.next(this.now);
    const copy = copyOf(msg, id, topic, this.now, payload);
    // Bound queues get their copies as for a publish now. Nobody waits to be
    // told of a full queue (under reject) or a failing log: the bindings are
    // skipped then (counted by `check` as rejected), the subscribers still get it.
    let routed = 0;
    if (this.#routes.size > 0 && !unrouted) {
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
    return subscribe(this.#subParts, client, dest, sid, o);
  }

  /**
   * Part of TopicHost: the user of a wildcard subscription's connection got
   * new permissions; it drops the topics it may no longer read and binds the
   * matching ones it now may (from now on, as a new subscription would).
   */
  rebind(sub: TopicSubscription): void {
    this.#ts.rebind(sub);
  }

  /** Periodic work: expiry, delays, ack timeouts, idle queues. Cost is O(destinations). */
  sweep(): void {
    const now = this.tick();
    this.#qs.sweep(now);
    this.#ts.sweep(now, this.slowConsumer === "block", this.#blockMs);
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
    if (this.sharedDeclarations !== undefined) return this.sharedDeclarations.declare(name, d);
    this.#qs.declare(name, d);
    return this.#declared.saved();
  }

  /** Part of DeclaredHost: queue declarations for the state record. */
  queueDeclarations(): QueueDeclaration[] {
    return this.#qs.declarations();
  }

  /** A promise that settles once durable positions changed by now are stored. */
  stateSaved(): Promise<void> {
    return this.#declared.durablesSaved();
  }

  /** Part of TopicHost: a durable position of `topic` moved; stored at the end of the tick. */
  durableMoved(topic?: Topic): void {
    this.#declared.moved(topic);
  }

  /**
   * Part of QueueSetHost: a queue made after the start rebuilds its dedup
   * window from its store (in a cluster, a copy this node now leads).
   */
  queueOpened(q: Queue): void {
    if (this.#opened) this.#dedup.restoreQueue(q, this.now);
  }

  /** Part of DeclaredHost: the topic of that name, if it exists. */
  topic(name: string): Topic | undefined {
    return this.#ts.map.get(name);
  }

  /** Part of DeclaredHost: creates a topic (see `#newTopic`). */
  newTopic(name: string): Topic {
    return this.#ts.create(name);
  }

  /** Part of DeclaredHost: a fresh message id. */
  nextId(): number {
    return this.#ids.next(this.now);
  }

  /** Part of TopicHost: schedules a delayed topic redelivery. */
  schedule(d: Delivery, dueAt: number): void {
    this.#ts.schedule(d, dueAt);
  }

  /** Part of TopicHost: a topic subscription closed; topics nobody uses any more are forgotten. */
  closed(sub: TopicSubscription, left: readonly Topic[]): void {
    this.interest?.removed(sub.pattern);
    this.#ts.closed(sub, left);
  }

  /**
   * Part of QueueHost and TopicHost. A message delivered in the tick that
   * accepted it waited no time in the broker; an older one waited since the
   * millisecond its id was taken in (half a millisecond is the unbiased guess
   * within it): the id holds the accept time, so messages need no field for it.
   */
  observeDelivery(msg: Message, n = 1): void {
    this.latency.observeMany(
      msg.id >= this.#tickFirstId ? 0 : Math.max(0, this.now - msg.acceptedAt - 0.5),
      n,
    );
  }

  /** Part of QueueSetHost: the first id this tick accepted (see `observeDelivery`). */
  get freshFrom(): number {
    return this.#tickFirstId;
  }

  /** Part of TopicHost: `n` deliveries of messages this tick accepted (a fanned-out run). */
  observeFresh(n: number): void {
    this.latency.observeMany(0, n);
  }

  // --- admin actions (src/broker/admin.ts; the HTTP API and the CLI call these; see QueueSet) ---

  /** Removes every ready and delayed message of a queue (see `QueueSet.purge`); returns how many. */
  purgeQueue(name: string): number {
    return this.#qs.purge(name);
  }

  /** The first `n` messages a consumer would get next, without taking them (see `QueueSet.peek`). */
  peekQueue(name: string, n: number): PeekedMessage[] {
    return this.#qs.peek(name, n);
  }

  /** Moves a queue's dead letters back to it (see `QueueSet.replayDeadLetters`). */
  replayDeadLetters(name: string, max?: number): { moved: number; left: number } {
    return this.#qs.replayDeadLetters(name, max);
  }

  /** Deletes a queue that holds no message and has no consumer (else `CONFLICT`). */
  deleteQueue(name: string): void {
    this.#qs.delete(name);
  }

  /**
   * Deletes a durable subscription of a declared topic (not while a
   * subscription uses it: `CONFLICT`); resolves once the state record
   * without it is stored.
   */
  deleteDurable(topic: string, durable: string): Promise<void> {
    return this.#declared.deleteDurable(topicName(topic), durable);
  }

  // --- cluster hooks (src/cluster/ calls these; single node: never called) ---

  /**
   * (cluster) Whether declaring queue `name` with `d` would be new here
   * (false: declared so already), declaring nothing; throws `DECLARE_CONFLICT` or `LIMIT`.
   */
  checkQueueDeclaration(name: string, d: QueueDeclareOptions): boolean {
    return this.#qs.check(name, d);
  }

  /**
   * (cluster) The cluster's declaration of queue `name` (as etcd has it): set
   * over the one held here, applied to the queue if it is here, and stored.
   */
  adoptQueueDeclaration(name: string, d: QueueDeclareOptions): Promise<void> {
    this.#qs.adoptDeclaration(name, d);
    return this.#declared.saved();
  }

  /** (cluster) This node serves queue `name` now: its dedup window takes the ids of its copy. */
  queueServed(name: string): void {
    const q = this.#qs.map.get(name);
    if (q === undefined) return;
    this.#dedup.restoreQueue(q, this.now);
    q.dispatch();
  }

  /**
   * (cluster) This node no longer leads `queue`: each client consuming it
   * here is told (`Client.leaderChanged`), so that it reconnects and
   * resubscribes where the new leader is reached.
   */
  leaderLost(queue: string, detail: string): void {
    const q = this.#qs.map.get(queue);
    if (q === undefined) return;
    for (const c of q.consumers) c.client.leaderChanged?.(detail);
  }

  /**
   * (cluster) This node leads declared topic `name` now (its log recovered
   * in the replicated store, oldest first, and its durables' positions in
   * the store queue `durables`): declared here, served from them.
   */
  adoptTopic(name: string, retention: Retention, msgs: readonly Message[], durables: string): void {
    this.#declared.adopt(name, retention, msgs, durables);
  }

  /**
   * (cluster) This node no longer leads declared topic `name`: a plain topic
   * here again; its replays and durable subscriptions are told
   * (`Client.leaderChanged`), so that they go to the new leader.
   */
  releaseTopic(name: string, detail: string): void {
    for (const s of this.#declared.release(name)) s.client.leaderChanged?.(detail);
  }

  /** Makes every later message id larger than `id` (a queue taken over from another node). */
  raiseIds(id: number): void {
    this.#ids.raise(id);
  }

  /**
   * (cluster) Applies a binding etcd holds, here only (the queue is not
   * opened: only its leader serves it). Resolves when this node's record is stored.
   */
  applyBinding(pattern: string, queue: string, filter: FilterOption | undefined): Promise<void> {
    // The watch repeats what this node applied (its own BIND, a list read again): nothing to store.
    const r = this.#routes.get(pattern, queue);
    if (r !== undefined && r.filterSource === filter?.source) return Promise.resolve();
    return this.#routes.bind(pattern, queue, filter);
  }

  /** (cluster) Removes a binding etcd no longer holds, here only. */
  applyUnbind(pattern: string, queue: string): Promise<void> {
    return this.#routes.unbind(pattern, queue);
  }

  /** (cluster) Makes this node's bindings exactly etcd's (read again after a start or an outage). */
  replaceBindings(
    list: readonly { pattern: string; queue: string; filter?: FilterOption }[],
  ): Promise<void> {
    return this.#routes.replace(list);
  }

  /** Live queues by name (read-only; admin data goes through `stats()`, tests look closer). */
  get queues(): ReadonlyMap<string, Queue> {
    return this.#qs.map;
  }

  /** Live topics by name (read-only, as `queues`). */
  get topics(): ReadonlyMap<string, Topic> {
    return this.#ts.map;
  }

  /** Broker-wide figures. */
  stats(): BrokerStats {
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
      queues: this.#qs.map.size,
      topics: this.#ts.subscribed(),
      declared_topics: this.#declared.size,
      declared_queues: this.#qs.declaredCount,
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
    return this.#qs.stats(o);
  }

  /** Topics by name, a page of them. */
  topicStats(o: PageOptions): Page<TopicStats> {
    return this.#ts.stats(o);
  }

  /**
   * Adds or changes a binding from topics matching `pattern` into `queue`;
   * resolves when stored (in a cluster: in etcd, and applied here).
   */
  bind(pattern: string, queue: string, filter: FilterOption | undefined): Promise<void> {
    if (this.bindings === undefined) {
      this.#qs.open(queue);
      return this.#routes.bind(pattern, queue, filter);
    }
    if (this.#routes.size >= BINDINGS_MAX && this.#routes.get(pattern, queue) === undefined) {
      throw new BrokerError("LIMIT", `the cluster holds ${BINDINGS_MAX} bindings`);
    }
    return this.bindings.bind(pattern, queue, filter?.source);
  }

  /** Removes a binding (idempotent); resolves when stored (in a cluster: in etcd, and applied here). */
  unbind(pattern: string, queue: string): Promise<void> {
    if (this.bindings !== undefined) return this.bindings.unbind(pattern, queue);
    return this.#routes.unbind(pattern, queue);
  }

  /** Every binding's figures. */
  bindingStats(o: PageOptions): Page<BindingStats> {
    return page(this.#routes.stats(), o, (b) => b);
  }

  /** Part of RouteHost: the queue of that name, created if new. */
  queueFor(name: string): Queue {
    return this.#qs.open(name);
  }

  /** Part of RouteHost: the overflow policy of `q` (its declaration's, or the server's). */
  overflowOf(q: Queue): QueueOverflow {
    return q.settings.overflow;
  }

  /** Part of RouteHost: applies the capacity policy before a message of `bytes` enters `q`. */
  makeRoom(q: Queue, bytes: number): void {
    this.#qs.makeRoom(q, bytes);
  }

  /** Part of QueueSetHost: throws `LIMIT` when the broker holds as many destinations as it may. */
  checkRoom(): void {
    if (this.#qs.map.size + this.#ts.map.size >= DESTINATIONS_MAX) {
      throw new BrokerError("LIMIT", `the server holds ${DESTINATIONS_MAX} destinations already`);
    }
  }
}

/** When a PUB's `delay`/`deliver_at` makes it visible (0: now, also for a time already past). */
function visibleAt(o: PubOptions, now: number): number {
  const at = o.delayMs !== 0 ? now + o.delayMs : o.deliverAt;
  return at > now ? at : 0;
}
