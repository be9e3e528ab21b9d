/**
 * The memory store: ten priority levels of O(1) deques, a heap of TTL due
 * times and a heap of NACK delays. Expired messages are found through the
 * heap (no rescans of the queue) and tombstoned: their payload is released at
 * once, their empty shell leaves the deque when it reaches the front.
 *
 * @module
 */
import { Deque, DequeCursor } from "./deque.ts";
import { Heap } from "./heap.ts";
import { type Message, MessageState } from "./message.ts";
import type { QueueStore, RemoveReason, ScanCursor, Store } from "./store.ts";

const LEVELS = 10;
/**
 * Holes (messages a filtered consumer took from the middle) a level may hold
 * before it is compacted, when they are also over half of it: compaction is
 * O(level) and happens after at least as many takes, so O(1) per take.
 */
const HOLES_COMPACT_MIN = 1024;

/** Called when a message leaves the store (a durable store logs it). */
export type RemoveHook = (msg: Message, reason: RemoveReason) => void;

/** One queue's messages in memory. */
export class MemoryQueueStore implements QueueStore {
  readonly name: string;
  readonly removed: Record<RemoveReason, number> = {
    acked: 0,
    expired: 0,
    dropped: 0,
    dead_lettered: 0,
    purged: 0,
    replayed: 0,
  };
  /** One deque per priority level, made on first use (most queues use one level). */
  #levels: (Deque<Message> | undefined)[] = new Array(LEVELS).fill(undefined);
  /** Bit p set when level p's deque is not empty (tombstones included). */
  #mask = 0;
  #ready = 0;
  #inflight = 0;
  #delayed = 0;
  /** Delayed messages that were pushed with a due time and never delivered. */
  #scheduled = 0;
  #bytes = 0;
  #expiry = new Heap<Message>();
  /** Held messages with a TTL; the expiry heap is compacted when it holds many more. */
  #ttlHeld = 0;
  #delays = new Heap<Message>();
  #onRemove: RemoveHook | undefined;

  constructor(name: string, onRemove?: RemoveHook) {
    this.name = name;
    this.#onRemove = onRemove;
  }

