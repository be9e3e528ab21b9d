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
 * A topic declared with retention (`DECLARE`) keeps the same list, but an
 * entry no subscription needs stays while it is within the retention limits
 * (messages, bytes, age): replays and durable subscriptions start their
 * cursor on it. Its messages are also pushed to a store (`topic:<name>`, an
 * append log under a data dir) and removed from it when retention drops them.
 *
 * @module
 */
import { msgHead } from "../protocol/mod.ts";
import { type Message, MessageState, type QueueStore, Ring } from "../storage/mod.ts";
import type { Acker, Client, SlowConsumerPolicy } from "./types.ts";

/** Retention limits of a declared topic; `ageMs` 0 means no age limit. */
export interface Retention {
  messages: number;
  bytes: number;
  ageMs: number;
}

/**
 * A durable subscription's state: its name and position. Everything up to
 * and including id `acked` is settled. It outlives its subscription.
 */
export class Durable {
  /** The live subscription using it, if any. */
  sub: TopicSubscription | undefined = undefined;
  /** Messages it never got because retention dropped them first. */
  skipped = 0;
  constructor(readonly name: string, public acked: number) {}
}

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
  /** A durable subscription's position may have moved: persist it (coalesced). */
  durableMoved(): void;
}

/** Counters of one topic. */
export interface TopicCounters {
  published: number;
  delivered: number;
  /** Messages skipped by drop-oldest slow subscriptions. */
  dropped: number;
  slowConsumers: number;
  /** Messages a declared topic dropped by its retention limits (messages, bytes or age). */
  retentionDropped: number;
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
  readonly counters: TopicCounters = {
    published: 0,
    delivered: 0,
    dropped: 0,
    slowConsumers: 0,
    retentionDropped: 0,
  };
  readonly host: TopicHost;
  /** Retention limits; set for a declared topic only. */
  retention: Retention | undefined = undefined;
  /** Where a declared topic's messages are kept (its `topic:<name>` store). */
  store: QueueStore | undefined = undefined;
  /** Durable subscriptions by name (declared topics only). */
  readonly durables = new Map<string, Durable>();
  /** Id of the last message published (or recovered). */
  lastId = 0;
  #list = new Ring<Entry>();
  /** Sequence number of the list's first entry. */
  #base = 0;
  /** Sequence number the next published message gets. */
  #next = 0;
  #totalBytes = 0;
  /** `cum` of the last entry that left the list: list bytes = total - this. */
  #leftCum = 0;

  constructor(name: string, host: TopicHost) {
    this.name = name;
    this.host = host;
  }

  /** Messages held for lagging subscriptions. */
  get retained(): number {
    return this.#list.length;
  }

  /** Payload bytes of the messages in the list. */
  get retainedBytes(): number {
    return this.#totalBytes - this.#leftCum;
  }

  /**
   * Binds a subscription; it gets messages published from now on, or, from a
   * retained message (`fromSeq`, see `seqAfter`), those first.
   */
  bind(sub: TopicSubscription, fromSeq = this.#next): Binding {
    const b = new Binding(sub, this, fromSeq, msgHead(this.name, sub.sid));
    for (let seq = fromSeq; seq < this.#next; seq++) this.#list.at(seq - this.#base)!.refs++;
    this.bindings.push(b);
    return b;
  }

  /** Sequence number of the first held message with an id above `id` (binary search: ids grow). */
  seqAfter(id: number): number {
    let lo = 0;
    let hi = this.#list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#list.at(mid)!.msg.id <= id) lo = mid + 1;
      else hi = mid;
    }
    return this.#base + lo;
  }

  /**
   * A durable's position while it is live: everything before its oldest
   * unsettled message, or, with none, before the next one it needs.
   */
  position(b: Binding): number {
    let p = b.cursor < this.#next ? this.#list.at(b.cursor - this.#base)!.msg.id - 1 : this.lastId;
    for (const id of b.sub.inflight.keys()) if (id - 1 < p) p = id - 1;
    for (const id of b.sub.scheduled) if (id - 1 < p) p = id - 1;
    return p;
  }

