/**
 * The durable store of one queue: a `MemoryQueueStore` that does the queue's
 * work, plus an append-only log of what happened to each message, in
 * segment files of `queues/<name>/`. Records are appended to a buffer as the
 * broker calls in; the store (`LogStore`) writes every dirty buffer once per
 * tick and forces it to disk as its fsync policy says.
 *
 * Space is given back two ways. A segment whose messages are all gone is
 * deleted once every older segment is gone too (deleting only from the front
 * keeps each REMOVE, DELIVER and REQUEUE record, which always follows its
 * message's PUB, as long as that PUB). When the log holds more dead bytes
 * than live ones, compaction copies the live messages of the oldest segment
 * to the active one (COPY records carry their current state), forces them to
 * disk, and deletes it; that bounds the log to about twice the live data, so
 * a restart replays little more than it must.
 *
 * The work is shared: this file is the queue and decides what to append and
 * when to seal, delete or compact; `segments.ts` knows which segment holds
 * which message; `segment_writer.ts` gets the records onto the disk.
 *
 * @module
 */
import { assert } from "../../assert.ts";
import { COMPACT_STEP_INTERVAL_MS } from "../../config/mod.ts";
import type { Clock, FileSystem } from "../../runtime/mod.ts";
import { MemoryQueueStore } from "../memory.ts";
import { type Message, MessageState } from "../message.ts";
import { type QueueStore, type RemoveReason, type ScanCursor, StoreError } from "../store.ts";
import { checkMessage, RecordType } from "./format.ts";
import type { RecoveredLog } from "./recovery.ts";
import { SegmentWriter } from "./segment_writer.ts";
import { type Segment, Segments } from "./segments.ts";
import type { FsyncPolicy, LogFn } from "./types.ts";

/** What a queue's log needs from the store around it. */
export interface QueueLogHost {
  readonly fs: FileSystem;
  readonly policy: FsyncPolicy;
  readonly segmentBytes: number;
  readonly log: LogFn;
  /** The clock of segment headers and of the restore. */
  readonly clock: Clock;
  /** Highest message id the store knows (written into new segment headers). */
  floorId(): number;
  /** Records were appended: write them at the end of the tick. */
  dirty(q: LogQueueStore): void;
  /** Writes every dirty queue now, in the order they became dirty. */
  writeDirty(): void;
  /** A write or sync failed: call `retry()` later. */
  failed(q: LogQueueStore): void;
}

/** A queue whose messages survive a restart. */
export class LogQueueStore implements QueueStore {
  readonly name: string;
  /** Directory of its segments. */
  readonly dir: string;
  #host: QueueLogHost;
  #fs: FileSystem;
  #inner: MemoryQueueStore;
  #segments: Segments;
  #writer: SegmentWriter;
  #replaying = false;
  #maxId = 0;
  #lastCompactAt = 0;
  #closed = false;
  #dedup: readonly { id: number; dedupId: string }[] = [];

