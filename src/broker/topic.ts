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
import { assert } from "../assert.ts";
import type { MsgRun } from "../protocol/mod.ts";
import { type Message, MessageState, type QueueStore, Ring } from "../storage/mod.ts";
import type { Durable } from "./durable.ts";
import { published } from "./messages.ts";
import type { Delivery } from "./inflight.ts";
import type { TopicStats } from "./stats.ts";
import type { SoloTopic } from "./topic_solo.ts";
import type { TopicSubscription } from "./topic_subscription.ts";
import type { Client, SlowConsumerPolicy } from "./types.ts";

/** Retention limits of a declared topic; `ageMs` 0 means no age limit. */
export interface Retention {
  messages: number;
  bytes: number;
  ageMs: number;
}

/**
 * Whether a binding's subscription selects `msg`. An entry counts (`refs`)
 * only the bindings that select it; a selector gives the same answer every
 * time for a message, so a binding that passes an entry asks again rather than
 * remembering. (A message released meanwhile has lost its headers and may
 * answer otherwise; that only happens in a declared topic, whose store expired
 * it, and a declared topic trims such entries whatever their count.)
 */
function wants(b: Binding, msg: Message): boolean {
  const f = b.sub.filter;
  return f === undefined || f(msg);
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
  /** Records `n` deliveries of messages published in this tick (their latency is 0). */
  observeFresh(n: number): void;
  /** Schedules a NACKed topic delivery for redelivery at `dueAt`. */
  schedule(d: Delivery, dueAt: number): void;
  /** A durable subscription's position (on `topic`) may have moved: persist it (coalesced). */
  durableMoved(topic?: Topic): void;
  /** A subscription closed and left these topics (the broker forgets idle ones). */
  closed(sub: TopicSubscription, left: readonly Topic[]): void;
  /** Its connection's permissions changed: re-decide which topics a wildcard subscription is bound to. */
  rebind(sub: TopicSubscription): void;
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
  /** Times its publishers were paused for a stalled subscription (`block` policy). */
  blocks: number;
}

/**
 * One subscription's attachment to one topic: where it is in the topic's
 * list. An exact-name subscription is its own binding (it has one topic for
 * life: no object of its own); a wildcard subscription has one per matching
 * topic (see topic_subscription.ts).
 */
export interface Binding {
  readonly sub: TopicSubscription;
  readonly topic: Topic;
  /** Sequence number of the next message this binding needs (set by `Topic.bind`). */
  cursor: number;
  /**
   * `MSG <topic> sub_id:<sid>`, made at its first delivery and kept: a
   * subscription that never gets a message holds none (its view was 0.1 KiB
   * of heap, and its bytes a slab's).
   */
  readonly head: Uint8Array;
}

/**
 * The list of every topic that never held a message (a `Ring` each, 64 B of
 * heap per idle topic). Never pushed to: `#hold` gives a topic its own first.
 */
const NO_ENTRIES: Ring<Entry> = new Ring();

/**
 * The stalled set of every topic that has none: a `Set` each (~0.15 KiB of
 * heap with its table) for a state only the `block` policy ever enters.
 * Never added to: `#checkLag` makes a topic its own set first.
 */
const NONE_STALLED: ReadonlySet<Binding> = new Set();

/** Scratch of `publishRun`: the bindings that take a run whole (emptied slot by slot after each run). */
const runBindings: (Binding | undefined)[] = [];
/** Scratch of `publishRun`: the bytes of each one's frames. */
const runBytes: number[] = [];

/** Scratch of `oneEach` (cleared after each use: it holds at most one topic's clients at a time). */
const runClients = new Set<Client>();

/**
 * Whether every binding is on a connection of its own. Two subscriptions of
 * one connection fit below its high mark one by one but maybe not together,
 * and `publish` interleaves their frames: such a topic's runs go message by
 * message.
 */
function oneEach(bs: readonly Binding[]): boolean {
  if (bs.length === 1) return true;
  for (let i = 0; i < bs.length; i++) runClients.add(bs[i].sub.client);
  const distinct = runClients.size === bs.length;
  runClients.clear();
  return distinct;
}

/**
 * What few topics ever have: a declaration's store and durables, the `block`
 * policy's pause, and the counters of trouble. Made on first use (see
 * `Topic.#rare`), so that a topic that only ever delivers is 12 fields, not
 * 24 and a counters object (0.25 KiB of heap per subscribed name before;
 * Bun's object size classes step after 8, 12 and 16 fields).
 */
