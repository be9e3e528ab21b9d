/**
 * The storage seam: the broker keeps queue messages in a `QueueStore` and
 * never knows whether it is memory or a log on disk. One conformance suite
 * (tests/storage/conformance.ts) holds every implementation to the same
 * behaviour.
 *
 * @module
 */
import type { Message } from "./message.ts";

/**
 * Why a message left its queue (a log store records it; metrics count it).
 * `purged`: an operator emptied the queue; `replayed`: an operator moved a
 * dead letter back to its queue (a new message there).
 */
export type RemoveReason =
  | "acked"
  | "expired"
  | "dropped"
  | "dead_lettered"
  | "purged"
  | "replayed";

/** An I/O failure of a durable store: the publisher gets `ERR STORE_FAILED`. */
export class StoreError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreError";
  }
}

/** Messages of one queue: ready by priority then FIFO, in flight, and delayed. */
export interface QueueStore {
  /** Queue name with its `queue:` prefix. */
  readonly name: string;
  /** Messages waiting for a consumer (expired ones not yet swept may be counted). */
  readonly ready: number;
  /** Messages delivered and not settled. */
  readonly inflight: number;
  /** Messages NACKed with a delay or published with one (`scheduled`), not yet due. */
  readonly delayed: number;
  /** Messages pushed with a due time (never delivered yet), not yet due: a part of `delayed`. */
  readonly scheduled: number;
  /** All messages held: ready + in flight + delayed. */
  readonly size: number;
  /** Payload bytes of all messages held. */
  readonly bytes: number;
  /**
   * Accepts a new message at the back of its priority level, or, with a
   * `dueAt` (epoch ms, 0: none), held invisible until then and put at the
   * back of its level when due (a scheduled publish). Returns a promise
   * when durability is still pending (the publisher's OK waits for it); throws
   * or rejects with `StoreError` when it cannot be stored.
   */
  push(msg: Message, dueAt?: number): void | Promise<void>;
  /**
   * Dedup ids a durable store found in its log at start, with their message
   * ids, oldest first (messages settled since included): the broker rebuilds
   * the queue's dedup window from them. Empty for a memory store.
   */
  recoveredDedupIds(): readonly { id: number; dedupId: string }[];
  /** The next deliverable message (highest priority, oldest first), now in flight; expires the expired ones it meets. */
  take(now: number): Message | undefined;
  /**
   * The next deliverable message that `match` accepts (highest priority,
   * oldest first), now in flight; the others stay where they are. `cursor`
   * (from `newCursor`, one per filtered consumer) remembers how far the
   * consumer has looked, so each message is tested about once per consumer
   * (see docs/ARCHITECTURE.md, "Filtered queue consumers").
   */
  takeMatching(
    cursor: ScanCursor,
    match: (m: Message) => boolean,
    now: number,
  ): Message | undefined;
  /** A place for `takeMatching` to remember how far a consumer has looked. */
  newCursor(): ScanCursor;
  /** Settles an in-flight message. */
  remove(msg: Message, reason: RemoveReason): void;
  /** Puts an in-flight message back: at the front of its level, or due after `delayMs`. */
  requeue(msg: Message, delayMs: number, now: number): void;
  /**
   * Removes every ready and delayed message (reason `purged`) and returns how
   * many; in-flight messages stay with their consumers until settled.
   */
  purge(): number;
  /** Removes the oldest ready message (drop-oldest policy). */
  dropOldest(): Message | undefined;
  /** Expires due TTLs and makes due delayed messages ready; returns how many expired. */
  sweep(now: number): number;
  /** Messages that left by each reason since the store opened. */
  readonly removed: Readonly<Record<RemoveReason, number>>;
  /** Earliest time `sweep` has work to do (Infinity: none). */
  nextDueAt(): number;
  /** Ready messages (not in flight or delayed), highest priority first, for snapshots and checks (O(n)). */
  messages(): Iterable<Message>;
}

/** A filtered consumer's place in a `QueueStore`; opaque to the broker. */
// deno-lint-ignore no-empty-interface
export interface ScanCursor {}

/** The device syncs (fdatasync rounds) of a durable store since it opened, for the console. */
export interface SyncStats {
  count: number;
  /** Wall time of all of them, and of the last one. */
  totalMs: number;
  lastMs: number;
}

/** A set of queue stores; memory or durable. */
export interface Store {
  readonly kind: "memory" | "log";
  /** Its sync rounds so far; absent for a store that never syncs (memory). */
  readonly syncs?: Readonly<SyncStats>;
  /** Opens the store of a queue (recovering its messages from disk for a durable store). */
  openQueue(name: string): QueueStore;
  /** Forgets an empty queue (it may be opened again later). */
  dropQueue(name: string): void;
  /** Names of queues that have stored messages (recovered at start). */
  queueNames(): string[];
  /** The highest message id ever stored, so new ids stay unique after a restart. */
  lastId(): number;
  /**
   * Hands every record of the current tick to the operating system. The
   * server calls it before each socket write, so no reply (an ACK's OK, a
   * MSG) leaves before the records it reports on: a crash of the process
   * then never revives an acknowledged message, whatever the fsync policy.
   */
  writePending(): void;
  /**
   * Whether replies wait for the device: true only for a log store under
   * `fsync: always`, where `push` and `synced` can return a promise. The
   * server then settles an ACK or NACK before it replies, so that `synced`
   * covers its records.
   */
  readonly waitsForSync: boolean;
  /**
   * A promise that resolves once every record appended since the last write
   * (the records of this tick: an ACK's REMOVE, a NACK's REQUEUE) is on the
   * device, sharing the tick's one fdatasync per queue with its publishes;
   * rejects with `StoreError` when one of them cannot be stored. Undefined
   * when nothing waits: no record appended, or a store that does not wait
   * (`waitsForSync` false). The same promise for every call of a tick with
   * the same queues appended to, so callers make no promise per message.
   */
  synced(): void | Promise<void>;
  /** Flushes and closes. */
  close(): Promise<void>;
}
