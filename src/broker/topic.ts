/**
 * Publish/subscribe topics. Each topic keeps one shared list of messages; each
 * subscription bound to it has a cursor (the sequence number of the next
 * message it needs) and each list entry counts the subscriptions that still
 * need it. An entry is released when the last one has passed it.
 *
 * The common case stores nothing: when every subscription is caught up and its
 * connection is writable, a message is written to each and never enters the
 * list. Only a lagging subscription makes the list hold messages, once, for
 * all of them.
 *
 * @module
 */
import { msgHead } from "../protocol/mod.ts";
import { type Message, Ring } from "../storage/mod.ts";
import type { Acker, Client, SlowConsumerPolicy } from "./types.ts";

class Entry {
  constructor(
    readonly msg: Message,
    /** Subscriptions that still need this message. */
    public refs: number,
    /** Topic bytes published up to and including this message (for byte lag). */
    readonly cum: number,
  ) {}
}

/** What topics need from the broker around them. */
export interface TopicHost {
  readonly now: number;
  readonly slowConsumer: SlowConsumerPolicy;
  readonly subPendingMessagesMax: number;
  readonly subPendingBytesMax: number;
  /** Records the publish-to-first-delivery latency of a message. */
  observeDelivery(msg: Message): void;
  /** Schedules a NACKed topic message for redelivery at `dueAt`. */
  schedule(p: Pending, dueAt: number): void;
}

/** Counters of one topic. */
export interface TopicCounters {
  published: number;
  delivered: number;
  /** Messages skipped by drop-oldest slow subscriptions. */
  dropped: number;
  slowConsumers: number;
}

/** One subscription's attachment to one topic. */
export class Binding {
  constructor(
    readonly sub: TopicSubscription,
    readonly topic: Topic,
    /** Sequence number of the next message this binding needs. */
    public cursor: number,
    /** Precomputed `MSG <topic> sub_id:<sid>`. */
    readonly head: Uint8Array,
  ) {}
}

/** A concrete topic and its shared message list. */
export class Topic {
  readonly name: string;
  readonly bindings: Binding[] = [];
  readonly counters: TopicCounters = { published: 0, delivered: 0, dropped: 0, slowConsumers: 0 };
  readonly host: TopicHost;
  #list = new Ring<Entry>();
  /** Sequence number of the list's first entry. */
  #base = 0;
  /** Sequence number the next published message gets. */
  #next = 0;
  #totalBytes = 0;

  constructor(name: string, host: TopicHost) {
    this.name = name;
    this.host = host;
  }

  /** Messages held for lagging subscriptions. */
  get retained(): number {
    return this.#list.length;
  }