class TopicRare {
  /** Retention limits; set for a declared topic only. */
  retention: Retention | undefined = undefined;
  /** Messages recovered (`restore`, `adopt`): counted in `Topic.#next`, not in `published`. */
  recovered = 0;
  dropped = 0;
  slowConsumers = 0;
  retentionDropped = 0;
  blocks = 0;
  store: QueueStore | undefined = undefined;
  durables: Map<string, Durable> | undefined = undefined;
  blockedAt = 0;
  /** Bindings over the lag limits under the `block` policy: while there are any, publishers pause. */
  stalled = NONE_STALLED as Set<Binding>;
  /** Resolves the current pause's waiters. */
  release: (() => void) | undefined = undefined;
  released: Promise<void> | undefined = undefined;
}

/** The rare part of every topic that never needed one (frozen: a write to it throws). */
const NO_RARE: Readonly<TopicRare> = Object.freeze(new TopicRare());

/** A concrete topic and its shared message list. */
export class Topic {
  readonly name: string;
  /** Its subscriptions' bindings (replaced, not grown, when the first comes: see `bind`). */
  bindings: Binding[] = [];
  /** Deliveries made from it (first deliveries; redeliveries are not counted). */
  delivered = 0;
  readonly host: TopicHost;
  /** Id of the last message published (or recovered). */
  lastId = 0;
  /** `#next` at the last sweep: a topic with no publish since is idle. */
  #nextAtSweep = 0;
  /** See `TopicRare`: `NO_RARE` (shared, never written) until `#own` makes its own. */
  #rare = NO_RARE as TopicRare;
  /** Shared and empty until the first message is held (see `#hold`). */
  #list = NO_ENTRIES;
  /** Sequence number of the list's first entry. */
  #base = 0;
  /** Sequence number the next published message gets. */
  #next = 0;
  #totalBytes = 0;
  /** `cum` of the last entry that left the list: list bytes = total - this. */
  #leftCum = 0;

  /** `from`: the figures of a solo topic it takes over (see topic_solo.ts). */
  constructor(name: string, host: TopicHost, from?: SoloTopic) {
    this.name = name;
    this.host = host;
    if (from !== undefined) {
      this.#next = this.#base = this.#nextAtSweep = from.published;
      this.delivered = from.delivered;
      this.lastId = from.lastId;
    }
  }

  /** Its rare part, made its own first if it is still the shared one. */
  #own(): TopicRare {
    if (this.#rare === NO_RARE) this.#rare = new TopicRare();
    return this.#rare;
  }

  /** Messages published to it (each took a sequence number; recovered ones did too). */
  get published(): number {
    return this.#next - this.#rare.recovered;
  }

  /** Retention limits; set for a declared topic only. */
  get retention(): Retention | undefined {
    return this.#rare.retention;
  }

  /**
   * Its counters, a copy (read only: `delivered` is a field, `published`
   * follows the sequence numbers, the others are in `TopicRare`).
   */
  get counters(): Readonly<TopicCounters> {
    const r = this.#rare;
    return {
      published: this.published,
      delivered: this.delivered,
      dropped: r.dropped,
      slowConsumers: r.slowConsumers,
      retentionDropped: r.retentionDropped,
      blocks: r.blocks,
    };
  }

  /** Counts a message a subscription skipped (drop-oldest, or a redelivery retention dropped first). */
  countDropped(): void {
    this.#own().dropped++;
  }

  /** Where a declared topic's messages are kept (its `topic:<name>` store). */
  get store(): QueueStore | undefined {
    return this.#rare.store;
  }

  /** Durable subscriptions by name (declared topics only; made on first use). */
  get durables(): Map<string, Durable> {
    const r = this.#own();
    return r.durables ??= new Map();
  }

  /** When publishers were paused for a stalled subscription (`block` policy), epoch ms; 0: not paused. */
  get blockedAt(): number {
    return this.#rare.blockedAt;
  }

  /** Messages held for lagging subscriptions. */
  get retained(): number {
    return this.#list.length;
  }

  /** Payload bytes of the messages in the list. */
  get retainedBytes(): number {
    return this.#totalBytes - this.#leftCum;
  }