  constructor(name: string, dir: string, host: QueueLogHost, recovered?: RecoveredLog) {
    this.name = name;
    this.dir = dir;
    this.#host = host;
    this.#fs = host.fs;
    this.#segments = new Segments(host.fs, host.log);
    this.#writer = new SegmentWriter({
      name,
      dir,
      fs: host.fs,
      policy: host.policy,
      log: host.log,
      clock: host.clock,
      segments: this.#segments,
      floorId: () => host.floorId(),
      failed: () => host.failed(this),
    });
    this.#inner = new MemoryQueueStore(name, (m, r) => this.#removed(m, r));
    if (recovered !== undefined) this.#restore(recovered, host.clock.now());
  }

  get ready(): number {
    return this.#inner.ready;
  }
  get inflight(): number {
    return this.#inner.inflight;
  }
  get delayed(): number {
    return this.#inner.delayed;
  }
  get scheduled(): number {
    return this.#inner.scheduled;
  }
  get size(): number {
    return this.#inner.size;
  }
  get bytes(): number {
    return this.#inner.bytes;
  }
  get removed(): Readonly<Record<RemoveReason, number>> {
    return this.#inner.removed;
  }
  /** Highest id stored in this queue. */
  get maxId(): number {
    return this.#maxId;
  }
  /** Bytes of its segment files. */
  get diskBytes(): number {
    return this.#segments.diskBytes;
  }
  /** Number of segment files. */
  get segmentCount(): number {
    return this.#segments.count;
  }
  /** Why writes fail now, or undefined. */
  get failure(): StoreError | undefined {
    return this.#writer.failure;
  }

  push(msg: Message, dueAt = 0): void | Promise<void> {
    const failure = this.#writer.failure;
    if (failure !== undefined) {
      throw new StoreError(`the log of ${this.name} is failing: ${failure.message}`);
    }
    if (this.#closed) throw new StoreError("the store is closed");
    checkMessage(msg);
    const seg = this.#writer.activeSegment();
    this.#writer.out.message(RecordType.PUB, msg);
    // A scheduled message: the PUB, then a REQUEUE to its due time with no
    // delivery yet, in the same write (recovery reads it as delayed).
    if (dueAt !== 0) this.#writer.out.requeue(msg.id, 0, dueAt);
    const dedupId = msg.dedupId;
    if (dedupId !== undefined) this.#writer.out.dedup(msg.id, dedupId);
    this.#inner.push(msg, dueAt);
    this.#segments.home(msg, seg);
    if (msg.id > this.#maxId) this.#maxId = msg.id;
    this.#host.dirty(this);
    if (this.#host.policy !== "always") return;
    return this.#writer.confirmation();
  }
  take(now: number): Message | undefined {
    const msg = this.#inner.take(now);
    if (msg !== undefined) {
      this.#writer.out.deliver(msg.id, msg.deliveries);
      this.#host.dirty(this);
    }
    return msg;
  }

  takeMatching(
    cursor: ScanCursor,
    match: (m: Message) => boolean,
    now: number,
  ): Message | undefined {
    const msg = this.#inner.takeMatching(cursor, match, now);
    if (msg !== undefined) {
      this.#writer.out.deliver(msg.id, msg.deliveries);
      this.#host.dirty(this);
    }
    return msg;
  }

  newCursor(): ScanCursor {
    return this.#inner.newCursor();
  }

  remove(msg: Message, reason: RemoveReason): void {
    this.#inner.remove(msg, reason);
  }

  requeue(msg: Message, delayMs: number, now: number): void {
    if (msg.state !== MessageState.INFLIGHT) return;
    this.#inner.requeue(msg, delayMs, now);
    const state = msg.state as MessageState; // requeue changed it
    if (state === MessageState.DONE) return; // expired: logged by the remove hook
    this.#writer.out.requeue(
      msg.id,
      msg.deliveries,
      state === MessageState.DELAYED ? msg.dueAt : 0,
    );
    this.#host.dirty(this);
  }

  /** Each message leaves through the remove hook: one REMOVE record apiece. */
  purge(): number {
    return this.#inner.purge();
  }

  dropOldest(): Message | undefined {
    return this.#inner.dropOldest();
  }

  sweep(now: number): number {
    return this.#inner.sweep(now);
  }

  nextDueAt(): number {
    return this.#inner.nextDueAt();
  }

  messages(): Iterable<Message> {
    return this.#inner.messages();
  }

  recoveredDedupIds(): readonly { id: number; dedupId: string }[] {
    const d = this.#dedup;
    this.#dedup = []; // read once, at start: not kept for the life of the queue
    return d;
  }

  // --- writing (called by the store) ---

  /**
   * The promise of the records appended since the last write (under
   * `always`): the same batch as this tick's publishes. A log that is failing
   * rejects at once: its records wait in memory for a retry, and a reply held
   * on them would hold every later reply of its connection.
   */
  synced(): Promise<void> {
    const failure = this.#writer.failure;
    if (failure === undefined && !this.#closed) return this.#writer.confirmation();
    const err = new StoreError(
      failure === undefined
        ? "the store is closed"
        : `the log of ${this.name} is failing: ${failure.message}`,
    );
    const p = Promise.reject(err);
    p.catch(() => {}); // a caller may drop it
    return p;
  }

  /** Writes the records appended since the last write; true when written bytes wait for a sync. */
  write(): boolean {
    if (this.#writer.failure !== undefined || this.#closed) return false;
    if (this.#writer.pending) this.#writer.write();
    return this.#writer.needsSync;
  }

  /** Starts forcing what was written to the device; resolves (never rejects) when done. */
  sync(): Promise<void> | undefined {
    return this.#writer.sync();
  }

  /** Upkeep after a write, never while a sync runs: seals a full segment, deletes dead ones, compacts. */
  maintain(now: number): void {
    if (this.#writer.failure !== undefined || this.#closed) return;
    if (!this.#writer.sealIfFull(this.#host.segmentBytes)) return;
    this.#segments.dropDeadHeads(this.#writer.active);
    this.#segments.trimSettled();
    if (
      this.#segments.garbageHigh(this.#writer.active, this.#host.segmentBytes) &&
      now - this.#lastCompactAt >= COMPACT_STEP_INTERVAL_MS
    ) {
      this.#lastCompactAt = now;
      this.#compactStep();
    }
  }

  /** Tries again after a failure; true when the log works again. */
  retry(): boolean {
    if (this.#closed) return true;
    return this.#writer.retry();
  }

  /** Final write and sync, then closes the file (store close). */
  close(): void {
    if (this.#closed) return;
    this.#writer.close();
    // Upkeep a sync may have put off.
    if (this.#writer.failure === undefined) this.#segments.dropDeadHeads(this.#writer.active);
    this.#writer.abandon();
    this.#closed = true;
  }

  /**
   * Deletes the log of an empty queue (the broker dropped it): writes what is
   * pending first, so that a crash half-way leaves REMOVE records for whatever
   * survives, then deletes the segments oldest first. False when it could not.
   */
  retire(): boolean {
    if (this.#inner.size > 0) return false;
    if (!this.#writer.retire()) return false;
    this.#segments.dropDeadHeads(undefined);
    if (this.#segments.count > 0) return false;
    try {
      this.#fs.removeDir(this.dir);
    } catch { /* other files (set-aside .corrupt segments) keep it */ }
    this.#closed = true;
    return true;
  }

  // --- internals ---

  /**
   * The remove hook of the inner store: every way out of the queue passes
   * here. The record waits for the tick's write like every other; the server
   * calls `Store.writePending()` before each socket write, so the ACK's OK
   * cannot leave before its REMOVE reaches the operating system (a crash of
   * the process in between would bring an acknowledged message back). Every
   * dirty queue is written then, in order: a dead-lettered message's copy,
   * pushed to the DLQ just before, never reaches the disk after its REMOVE.
   */
  #removed(msg: Message, reason: RemoveReason): void {
    if (this.#replaying) return;
    this.#writer.out.remove(msg.id, reason);
    this.#segments.uncount(msg);
    this.#host.dirty(this);
  }

  /**
   * Copies (some of) the oldest segment's live messages to the active one,
   * forces them to disk, and deletes the segment once none is left in it.
   */
  #compactStep(): void {
    const moving = this.#segments.compactionBatch();
    let a: Segment;
    try {
      a = this.#writer.activeSegment();
    } catch (e) {
      this.#writer.fail(e, "compaction");
      return;
    }
    for (const m of moving) {
      this.#segments.uncount(m);
      this.#writer.out.message(RecordType.COPY, m);
      if (m.dedupId !== undefined) this.#writer.out.dedup(m.id, m.dedupId);
      this.#segments.moveTo(m, a);
    }
    if (!this.#writer.write()) return;
    // The copies must be on the device before the originals are deleted.
    if (!this.#writer.syncNow()) return;
    this.#segments.dropDeadHeads(this.#writer.active);
  }

  /** Rebuilds the queue from its recovered log: no records are written while it does. */
  #restore(r: RecoveredLog, now: number): void {
    this.#replaying = true;
    this.#segments.restore(r);
    this.#maxId = r.maxId;
    this.#dedup = r.dedup;
    // Delayed messages go in first, each alone in the store, so that `take`
    // returns exactly it and `requeue` delays it to its recorded due time.
    // Mostly sorted already (TimSort makes that a linear pass).
    const byId = r.messages.slice().sort((a, b) => a.id - b.id);
    for (const m of byId) {
      if (m.state !== MessageState.DELAYED || m.expired(now)) continue;
      if (m.deliveries === 0) {
        // Scheduled, never delivered: it waits for its time, and one that
        // fell due while the broker was down is made visible by the next
        // sweep, in due order with the others.
        this.#inner.push(m, m.dueAt);
        continue;
      }
      if (m.dueAt <= now) continue;
      const deliveries = m.deliveries;
      const dueAt = m.dueAt; // take() sets the delivery time, which shares the field
      m.state = MessageState.READY;
      this.#inner.push(m);
      const taken = this.#inner.take(now);
      assert(taken === m, () => `restore of ${this.name}: took ${taken?.id}, not ${m.id}`);
      this.#inner.requeue(m, dueAt - now, now);
      m.deliveries = deliveries;
    }
    // Unacked (in flight) messages are ready again: redelivered with their count.
    for (const m of byId) {
      if (
        m.state === MessageState.DELAYED && !m.expired(now) && (m.deliveries === 0 || m.dueAt > now)
      ) continue;
      m.state = MessageState.READY;
      this.#inner.push(m);
    }
    this.#replaying = false;
    this.#segments.dropDeadHeads(this.#writer.active);
  }
}
