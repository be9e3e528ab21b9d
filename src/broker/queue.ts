/**
 * Point-to-point queues: competing consumers, prefetch, ACK/NACK, ack
 * timeouts, redelivery and dead-lettering. Messages live in a `QueueStore`;
 * this file owns who has which message in flight.
 *
 * @module
 */
import { msgHead } from "../protocol/mod.ts";
import {
  ID_SEQ_PER_MS,
  type Message,
  MessageState,
  type QueueStore,
  type ScanCursor,
} from "../storage/mod.ts";
import type { Delivery } from "./inflight.ts";
import type { QueueSettings } from "./queue_settings.ts";
import type { QueueSettingsStats, QueueStats, SubscriptionStats } from "./stats.ts";
import type { DedupWindow } from "./dedup.ts";
import { Subscription, type SubscriptionOptions } from "./subscription.ts";
import type { Client } from "./types.ts";

/** Counters of one queue, for stats and metrics. */
export interface QueueCounters {
  published: number;
  delivered: number;
  acked: number;
  redelivered: number;
  deadLettered: number;
  rejected: number;
  /** Publishes answered as duplicates. */
  duplicates: number;
  /** Removed by an operator's purge. */
  purged: number;
}

/** What a queue needs from the broker around it. */
export interface QueueHost {
  readonly now: number;
  /** Moves a message that ran out of deliveries to the dead-letter queue; false if it could not. */
  deadLetter(queue: Queue, msg: Message): boolean;
  /** The first id the tick accepted: a message from it on waited no time (see `observeDelivery`). */
  readonly freshFrom: number;
  /** Records the publish-to-first-delivery latency of `n` messages that waited as long as `msg`. */
  observeDelivery(msg: Message, n: number): void;
}

/** One queue and its consumers. */
export class Queue {
  readonly name: string;
  readonly store: QueueStore;
  readonly consumers: QueueConsumer[] = [];
  readonly counters: QueueCounters = {
    published: 0,
    delivered: 0,
    acked: 0,
    redelivered: 0,
    deadLettered: 0,
    rejected: 0,
    duplicates: 0,
    purged: 0,
  };
  /** Dedup ids seen within the window; made on the first `dedup_id`. */
  dedup: DedupWindow | undefined = undefined;
  /** A dead-letter queue does not dead-letter again. */
  readonly isDeadLetter: boolean;
  readonly host: QueueHost;
  /** Its declaration over the server's defaults; replaced when it is declared. */
  settings: QueueSettings;
  #rr = 0;
  #dispatching = false;
  /** Consumers with a `filter`: while there are any, dispatch asks each consumer for its own next message. */
  #filtered = 0;
  /**
   * First deliveries of this dispatch not yet given to the latency histogram:
   * `#seen` messages that waited as long as `#seenMsg`, those with ids in
   * [`#seenFrom`, `#seenTo`): accepted in its millisecond, on its side of
   * `freshFrom` (`now` is the tick's). One observation per run where one per
   * message was ~3% of the broker under the queue bench, and two compares
   * per message where a division by 1024 was most of what was left.
   */
  #seenMsg: Message | undefined = undefined;
  #seenFrom = 0;
  #seenTo = 0;
  #seen = 0;
  /** `host.freshFrom` during a dispatch. */
  #fresh = 0;

  constructor(store: QueueStore, host: QueueHost, settings: QueueSettings) {
    this.name = store.name;
    this.store = store;
    this.host = host;
    this.settings = settings;
    this.isDeadLetter = store.name.endsWith(".dlq");
  }

