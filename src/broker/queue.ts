/**
 * Point-to-point queues: competing consumers, prefetch, ACK/NACK, ack
 * timeouts, redelivery and dead-lettering. Messages live in a `QueueStore`;
 * this file owns who has which message in flight.
 *
 * @module
 */
import { msgHead } from "../protocol/mod.ts";
import { type Message, MessageState, type QueueStore } from "../storage/mod.ts";
import type { Acker, Client } from "./types.ts";

/** Counters of one queue, for stats and metrics. */
export interface QueueCounters {
  published: number;
  delivered: number;
  acked: number;
  redelivered: number;
  deadLettered: number;
  rejected: number;
}

/** What a queue needs from the broker around it. */
export interface QueueHost {
  readonly now: number;
  readonly maxDeliveries: number;
  /** Moves a message that ran out of deliveries to the dead-letter queue; false if it could not. */
  deadLetter(queue: Queue, msg: Message): boolean;
  /** Records the publish-to-first-delivery latency of a message. */
  observeDelivery(msg: Message): void;
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
  };
  /** A dead-letter queue does not dead-letter again. */
  readonly isDeadLetter: boolean;
  readonly host: QueueHost;
  #rr = 0;
  #dispatching = false;

  constructor(store: QueueStore, host: QueueHost) {
    this.name = store.name;
    this.store = store;
    this.host = host;
    this.isDeadLetter = store.name.endsWith(".dlq");
  }

  /** Delivers ready messages to consumers with room, round-robin, until either runs out. */
  dispatch(): void {
    if (this.#dispatching) return; // re-entered from a delivery callback: the outer loop goes on
    const cs = this.consumers;
    if (cs.length === 0 || this.store.ready === 0) return;
    this.#dispatching = true;
    try {
      const now = this.host.now;
      while (this.store.ready > 0) {
        const n = cs.length;
        let c: QueueConsumer | undefined;
        for (let k = 0; k < n; k++) {
          const x = cs[(this.#rr + k) % n];
          if (x.hasRoom()) {
            c = x;
            this.#rr = (this.#rr + k + 1) % n;
            break;
          }
        }
        if (c === undefined) return;
        const msg = this.store.take(now);
        if (msg === undefined) return;
        c.deliver(msg, now);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  /** Puts back a message a consumer gave up, or dead-letters it when out of deliveries. */
  giveBack(msg: Message, delayMs: number): void {
    if (msg.state !== MessageState.INFLIGHT) return;
    if (!this.isDeadLetter && msg.deliveries >= this.host.maxDeliveries) {
      if (this.host.deadLetter(this, msg)) {
        this.counters.deadLettered++;
        this.store.remove(msg, "dead_lettered");
        return;
      }
    }
    this.counters.redelivered++;
    this.store.requeue(msg, delayMs, this.host.now);
  }

  /** Adds a consumer; deliveries start with the next `dispatch()`. */
  addConsumer(c: QueueConsumer): void {
    this.consumers.push(c);
  }

  /** Removes a consumer; its unacked messages go back to the front, in their order. */
  removeConsumer(c: QueueConsumer): void {
    const i = this.consumers.indexOf(c);
    if (i >= 0) this.consumers.splice(i, 1);
    c.returnAll();
    this.dispatch();
  }
}

/** A consumer of a queue on one connection. */
export class QueueConsumer implements Acker {
  readonly sid: string;
  readonly queue: Queue;
  readonly client: Client;
  readonly explicit: boolean;
  readonly prefetch: number;
  readonly ackTimeoutMs: number;
  readonly head: Uint8Array;
  /** In flight, in delivery order (Map keeps insertion order): the oldest is first. */
  readonly inflight = new Map<number, Message>();
  delivered = 0;

  constructor(
    sid: string,
    queue: Queue,
    client: Client,
    options: { explicit: boolean; prefetch: number; ackTimeoutMs: number },
  ) {
    this.sid = sid;
    this.queue = queue;
    this.client = client;
    this.explicit = options.explicit;
    this.prefetch = options.prefetch;
    this.ackTimeoutMs = options.ackTimeoutMs;
    this.head = msgHead(queue.name, sid);
  }

  /** Whether it takes another message now. */
  hasRoom(): boolean {
    return this.client.writable && (!this.explicit || this.inflight.size < this.prefetch);
  }

  /** Sends a message taken from the store. */
  deliver(msg: Message, _now: number): void {
    const q = this.queue;
    if (msg.deliveries === 1) q.host.observeDelivery(msg);
    this.client.sendMsg(this.head, msg, msg.deliveries);
    q.counters.delivered++;
    this.delivered++;
    if (this.explicit) {
      this.inflight.set(msg.id, msg);
      this.client.track(msg.id, this);
    } else {
      this.client.delivered(msg.id);
      q.counters.acked++;
      q.store.remove(msg, "acked");
    }
  }

  ack(id: number): boolean {
    const msg = this.inflight.get(id);
    if (msg === undefined) return false;
    this.inflight.delete(id);
    const q = this.queue;
    q.counters.acked++;
    q.store.remove(msg, "acked");
    if (q.store.ready > 0) q.dispatch();
    return true;
  }

  nack(id: number, delayMs: number): boolean {
    const msg = this.inflight.get(id);
    if (msg === undefined) return false;
    this.inflight.delete(id);
    this.queue.giveBack(msg, delayMs);
    this.queue.dispatch();
    return true;
  }

  /** Redelivers messages unacked for longer than the ack timeout; returns how many. */
  expireAcks(now: number): number {
    let n = 0;
    for (const [id, msg] of this.inflight) {
      if (msg.deliveredAt + this.ackTimeoutMs > now) break;
      this.inflight.delete(id);
      this.client.untrack(id);
      this.queue.giveBack(msg, 0);
      n++;
    }
    if (n > 0) this.queue.dispatch();
    return n;
  }

  /** Gives every unacked message back (unsubscribe or disconnect), keeping their order. */
  returnAll(): void {
    const msgs = [...this.inflight.values()];
    this.inflight.clear();
    for (let i = msgs.length - 1; i >= 0; i--) {
      this.client.untrack(msgs[i].id);
      this.queue.giveBack(msgs[i], 0);
    }
  }
}