  /** Binds a subscription; it gets messages published from now on. */
  bind(sub: TopicSubscription): Binding {
    const b = new Binding(sub, this, this.#next, msgHead(this.name, sub.sid));
    this.bindings.push(b);
    return b;
  }

  /** Unbinds, releasing the binding's hold on every message it had not passed. */
  unbind(b: Binding): void {
    const i = this.bindings.indexOf(b);
    if (i < 0) return;
    this.bindings.splice(i, 1);
    for (let seq = b.cursor; seq < this.#next; seq++) this.#list.at(seq - this.#base)!.refs--;
    b.cursor = this.#next;
    this.#trim();
  }

  /** Fans a message out: written at once to caught-up writable subscriptions, held for the rest. */
  publish(msg: Message): void {
    this.counters.published++;
    const seq = this.#next++;
    this.#totalBytes += msg.len;
    let refs = 0;
    const bs = this.bindings;
    for (let i = 0; i < bs.length; i++) {
      const b = bs[i];
      if (b.cursor === seq && b.sub.canSend()) {
        b.sub.send(b, msg);
        b.cursor = seq + 1;
      } else refs++;
    }
    if (refs === 0) {
      if (this.#list.length === 0) this.#base = this.#next;
      return;
    }
    msg.retain();
    this.#list.push(new Entry(msg, refs, this.#totalBytes));
    for (let i = 0; i < bs.length; i++) if (bs[i].cursor <= seq) this.#checkLag(bs[i]);
  }

  /** Whether the binding has messages waiting. */
  lagging(b: Binding): boolean {
    return b.cursor < this.#next;
  }

  /** Id of the next message the binding needs (Infinity when caught up). */
  nextId(b: Binding): number {
    return b.cursor < this.#next ? this.#list.at(b.cursor - this.#base)!.msg.id : Infinity;
  }

  /** Sends the binding its next held message; false when it has none. */
  sendNext(b: Binding): boolean {
    if (b.cursor >= this.#next) return false;
    const e = this.#list.at(b.cursor - this.#base)!;
    b.sub.send(b, e.msg);
    b.cursor++;
    e.refs--;
    if (e.refs === 0) this.#trim();
    return true;
  }

  /** How far behind a binding is. */
  lag(b: Binding): { messages: number; bytes: number } {
    if (b.cursor >= this.#next) return { messages: 0, bytes: 0 };
    const e = this.#list.at(b.cursor - this.#base)!;
    return {
      messages: this.#next - b.cursor,
      bytes: this.#totalBytes - (e.cum - e.msg.len),
    };
  }

  #checkLag(b: Binding): void {
    const h = this.host;
    let lag = this.lag(b);
    if (lag.messages <= h.subPendingMessagesMax && lag.bytes <= h.subPendingBytesMax) return;
    if (h.slowConsumer === "disconnect") {
      if (!b.sub.slow) {
        b.sub.slow = true;
        this.counters.slowConsumers++;
        b.sub.client.slowConsumer(
          `subscription ${b.sub.sid} is ${lag.messages} messages (${lag.bytes} bytes) behind on ${this.name}`,
        );
      }
      return;
    }
    while (lag.messages > h.subPendingMessagesMax || lag.bytes > h.subPendingBytesMax) {
      const e = this.#list.at(b.cursor - this.#base)!;
      e.refs--;
      b.cursor++;
      this.counters.dropped++;
      b.sub.dropped++;
      lag = this.lag(b);
    }
    this.#trim();
  }

  /** Releases entries at the front that nobody needs any more. */
  #trim(): void {
    const list = this.#list;
    while (list.length > 0 && list.at(0)!.refs === 0) {
      list.shift();
      this.#base++;
    }
  }
}

/** A topic message in flight to a subscription with explicit acks. */
export class Pending {
  constructor(
    readonly msg: Message,
    readonly binding: Binding,
    public deliveries: number,
    public at: number,
  ) {}
}

/** A subscription to a topic or a wildcard pattern. */
export class TopicSubscription implements Acker {
  readonly sid: string;
  readonly pattern: string;
  readonly client: Client;
  readonly explicit: boolean;
  readonly prefetch: number;
  readonly ackTimeoutMs: number;
  readonly host: TopicHost;
  readonly bindings: Binding[] = [];
  /** Explicit-ack messages in flight, oldest first. */
  readonly inflight = new Map<number, Pending>();
  /** Marked once it has been reported as a slow consumer. */
  slow = false;
  delivered = 0;
  dropped = 0;
  #resuming = false;

  constructor(
    sid: string,
    pattern: string,
    client: Client,
    host: TopicHost,
    options: { explicit: boolean; prefetch: number; ackTimeoutMs: number },
  ) {
    this.sid = sid;
    this.pattern = pattern;
    this.client = client;
    this.host = host;
    this.explicit = options.explicit;
    this.prefetch = options.prefetch;
    this.ackTimeoutMs = options.ackTimeoutMs;
  }

  /** Whether it takes another message now. */
  canSend(): boolean {
    return this.client.writable && (!this.explicit || this.inflight.size < this.prefetch);
  }

  /** Writes a message (its first delivery to this subscription). */
  send(b: Binding, msg: Message): void {
    this.client.sendMsg(b.head, msg, 1);
    this.delivered++;
    b.topic.counters.delivered++;
    const now = this.host.now;
    this.host.observeDelivery(msg);
    if (this.explicit) {
      this.inflight.set(msg.id, new Pending(msg, b, 1, now));
      this.client.track(msg.id, this);
    } else this.client.delivered(msg.id);
  }

  /** Delivers held messages while the connection takes them, in publish order across topics. */
  resume(): void {
    if (this.#resuming) return;
    this.#resuming = true;
    try {
      const bs = this.bindings;
      if (bs.length === 1) {
        const b = bs[0];
        while (this.canSend() && b.topic.sendNext(b));
        return;
      }
      while (this.canSend()) {
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

  ack(id: number): boolean {
    if (!this.inflight.delete(id)) return false;
    this.resume();
    return true;
  }

  nack(id: number, delayMs: number): boolean {
    const p = this.inflight.get(id);
    if (p === undefined) return false;
    this.inflight.delete(id);
    if (delayMs === 0) this.redeliver(p);
    else this.host.schedule(p, this.host.now + delayMs);
    return true;
  }

  /** Sends a pending message again, counting the delivery. */
  redeliver(p: Pending): void {
    p.deliveries++;
    p.at = this.host.now;
    this.client.sendMsg(p.binding.head, p.msg, p.deliveries);
    this.inflight.set(p.msg.id, p);
    this.client.track(p.msg.id, this);
  }

  /** Redelivers messages unacked past the ack timeout. */
  expireAcks(now: number): void {
    for (const [id, p] of this.inflight) {
      if (p.at + this.ackTimeoutMs > now) break;
      this.inflight.delete(id);
      this.redeliver(p);
    }
  }
}