  get ready(): number {
    return this.#ready;
  }
  get inflight(): number {
    return this.#inflight;
  }
  get delayed(): number {
    return this.#delayed;
  }
  get scheduled(): number {
    return this.#scheduled;
  }
  get size(): number {
    return this.#ready + this.#inflight + this.#delayed;
  }
  get bytes(): number {
    return this.#bytes;
  }
  /** Deque slots held over all levels, holes included: what the queue costs beyond its messages. */
  get slots(): number {
    let n = 0;
    for (const level of this.#levels) n += level?.length ?? 0;
    return n;
  }

  push(msg: Message, dueAt = 0): void {
    this.#bytes += msg.len;
    if (msg.expiresAt !== 0) {
      this.#ttlHeld++;
      this.#expiry.push(msg.expiresAt, msg);
    }
    if (dueAt !== 0) {
      // One heap entry, O(log n); the sweep (one timer for all) makes it visible.
      msg.state = MessageState.DELAYED;
      msg.dueAt = dueAt;
      this.#delayed++;
      this.#scheduled++;
      this.#delays.push(dueAt, msg);
      return;
    }
    this.#toBack(msg);
  }

  recoveredDedupIds(): readonly { id: number; dedupId: string }[] {
    return [];
  }

  take(now: number): Message | undefined {
    while (this.#mask !== 0) {
      const p = 31 - Math.clz32(this.#mask);
      const level = this.#levels[p]!;
      const msg = level.shift();
      if (level.length === 0) this.#mask &= ~(1 << p);
      if (msg === undefined || msg.state !== MessageState.READY) continue;
      if (msg.expired(now)) {
        this.#ready--;
        this.#gone(msg, "expired");
        continue;
      }
      return this.#delivered(msg, now);
    }
    return undefined;
  }

  /** A ready message taken for delivery: in flight now, its delivery counted. */
  #delivered(msg: Message, now: number): Message {
    this.#ready--;
    msg.state = MessageState.INFLIGHT;
    msg.deliveries++;
    msg.deliveredAt = now;
    this.#inflight++;
    return msg;
  }

  newCursor(): ScanCursor {
    return new LevelCursors();
  }

  takeMatching(
    cursor: ScanCursor,
    match: (m: Message) => boolean,
    now: number,
  ): Message | undefined {
    const c = cursor as LevelCursors;
    const cs = c.levels;
    c.now = now;
    c.match = match;
    const want = c.want;
    for (let p = LEVELS - 1; p >= 0; p--) {
      if ((this.#mask & (1 << p)) === 0) continue;
      const level = this.#levels[p]!;
      const msg = level.scan(cs[p] ??= new DequeCursor(), want);
      if (msg === undefined) continue;
      // Holes at the front go at once; holes behind a message that stays (one no consumer
      // takes) go by compaction once they are most of the level: memory stays O(messages held).
      while (level.length > 0 && level.peek() === undefined) level.shift();
      if (level.length === 0) this.#mask &= ~(1 << p);
      else if (level.holes >= HOLES_COMPACT_MIN && 2 * level.holes > level.length) level.compact();
      return this.#delivered(msg, now);
    }
    return undefined;
  }

  remove(msg: Message, reason: RemoveReason): void {
    if (msg.state === MessageState.INFLIGHT) this.#inflight--;
    else if (msg.state === MessageState.READY) {
      this.#ready--;
      this.#gone(msg, reason);
      // A ready message removed where it waits (a replica applying its leader's ACKs, which
      // never takes) leaves a shell; shells at the front go now, so a store nobody takes
      // from holds no more than the span of its live messages.
      const level = this.#levels[msg.priority];
      if (level === undefined) return;
      while (level.length > 0 && level.peek()?.state !== MessageState.READY) level.shift();
      if (level.length === 0) this.#mask &= ~(1 << msg.priority);
      return;
    } else if (msg.state === MessageState.DELAYED) this.#undelay(msg);
    else return;
    this.#gone(msg, reason);
  }

  requeue(msg: Message, delayMs: number, now: number): void {
    if (msg.state !== MessageState.INFLIGHT) return;
    this.#inflight--;
    if (msg.expired(now)) return this.#gone(msg, "expired");
    if (delayMs > 0) {
      msg.state = MessageState.DELAYED;
      msg.dueAt = now + delayMs;
      this.#delayed++;
      this.#delays.push(msg.dueAt, msg);
      return;
    }
    this.#toFront(msg);
  }

  purge(): number {
    let n = 0;
    for (let p = 0; p < LEVELS; p++) {
      const level = this.#levels[p];
      if (level === undefined) continue;
      for (const m of level) {
        if (m.state !== MessageState.READY) continue;
        this.#ready--;
        this.#gone(m, "purged");
        n++;
      }
      this.#levels[p] = undefined;
    }
    this.#mask = 0;
    // A message delayed twice has two heap entries: the first pop ends it, the second is skipped.
    while (this.#delays.length > 0) {
      const m = this.#delays.pop()!;
      if (m.state !== MessageState.DELAYED) continue;
      this.#delayed--;
      this.#gone(m, "purged");
      n++;
    }
    return n;
  }

  dropOldest(): Message | undefined {
    let oldest: Message | undefined;
    for (let p = 0; p < LEVELS; p++) {
      const level = this.#levels[p];
      if (level === undefined) continue;
      while (level.length > 0 && level.peek()?.state !== MessageState.READY) level.shift();
      if (level.length === 0) this.#mask &= ~(1 << p);
      const front = level.peek();
      if (front !== undefined && (oldest === undefined || front.id < oldest.id)) oldest = front;
    }
    if (oldest === undefined) return undefined;
    const level = this.#levels[oldest.priority]!;
    level.shift();
    if (level.length === 0) this.#mask &= ~(1 << oldest.priority);
    this.#ready--;
    this.#gone(oldest, "dropped");
    return oldest;
  }

  sweep(now: number): number {
    // Due NACK-delayed messages go to the front of their level, oldest due
    // first; due scheduled ones (never delivered) to the back, in due order,
    // as if published then.
    // The heap is not stable: messages due in the same millisecond (a burst
    // published with one delay) come out in any order, so the scheduled ones
    // of this sweep are sorted by due time, then id (publish order).
    const due: Message[] = [];
    let scheduled: Message[] | undefined;
    while (this.#delays.peekKey() <= now) {
      const msg = this.#delays.pop()!;
      if (msg.state !== MessageState.DELAYED || msg.dueAt > now) continue;
      this.#undelay(msg);
      if (msg.deliveries === 0) (scheduled ??= []).push(msg);
      else due.push(msg);
    }
    if (scheduled !== undefined) {
      scheduled.sort(byDueThenId);
      for (const m of scheduled) this.#toBack(m);
    }
    for (let i = due.length - 1; i >= 0; i--) this.#toFront(due[i]);
    let expired = 0;
    while (this.#expiry.peekKey() <= now) {
      const msg = this.#expiry.pop()!;
      if (msg.state === MessageState.READY) this.#ready--;
      else if (msg.state === MessageState.DELAYED) this.#undelay(msg);
      else continue; // in flight: settled by its consumer, or expired if it comes back
      this.#gone(msg, "expired");
      expired++;
    }
    if (this.#expiry.length > 2 * this.#ttlHeld + 1024) {
      this.#expiry.filter((m) => m.state !== MessageState.DONE);
    }
    return expired;
  }

  nextDueAt(): number {
    return Math.min(this.#delays.peekKey(), this.#expiry.peekKey());
  }

  *messages(): IterableIterator<Message> {
    for (let p = LEVELS - 1; p >= 0; p--) {
      for (const m of this.#levels[p] ?? []) if (m.state === MessageState.READY) yield m;
    }
  }

  /** A delayed message leaves the delayed state (due, removed or expired). */
  #undelay(msg: Message): void {
    this.#delayed--;
    if (msg.deliveries === 0) this.#scheduled--;
  }

  #toBack(msg: Message): void {
    msg.state = MessageState.READY;
    (this.#levels[msg.priority] ??= new Deque<Message>()).push(msg);
    this.#mask |= 1 << msg.priority;
    this.#ready++;
  }

  #toFront(msg: Message): void {
    msg.state = MessageState.READY;
    (this.#levels[msg.priority] ??= new Deque<Message>()).unshift(msg);
    this.#mask |= 1 << msg.priority;
    this.#ready++;
  }

  /** The one exit of a message: counts, releases, tells the hook. */
  #gone(msg: Message, reason: RemoveReason): void {
    this.#bytes -= msg.len;
    if (msg.expiresAt !== 0) this.#ttlHeld--;
    // An ACK's named: `removed[reason]` is a keyed access that every reason's caller shares,
    // megamorphic, and it was ~1% of the broker under the queue bench (Deno).
    if (reason === "acked") this.removed.acked++;
    else this.removed[reason]++;
    this.#onRemove?.(msg, reason);
    msg.release();
  }
}

/** A filtered consumer's place in each priority level. */
class LevelCursors implements ScanCursor {
  readonly levels: (DequeCursor<Message> | undefined)[] = new Array(LEVELS).fill(undefined);
  now = 0;
  match: (m: Message) => boolean = () => false;
  /** The test of one scan, made once per consumer rather than once per take. */
  readonly want = (m: Message): boolean =>
    m.state === MessageState.READY && !m.expired(this.now) && this.match(m);
}

function byDueThenId(a: Message, b: Message): number {
  return a.dueAt - b.dueAt || a.id - b.id;
}

/** Queues in memory only; nothing survives a restart. */
export class MemoryStore implements Store {
  readonly kind = "memory" as const;

  openQueue(name: string): QueueStore {
    return new MemoryQueueStore(name);
  }
  dropQueue(_name: string): void {}
  queueNames(): string[] {
    return [];
  }
  lastId(): number {
    return 0;
  }
  writePending(): void {}
  readonly waitsForSync = false;
  synced(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