  /** Appends to the list, made first if it is still the shared empty one. */
  #hold(e: Entry): void {
    if (this.#list === NO_ENTRIES) this.#list = new Ring();
    this.#list.push(e);
  }

  /**
   * Binds a subscription; it gets messages published from now on, or, from a
   * retained message (`fromSeq`, see `seqAfter`), those first.
   */
  bind(b: Binding, fromSeq = this.#next): void {
    b.cursor = fromSeq;
    for (let seq = fromSeq; seq < this.#next; seq++) {
      const e = this.#list.at(seq - this.#base)!;
      if (wants(b, e.msg)) e.refs++;
    }
    // A pushed-to empty array grows to 17 slots (0.15 KiB); most topics have one subscriber.
    if (this.bindings.length === 0) this.bindings = [b];
    else this.bindings.push(b);
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

  /** Declares retention and the store; entries already held (lagging subscribers) go to the store too. */
  declare(retention: Retention, store: QueueStore): void {
    if (this.store === undefined) {
      for (let i = 0; i < this.#list.length; i++) void store.push(this.#list.at(i)!.msg);
    }
    const x = this.#own();
    x.retention = retention;
    x.store = store;
    this.#trim();
  }

  /**
   * (cluster) This node now leads the declared topic: its retention, its
   * replicated store and the log recovered there (oldest first) replace
   * what the list held (a plain topic's list holds only what lagging live
   * subscribers still need, and the log has it too). Each binding keeps its
   * place by id: a caught-up one goes on with the next publish, a lagging
   * one with the first recovered message after the one it got last. (The
   * link gives a peer's message an id of this node's clock, so that place is
   * found by time, to within the clocks' skew: a lagging live subscriber may
   * see a message twice or miss one here, as live delivery across nodes
   * allows.)
   */
  adopt(retention: Retention, store: QueueStore, msgs: readonly Message[]): void {
    const next = this.bindings.map((b) => this.nextId(b));
    this.#list = new Ring<Entry>();
    this.#base = this.#next;
    this.#leftCum = this.#totalBytes;
    for (const msg of msgs) {
      this.#totalBytes += msg.len;
      this.#hold(new Entry(msg, 0, this.#totalBytes));
      this.#next++;
      this.#own().recovered++;
      if (msg.id > this.lastId) this.lastId = msg.id;
    }
    this.bindings.forEach((b, i) => {
      b.cursor = next[i] === Infinity ? this.#next : this.seqAfter(next[i] - 1);
      for (let seq = b.cursor; seq < this.#next; seq++) {
        const e = this.#list.at(seq - this.#base)!;
        if (wants(b, e.msg)) e.refs++;
      }
    });
    const x = this.#own();
    x.retention = retention;
    x.store = store;
    this.#trim();
  }

  /**
   * (cluster) Another node leads the declared topic now: here it is a plain
   * topic again (its log stays in the replicated store as a copy), holding
   * only what lagging live subscribers still need. Returns the
   * subscriptions that replayed or used a durable of it: their clients are
   * told to go to the new leader.
   */
  release(): TopicSubscription[] {
    const gone = this.bindings.filter((b) => b.sub.replay).map((b) => b.sub);
    const x = this.#rare;
    if (x !== NO_RARE) {
      x.retention = undefined;
      x.store = undefined;
      x.durables?.clear();
    }
    this.#trim();
    return gone;
  }

  /** Loads a declared topic's recovered messages (oldest first) before anyone binds. */
  restore(msgs: Message[]): void {
    for (const msg of msgs) {
      this.#totalBytes += msg.len;
      this.#hold(new Entry(msg, 0, this.#totalBytes));
      this.#next++;
      this.#own().recovered++;
      if (msg.id > this.lastId) this.lastId = msg.id;
    }
    this.#trim();
  }

  /** Whether nothing was published to it since the last call (the sweep asks once per topic). */
  swept(): boolean {
    const idle = this.#next === this.#nextAtSweep;
    this.#nextAtSweep = this.#next;
    return idle;
  }

  /**
   * Whether the broker may forget it (when `swept()`): not declared, holding
   * nothing, bound only through wildcard subscriptions (which bind again
   * when it is published to next), none of which needs its binding for a
   * redelivery. Such topics are made on publish for a wildcard (a reply to a
   * request inbox is one per request), so they must not stay as long as the
   * wildcard does.
   */
  forgettable(): boolean {
    if (this.retention !== undefined || this.retained !== 0) return false;
    for (const b of this.bindings) if (b.sub.pattern === this.name || b.sub.holds(b)) return false;
    return true;
  }

  /**
   * Whether it holds nothing but its bindings and counts: no message, no rare
   * part (so not declared, never blocked, no trouble counted). Such a topic
   * with one exact subscriber may rest in it (see topic_solo.ts).
   */
  plain(): boolean {
    return this.#rare === NO_RARE && this.#list.length === 0;
  }

  /** Whether publishers to it are to pause: a subscription is over its lag limits under `block`. */
  get blocked(): boolean {
    return this.#rare.stalled.size > 0;
  }

  /** Resolves once no subscription is stalled (one promise per pause, shared by its publishers). */
  unblocked(): Promise<void> {
    const x = this.#rare;
    if (x.stalled.size === 0) return Promise.resolve();
    return x.released ??= new Promise<void>((r) => x.release = r);
  }

  /**
   * A pause that lasted `blockMs`: the stalled subscriptions are slow
   * consumers after all (`disconnect`); their connections close and unbind.
   */
  expireBlock(now: number, blockMs: number): void {
    const x = this.#rare;
    if (x.blockedAt === 0 || x.blockedAt + blockMs > now) return;
    for (const b of x.stalled) {
      const lag = this.lag(b);
      const why =
        `is ${lag.messages} messages (${lag.bytes} bytes) behind on ${this.name} after ${blockMs} ms of blocked publishers`;
      if (b.sub.slowConsumer(why)) x.slowConsumers++;
    }
  }

  /** Unbinds, releasing the binding's hold on every message it had not passed. */
  unbind(b: Binding): void {
    const i = this.bindings.indexOf(b);
    if (i < 0) return;
    this.bindings.splice(i, 1);
    if (this.#rare.stalled.delete(b)) this.#unstalled();
    for (let seq = this.#clamp(b); seq < this.#next; seq++) {
      const e = this.#list.at(seq - this.#base)!;
      if (wants(b, e.msg)) e.refs--;
    }
    b.cursor = this.#next;
    this.#trim();
  }

  /** Fans a message out: written at once to caught-up writable subscriptions, held for the rest. */
  publish(msg: Message): void {
    const seq = this.#next++;
    this.#totalBytes += msg.len;
    this.lastId = msg.id;
    let refs = 0;
    const bs = this.bindings;
    const h = this.host;
    for (let i = 0; i < bs.length; i++) {
      const b = bs[i];
      const f = b.sub.filter;
      if (f !== undefined && !f(msg)) {
        // Not for it: passed at once if caught up, else passed over when its cursor gets here.
        if (b.cursor === seq) b.cursor = seq + 1;
      } else if (b.cursor === seq && b.sub.hasRoom()) {
        b.sub.take(b, msg, h.now);
        b.cursor = seq + 1;
        this.delivered++;
        h.observeDelivery(msg);
      } else if (b.cursor <= seq) refs++; // past it: `publishRun` sent it in a run
    }
    if (this.retention !== undefined) {
      // Retained whoever needs it; lag is bounded by retention, not by the slow-consumer limits.
      msg.retain();
      this.#hold(new Entry(msg, refs, this.#totalBytes));
      this.#trim();
      return;
    }
    if (refs === 0 && this.#list.length === 0) {
      this.#base = this.#next;
      this.#leftCum = this.#totalBytes;
      return;
    }
    // Held even with no refs when the list is not empty (a subscription lags, and this is not for
    // it): the list is indexed by sequence number. It leaves with the entries before it.
    msg.retain();
    this.#hold(new Entry(msg, refs, this.#totalBytes));
    for (let i = 0; i < bs.length; i++) if (bs[i].cursor <= seq) this.#checkLag(bs[i]);
  }

  /**
   * Fans out a run of plain messages (`run`'s source, ids one apart from
   * `firstId`) when no binding selects or waits for acks and each is on a
   * connection of its own. The bindings that are caught up and whose
   * connection takes the whole run below its high mark get it as frames
   * encoded once (the first pieces that fit, see `MsgRun.measure`), each
   * connection a copy with its head, no `Message` made. The others (a
   * laggard, a connection near its high mark) get each message as `publish`
   * gives it: written while there is room, else held, with the lag checks
   * and slow-consumer policy of a single publish; only then is a `Message`
   * made per message. So one stalled subscriber does not take its topic's
   * healthy ones off the run path. Returns how many messages it published
   * (0: none, when not one binding takes the run whole; publish them one by
   * one).
   */
  publishRun(run: MsgRun, firstId: number): number {
    if (this.retention !== undefined) return 0;
    const bs = this.bindings;
    let headMax = 0;
    for (let i = 0; i < bs.length; i++) {
      const b = bs[i];
      const s = b.sub;
      if (s.filter !== undefined || s.explicit || s.client.sendRun === undefined) return 0;
      headMax = Math.max(headMax, b.head.length);
    }
    if (bs.length === 0 || !oneEach(bs)) return 0;
    const n = run.measure(headMax, firstId);
    if (n === 0) return 0;
    const next = this.#next;
    let whole = 0;
    // The head most of them share the length of (a majority vote), to encode the frames with.
    let lead = bs[0].head;
    let votes = 0;
    for (let i = 0; i < bs.length; i++) {
      const b = bs[i];
      if (this.#clamp(b) !== next) continue;
      const bytes = run.bytesFor(b.head);
      if (!b.sub.client.roomFor!(bytes)) continue;
      runBindings[whole] = b;
      runBytes[whole++] = bytes;
      if (votes === 0) lead = b.head;
      votes += b.head.length === lead.length ? 1 : -1;
    }
    if (whole === 0) return 0;
    run.encode(lead, whole);
    for (let i = 0; i < whole; i++) {
      const b = runBindings[i]!;
      runBindings[i] = undefined; // filled by index, emptied slot by slot: no regrowth per run
      b.sub.client.sendRun!(b.head, run, runBytes[i]);
      b.sub.delivered += n;
      b.cursor = next + n; // past the run: `publish` below counts it out of each message
    }
    this.delivered += n * whole;
    this.host.observeFresh(n * whole);
    if (whole === bs.length && this.#list.length === 0) {
      this.#next += n; // `published` follows `#next`
      this.#totalBytes += run.payloadBytes;
      this.lastId = firstId + n - 1;
      this.#base = this.#next;
      this.#leftCum = this.#totalBytes;
      return n;
    }
    const now = this.host.now;
    const buf = run.buf;
    for (let i = 0; i < n; i++) {
      this.publish(
        published(firstId + i, this.name, buf, run.offsetOf(i), run.sizeOf(i), undefined, now),
      );
    }
    return n;
  }

  /** Whether the binding has messages waiting. */
  lagging(b: Binding): boolean {
    return b.cursor < this.#next;
  }

  /** Id of the next message the binding needs (Infinity when caught up). */
  nextId(b: Binding): number {
    this.#clamp(b);
    while (b.cursor < this.#next) {
      const msg = this.#list.at(b.cursor - this.#base)!.msg;
      if (wants(b, msg)) return msg.id;
      b.cursor++; // not for it, and never counted for it: passing costs nothing
    }
    return Infinity;
  }

  /**
   * Moves a cursor left behind by a trim up to the list's front: the entries
   * released before it were ones its selector did not want (they would have
   * been held for it otherwise). Returns the cursor.
   */
  #clamp(b: Binding): number {
    if (b.cursor < this.#base) b.cursor = this.#base;
    return b.cursor;
  }

  /** Sends the binding its next held message; false when it has none. */
  sendNext(b: Binding): boolean {
    this.#clamp(b);
    while (b.cursor < this.#next) {
      const e = this.#list.at(b.cursor - this.#base)!;
      b.cursor++;
      if (!wants(b, e.msg)) continue; // never counted for it (a selector's answer does not change)
      e.refs--;
      // A held message whose TTL has passed (or that the store expired) is passed over.
      const h = this.host;
      const live = e.msg.state !== MessageState.DONE && !e.msg.expired(h.now);
      if (live) {
        b.sub.take(b, e.msg, h.now);
        this.delivered++;
        h.observeDelivery(e.msg);
      }
      if (e.refs === 0) this.#trim();
      if (this.#rare.stalled.size !== 0) this.#catchingUp(b);
      if (live) return true;
    }
    return false;
  }

  /**
   * A stalled binding that has drained to half its limits lets publishers go
   * on (hysteresis: a reader slower than the writer pauses them in bursts,
   * not per message).
   */
  #catchingUp(b: Binding): void {
    const x = this.#rare;
    if (!x.stalled.has(b)) return;
    const h = this.host;
    const lag = this.lag(b);
    if (lag.messages > h.subPendingMessagesMax / 2 || lag.bytes > b.sub.lagBytesMax / 2) return;
    x.stalled.delete(b);
    this.#unstalled();
  }

  #unstalled(): void {
    const x = this.#rare;
    if (x.stalled.size !== 0) return;
    x.blockedAt = 0;
    const release = x.release;
    x.release = x.released = undefined;
    release?.();
  }

  /** Periodic retention work of a declared topic: TTLs in its store, then the age limit. */
  sweep(now: number): void {
    const s = this.store;
    if (s !== undefined && s.nextDueAt() <= now) s.sweep(now);
    this.#trim();
  }

  /** How far behind a binding is. */
  lag(b: Binding): { messages: number; bytes: number } {
    if (this.#clamp(b) >= this.#next) return { messages: 0, bytes: 0 };
    const e = this.#list.at(b.cursor - this.#base)!;
    return {
      messages: this.#next - b.cursor,
      bytes: this.#totalBytes - (e.cum - e.msg.len),
    };
  }

  /** Its figures for the admin API. */
  stats(): TopicStats {
    let maxMsgs = 0;
    let maxBytes = 0;
    for (const b of this.bindings) {
      const l = this.lag(b);
      maxMsgs = Math.max(maxMsgs, l.messages);
      maxBytes = Math.max(maxBytes, l.bytes);
    }
    const r = this.retention;
    const x = this.#rare;
    const c = this.counters;
    return {
      name: this.name,
      declared: r !== undefined,
      retention: r === undefined ? null : { messages: r.messages, bytes: r.bytes, age_ms: r.ageMs },
      subscribers: this.bindings.length,
      retained: this.retained,
      retained_bytes: this.retainedBytes,
      max_lag_msgs: maxMsgs,
      max_lag_bytes: maxBytes,
      published: c.published,
      delivered: c.delivered,
      dropped: c.dropped,
      slow_consumers: c.slowConsumers,
      retention_dropped: c.retentionDropped,
      // Read without `durables`, which would make every polled topic its map.
      durables: x.durables === undefined
        ? []
        : [...x.durables.keys()].sort().map((n) => x.durables!.get(n)!.stats(this)),
    };
  }

  /** Retained messages with an id above `id`. */
  retainedAfter(id: number): number {
    return this.#next - this.seqAfter(id);
  }

  #checkLag(b: Binding): void {
    const h = this.host;
    let lag = this.lag(b);
    if (lag.messages <= h.subPendingMessagesMax && lag.bytes <= b.sub.lagBytesMax) return;
    if (h.slowConsumer === "disconnect") {
      const why = `is ${lag.messages} messages (${lag.bytes} bytes) behind on ${this.name}`;
      if (b.sub.slowConsumer(why)) this.#own().slowConsumers++;
      return;
    }
    if (h.slowConsumer === "block") {
      const x = this.#own();
      if (x.stalled.size === 0) {
        x.blockedAt = h.now;
        x.blocks++;
      }
      if (x.stalled === NONE_STALLED) x.stalled = new Set();
      x.stalled.add(b);
      return;
    }
    while (lag.messages > h.subPendingMessagesMax || lag.bytes > b.sub.lagBytesMax) {
      const e = this.#list.at(this.#clamp(b) - this.#base)!;
      b.cursor++;
      if (!wants(b, e.msg)) {
        lag = this.lag(b);
        continue;
      }
      e.refs--;
      this.countDropped();
      b.sub.skipped(false);
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
        if (b.cursor !== this.#base - 1 || !wants(b, msg)) continue; // an unwanted one: #clamp
        b.cursor++;
        if (expired) continue;
        b.sub.skipped(true);
        this.countDropped();
      }
    }
    if (expired) return;
    const x = this.#own();
    for (const d of x.durables?.values() ?? []) d.missed(msg.id);
    x.retentionDropped++;
    // The store holds the list's live messages, and its oldest is the list's first.
    const oldest = this.store!.dropOldest();
    assert(
      oldest === msg,
      () => `${this.name}: the store dropped ${oldest?.id}, the list ${msg.id}`,
    );
  }
}