  /** Declares retention and the store; entries already held (lagging subscribers) go to the store too. */
  declare(retention: Retention, store: QueueStore): void {
    if (this.store === undefined) {
      for (let i = 0; i < this.#list.length; i++) void store.push(this.#list.at(i)!.msg);
    }
    this.retention = retention;
    this.store = store;
    this.#trim();
  }

  /** Loads a declared topic's recovered messages (oldest first) before anyone binds. */
  restore(msgs: Message[]): void {
    for (const msg of msgs) {
      this.#totalBytes += msg.len;
      this.#list.push(new Entry(msg, 0, this.#totalBytes));
      this.#next++;
      if (msg.id > this.lastId) this.lastId = msg.id;
    }
    this.#trim();
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
    this.lastId = msg.id;
    let refs = 0;
    const bs = this.bindings;
    for (let i = 0; i < bs.length; i++) {
      const b = bs[i];
      if (b.cursor === seq && b.sub.canSend()) {
        b.sub.send(b, msg);
        b.cursor = seq + 1;
      } else refs++;
    }
    if (this.retention !== undefined) {
      // Retained whoever needs it; lag is bounded by retention, not by the slow-consumer limits.
      msg.retain();
      this.#list.push(new Entry(msg, refs, this.#totalBytes));
      this.#trim();
      return;
    }
    if (refs === 0) {
      if (this.#list.length === 0) this.#base = this.#next;
      this.#leftCum = this.#totalBytes;
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
    while (b.cursor < this.#next) {
      const e = this.#list.at(b.cursor - this.#base)!;
      b.cursor++;
      e.refs--;
      // A held message whose TTL has passed (or that the store expired) is passed over.
      const live = e.msg.state !== MessageState.DONE && !e.msg.expired(this.host.now);
      if (live) b.sub.send(b, e.msg);
      if (e.refs === 0) this.#trim();
      if (live) return true;
    }
    return false;
  }

  /** Periodic retention work of a declared topic: TTLs in its store, then the age limit. */
  sweep(now: number): void {
    const s = this.store;
    if (s !== undefined && s.nextDueAt() <= now) s.sweep(now);
    this.#trim();
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

  /**
   * Releases entries at the front that nobody needs any more; in a declared
   * topic, only those beyond its retention, which wins over lagging
   * subscribers: they skip what it drops (counted).
   */
  #trim(): void {
    const list = this.#list;
    const r = this.retention;
    while (list.length > 0) {
      const e = list.at(0)!;
      if (r === undefined) {
        if (e.refs !== 0) return;
      } else if (!this.#beyond(r, e, list.length)) return;
      list.shift();
      this.#base++;
      this.#leftCum = e.cum;
      if (r !== undefined) this.#dropped(e);
    }
  }

  #beyond(r: Retention, e: Entry, length: number): boolean {
    return e.msg.state === MessageState.DONE || length > r.messages ||
      this.#totalBytes - this.#leftCum > r.bytes ||
      (r.ageMs !== 0 && e.msg.acceptedAt + r.ageMs <= this.host.now);
  }

  /** A declared topic dropped `e` by retention: skip it for whoever still needed it. */
  #dropped(e: Entry): void {
    const msg = e.msg;
    const expired = msg.state === MessageState.DONE; // its TTL expired it in the store already
    if (e.refs > 0) {
      for (const b of this.bindings) {
        if (b.cursor !== this.#base - 1) continue;
        b.cursor++;
        if (expired) continue;
        b.sub.dropped++;
        this.counters.dropped++;
        if (b.sub.durable !== undefined) b.sub.durable.skipped++;
      }
    }
    if (expired) return;
    for (const d of this.durables.values()) {
      if (d.sub === undefined && d.acked < msg.id) d.skipped++;
    }
    this.counters.retentionDropped++;
    // The store holds the list's live messages, and its oldest is the list's first.
    const oldest = this.store!.dropOldest();
    if (oldest !== msg) {
      throw new Error(`${this.name}: the store dropped ${oldest?.id}, the list ${msg.id} (a bug)`);
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
  /** Ids NACKed with a delay, waiting to be redelivered (a durable's position stays before them). */
  readonly scheduled = new Set<number>();
  /** The durable state it uses, for a durable subscription. */
  durable: Durable | undefined = undefined;
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
    if (this.durable !== undefined) this.host.durableMoved();
    this.resume();
    return true;
  }

  nack(id: number, delayMs: number): boolean {
    const p = this.inflight.get(id);
    if (p === undefined) return false;
    this.inflight.delete(id);
    if (delayMs === 0) this.redeliver(p);
    else {
      this.scheduled.add(id);
      this.host.schedule(p, this.host.now + delayMs);
    }
    return true;
  }

  /** Sends a pending message again, counting the delivery. */
  redeliver(p: Pending): void {
    this.scheduled.delete(p.msg.id);
    if (p.msg.state === MessageState.DONE) {
      // Retention dropped it from a declared topic meanwhile: skipped, counted.
      this.client.untrack(p.msg.id);
      this.dropped++;
      p.binding.topic.counters.dropped++;
      if (this.durable !== undefined) {
        this.durable.skipped++;
        this.host.durableMoved();
      }
      this.resume();
      return;
    }
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