  /** Delivers ready messages to consumers with room, round-robin, until either runs out. */
  dispatch(): void {
    if (this.#dispatching) return; // re-entered from a delivery callback: the outer loop goes on
    const cs = this.consumers;
    if (cs.length === 0 || this.store.ready === 0) return;
    this.#dispatching = true;
    this.#fresh = this.host.freshFrom;
    try {
      if (this.#filtered > 0) return this.#dispatchFiltered();
      const now = this.host.now;
      while (this.store.ready > 0) {
        const n = cs.length;
        let c: QueueConsumer | undefined;
        // Wrapped by a compare, not `%`: an integer division per step was two per message.
        let i = this.#rr < n ? this.#rr : this.#rr % n; // past the end when consumers left
        let k = 0;
        for (; k < n; k++) {
          const x = cs[i];
          if (++i === n) i = 0;
          if (x.hasRoom()) {
            c = x;
            this.#rr = i;
            break;
          }
        }
        if (c === undefined) return;
        const msg = this.store.take(now);
        if (msg === undefined) return;
        c.deliver(msg, now);
        // Every other consumer was passed over for want of room, and nothing in this loop gives
        // any back (settles come in their own commands, drains after a write): what `c` takes
        // now goes to it without asking them again, once per message each. Unless one left
        // (a delivery that closed a slow consumer's connection): then the scan decides again.
        if (k === n - 1) {
          while (cs.length === n && this.store.ready > 0 && c.hasRoom()) {
            const m = this.store.take(now);
            if (m === undefined) return;
            c.deliver(m, now);
          }
        }
      }
    } finally {
      this.#dispatching = false;
      if (this.#seen > 0) this.#observed();
    }
  }

  /** Counts a first delivery (a dispatch gives the counts to the host when it ends). */
  firstDelivery(msg: Message): void {
    if (!this.#dispatching) return this.host.observeDelivery(msg, 1); // `now` may move before one
    const id = msg.id;
    if (id >= this.#seenFrom && id < this.#seenTo) {
      this.#seen++;
      return;
    }
    if (this.#seen > 0) this.#observed();
    const from = msg.acceptedAt * ID_SEQ_PER_MS;
    const to = from + ID_SEQ_PER_MS;
    const fresh = this.#fresh;
    this.#seenFrom = id >= fresh ? Math.max(from, fresh) : from;
    this.#seenTo = id >= fresh ? to : Math.min(to, fresh);
    this.#seenMsg = msg;
    this.#seen = 1;
  }

  #observed(): void {
    this.host.observeDelivery(this.#seenMsg!, this.#seen);
    this.#seenMsg = undefined;
    this.#seen = 0;
    this.#seenFrom = this.#seenTo = 0; // the next dispatch may have another `now`
  }

  /**
   * Round-robin over the consumers, one message each in turn: an unfiltered
   * one takes the queue's next message, a filtered one the next message its
   * selector takes (`QueueStore.takeMatching`: its cursor remembers how far
   * it looked, so the messages it passed over are not tested again). Stops
   * after a full round in which nobody took anything.
   */
  #dispatchFiltered(): void {
    const cs = this.consumers;
    const now = this.host.now;
    let idle = 0;
    while (this.store.ready > 0 && idle < cs.length) {
      const c = cs[this.#rr % cs.length];
      this.#rr = (this.#rr + 1) % cs.length;
      if (!c.hasRoom()) {
        idle++;
        continue;
      }
      const f = c.filter;
      const msg = f === undefined
        ? this.store.take(now)
        : this.store.takeMatching(c.cursor ??= this.store.newCursor(), f, now);
      if (msg === undefined) {
        idle++;
        continue;
      }
      idle = 0;
      c.deliver(msg, now);
    }
  }

  /** Puts back a message a consumer gave up, or dead-letters it when out of deliveries. */
  giveBack(msg: Message, delayMs: number): void {
    if (msg.state !== MessageState.INFLIGHT) return;
    if (!this.isDeadLetter && msg.deliveries >= this.settings.maxDeliveries) {
      if (this.host.deadLetter(this, msg)) {
        this.counters.deadLettered++;
        this.store.remove(msg, "dead_lettered");
        return;
      }
    }
    this.store.requeue(msg, delayMs, this.host.now);
    // A message whose TTL passed meanwhile leaves as expired, not redelivered.
    if ((msg.state as MessageState) !== MessageState.DONE) this.counters.redelivered++; // requeue changed it
  }

  /** Adds a consumer; deliveries start with its `activate()`. */
  addConsumer(c: QueueConsumer): void {
    this.consumers.push(c);
    if (c.filter !== undefined) this.#filtered++;
  }

  /** Removes a consumer (its deliveries are already given back) and lets the others take over. */
  removeConsumer(c: QueueConsumer): void {
    const i = this.consumers.indexOf(c);
    if (i >= 0) {
      this.consumers.splice(i, 1);
      if (c.filter !== undefined) this.#filtered--;
    }
    this.dispatch();
  }

  /** Its figures for the admin API. */
  stats(): QueueStats {
    const s = this.store;
    const c = this.counters;
    return {
      name: this.name,
      depth: s.ready,
      inflight: s.inflight,
      delayed: s.delayed,
      size: s.size,
      bytes: s.bytes,
      consumers: this.consumers.length,
      published: c.published,
      delivered: c.delivered,
      acked: c.acked,
      redelivered: c.redelivered,
      dead_lettered: c.deadLettered,
      expired: s.removed.expired,
      dropped: s.removed.dropped,
      rejected: c.rejected,
      scheduled: s.scheduled,
      duplicates: c.duplicates,
      dedup_ids: this.dedup?.size ?? 0,
      declared: this.settings.declared !== undefined,
      settings: settingsStats(this.settings),
      purged: c.purged,
    };
  }
}

/** A consumer of a queue on one connection. */
export class QueueConsumer extends Subscription {
  readonly queue: Queue;
  /** Precomputed `MSG <queue> sub_id:<sid>`. */
  readonly head: Uint8Array;
  /** How far its selector has looked into the queue (filtered consumers only, made on first take). */
  cursor: ScanCursor | undefined = undefined;

  constructor(sid: string, queue: Queue, client: Client, o: SubscriptionOptions) {
    super(sid, client, o);
    this.queue = queue;
    this.head = msgHead(queue.name, sid);
  }

  get destination(): string {
    return this.queue.name;
  }

  /** Sends a message its queue's dispatch took from the store; without explicit acks it is settled at once. */
  deliver(msg: Message, now: number): void {
    const q = this.queue;
    if (msg.deliveries === 1) q.firstDelivery(msg);
    this.send(this.head, msg, msg.deliveries, undefined, now);
    q.counters.delivered++;
    if (!this.explicit) {
      q.counters.acked++;
      q.store.remove(msg, "acked");
    }
  }

  activate(): void {
    this.queue.dispatch();
  }

  ack(d: Delivery): void {
    this.settle(d);
    if (this.queue.store.ready > 0) this.queue.dispatch();
  }

  override settle(d: Delivery): void {
    const q = this.queue;
    q.counters.acked++;
    q.store.remove(d.msg, "acked");
  }

  nack(d: Delivery, delayMs: number): void {
    this.queue.giveBack(d.msg, delayMs);
    this.queue.dispatch();
  }

  /** Each goes back to the front: newest first, so they come out again in their order. */
  protected expired(ds: Delivery[]): void {
    for (let i = ds.length - 1; i >= 0; i--) this.queue.giveBack(ds[i].msg, 0);
    this.queue.dispatch();
  }

  /** Leaves the queue; unacked messages go back to its front, in their order. */
  close(_forget: boolean): void {
    const ds = this.takeAll();
    for (let i = ds.length - 1; i >= 0; i--) this.queue.giveBack(ds[i].msg, 0);
    this.queue.removeConsumer(this);
  }

  stats(): SubscriptionStats {
    return {
      sid: this.sid,
      destination: this.queue.name,
      ack: this.explicit ? "explicit" : "none",
      prefetch: this.prefetch,
      inflight: this.inflight.size,
      delivered: this.delivered,
      ...(this.filterSource === undefined ? {} : { filter: this.filterSource }),
    };
  }
}

/** A queue's settings for the admin API. */
function settingsStats(s: QueueSettings): QueueSettingsStats {
  return {
    max_messages: s.messagesMax,
    max_bytes: s.bytesMax,
    overflow: s.overflow === "drop-oldest" ? "drop_oldest" : "reject",
    ttl_ms: s.ttlMs,
    max_deliveries: s.maxDeliveries,
    dlq: s.dlq,
    ack_timeout_ms: s.ackTimeoutMs,
    dedup_window_ms: s.dedupWindowMs,
  };
}
