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
 * @module
 */
import { assert } from "../../assert.ts";
import { COMPACT_STEP_BYTES_MAX, COMPACT_STEP_INTERVAL_MS } from "../../config/mod.ts";
import type { FileSystem } from "../../runtime/mod.ts";
import { MemoryQueueStore } from "../memory.ts";
import { type Message, MessageState } from "../message.ts";
import { type QueueStore, type RemoveReason, StoreError } from "../store.ts";
import {
  checkMessage,
  encodeSegmentHeader,
  MESSAGE_FIXED_BYTES,
  RECORD_HEADER_BYTES,
  RecordType,
  RecordWriter,
  segmentFileName,
} from "./format.ts";
import type { RecoveredLog } from "./recovery.ts";
import type { FsyncPolicy, LogFn } from "./types.ts";

/** What a queue's log needs from the store around it. */
export interface QueueLogHost {
  readonly fs: FileSystem;
  readonly policy: FsyncPolicy;
  readonly segmentBytes: number;
  readonly log: LogFn;
  /** Highest message id the store knows (written into new segment headers). */
  floorId(): number;
  /** Records were appended: write them at the end of the tick. */
  dirty(q: LogQueueStore): void;
  /** Writes every dirty queue now, in the order they became dirty. */
  writeDirty(): void;
  /** A write or sync failed: call `retry()` later. */
  failed(q: LogQueueStore): void;
}

/** Publish confirmations waiting on one write and the fsync after it. */
class Batch {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (e: StoreError) => void;
  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A caller may drop the promise (the broker's dead-letter path does):
    // a failure must then not become an unhandled rejection that ends the process.
    this.promise.catch(() => {});
  }
}

/** One segment file and the live messages whose latest PUB or COPY is in it. */
class Segment {
  /** Open descriptor of the active segment; sealed segments are closed. */
  fd: number | undefined = undefined;
  live = 0;
  liveBytes = 0;
  /**
   * Every message that had its PUB or COPY here, settled ones included (they
   * are DONE): compaction finds the live ones in it. An array slot per
   * message, not a map by id: ids are doubles, and a million-entry map of
   * them costs more than the rest of the log's work (measured).
   */
  msgs: Message[] = [];
  /** Entries of `msgs` before it that compaction already went past. */
  scanned = 0;
  constructor(
    readonly seq: number,
    readonly path: string,
    public size: number,
    /** Lowest id of a PUB in it; Infinity until it has one. */
    public firstPubId: number,
  ) {}
}

/** Bytes a message's PUB record takes (the accounting unit of live data). */
function recordBytes(m: Message): number {
  return RECORD_HEADER_BYTES + 1 + MESSAGE_FIXED_BYTES + 10 + m.len +
    (m.correlationId?.length ?? 0) + (m.replyTo?.length ?? 0) + (m.contentType?.length ?? 0);
}

/** A queue whose messages survive a restart. */
export class LogQueueStore implements QueueStore {
  readonly name: string;
  /** Directory of its segments. */
  readonly dir: string;
  #host: QueueLogHost;
  #fs: FileSystem;
  #inner: MemoryQueueStore;
  /** Oldest first; the last one is the active one when `#active` is set. */
  #segments: Segment[] = [];
  #active: Segment | undefined;
  /** Segments with a PUB, by strictly increasing first PUB id: finds a message's segment by id. */
  #pubIndex: Segment[] = [];
  /** Live messages whose segment the id does not tell (copied by compaction, or ids out of order). */
  #moved = new Map<number, Segment>();
  #out = new RecordWriter();
  #batch: Batch | undefined;
  #unsynced: Batch[] = [];
  #needsSync = false;
  #failure: StoreError | undefined;
  #syncFailed = false;
  /** When >= 0, a write failed part-way: the active file is cut back to this before the next one. */
  #goodSize = -1;
  #replaying = false;
  #nextSeq = 1;
  #diskBytes = 0;
  #liveBytes = 0;
  #maxId = 0;
  #lastCompactAt = 0;
  #closed = false;

  constructor(name: string, dir: string, host: QueueLogHost, recovered?: RecoveredLog) {
    this.name = name;
    this.dir = dir;
    this.#host = host;
    this.#fs = host.fs;
    this.#inner = new MemoryQueueStore(name, (m, r) => this.#removed(m, r));
    if (recovered !== undefined) this.#restore(recovered, Date.now());
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
    return this.#diskBytes;
  }
  /** Number of segment files. */
  get segmentCount(): number {
    return this.#segments.length;
  }
  /** Why writes fail now, or undefined. */
  get failure(): StoreError | undefined {
    return this.#failure;
  }

  push(msg: Message): void | Promise<void> {
    if (this.#failure !== undefined) {
      throw new StoreError(`the log of ${this.name} is failing: ${this.#failure.message}`);
    }
    if (this.#closed) throw new StoreError("the store is closed");
    checkMessage(msg);
    const seg = this.#active ?? this.#open();
    this.#out.message(RecordType.PUB, msg);
    this.#inner.push(msg);
    this.#home(msg, seg);
    if (msg.id > this.#maxId) this.#maxId = msg.id;
    this.#host.dirty(this);
    if (this.#host.policy !== "always") return;
    return (this.#batch ??= new Batch()).promise;
  }

  take(now: number): Message | undefined {
    const msg = this.#inner.take(now);
    if (msg !== undefined) {
      this.#out.deliver(msg.id, msg.deliveries);
      this.#host.dirty(this);
    }
    return msg;
  }

  remove(msg: Message, reason: RemoveReason): void {
    this.#inner.remove(msg, reason);
  }

  requeue(msg: Message, delayMs: number, now: number): void {
    if (msg.state !== MessageState.INFLIGHT) return;
    this.#inner.requeue(msg, delayMs, now);
    const state = msg.state as MessageState; // requeue changed it
    if (state === MessageState.DONE) return; // expired: logged by the remove hook
    this.#out.requeue(msg.id, msg.deliveries, state === MessageState.DELAYED ? msg.dueAt : 0);
    this.#host.dirty(this);
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

  // --- writing (called by the store) ---

  /** Writes the records appended since the last write; true when written bytes wait for a sync. */
  write(): boolean {
    if (this.#failure !== undefined || this.#closed) return false;
    if (this.#out.length > 0 || this.#batch !== undefined) this.#writeNow();
    return this.#needsSync;
  }

  /** Starts forcing what was written to the device; resolves (never rejects) when done. */
  sync(): Promise<void> | undefined {
    const fd = this.#active?.fd;
    if (!this.#needsSync || fd === undefined) return undefined;
    const batches = this.#unsynced;
    this.#unsynced = [];
    this.#needsSync = false;
    return this.#fs.datasync(fd).then(
      () => {
        for (const b of batches) b.resolve();
      },
      (e) => {
        this.#needsSync = true;
        this.#syncFailed = true;
        const err = this.#fail(e, "fsync");
        for (const b of batches) b.reject(err);
      },
    );
  }

  /** Upkeep after a write, never while a sync runs: seals a full segment, deletes dead ones, compacts. */
  maintain(now: number): void {
    if (this.#failure !== undefined || this.#closed) return;
    const a = this.#active;
    if (a !== undefined && a.size >= this.#host.segmentBytes && this.#out.length === 0) {
      if (!this.#seal(a)) return;
    }
    this.#dropDeadHeads();
    for (const seg of this.#segments) {
      // Let the shells of settled messages go once they are most of a list (amortised O(1)).
      if (seg.msgs.length > 2 * seg.live + 1024) {
        seg.msgs = seg.msgs.filter((m) =>
          m.state !== MessageState.DONE && this.#segmentOf(m) === seg
        );
        seg.scanned = 0;
      }
    }
    if (this.#garbageHigh() && now - this.#lastCompactAt >= COMPACT_STEP_INTERVAL_MS) {
      this.#lastCompactAt = now;
      this.#compactStep();
    }
  }

  /** Tries again after a failure; true when the log works again. */
  retry(): boolean {
    if (this.#closed) return true;
    if (!this.#writeNow()) return false;
    if (this.#syncFailed) {
      try {
        if (this.#active?.fd !== undefined) this.#fs.datasyncSync(this.#active.fd);
      } catch (e) {
        this.#fail(e, "fsync");
        return false;
      }
      this.#syncFailed = false;
      this.#synced();
    }
    if (this.#failure !== undefined) {
      this.#host.log("info", `the log of ${this.name} works again`);
      this.#failure = undefined;
    }
    return true;
  }

  /** Final write and sync, then closes the file (store close). */
  close(): void {
    if (this.#closed) return;
    if (this.#out.length > 0) this.#writeNow();
    const a = this.#active;
    if (a?.fd !== undefined) {
      try {
        if (this.#needsSync && this.#host.policy !== "never") this.#fs.datasyncSync(a.fd);
        this.#synced();
      } catch (e) {
        const err = this.#fail(e, "fsync");
        for (const b of this.#unsynced.splice(0)) b.reject(err);
      }
      this.#closeFd(a);
    }
    if (this.#failure === undefined) this.#dropDeadHeads(); // upkeep a sync may have put off
    const err = new StoreError("the store closed before the message was stored");
    this.#batch?.reject(err);
    this.#batch = undefined;
    this.#closed = true;
  }

  /**
   * Deletes the log of an empty queue (the broker dropped it): writes what is
   * pending first, so that a crash half-way leaves REMOVE records for whatever
   * survives, then deletes the segments oldest first. False when it could not.
   */
  retire(): boolean {
    if (this.#inner.size > 0) return false;
    if (this.#out.length > 0 && !this.#writeNow()) return false;
    this.#synced(); // every message is settled: nothing is left to confirm
    if (this.#active !== undefined) this.#closeFd(this.#active);
    this.#active = undefined;
    this.#dropDeadHeads();
    if (this.#segments.length > 0) return false;
    try {
      this.#fs.removeDir(this.dir);
    } catch { /* other files (set-aside .corrupt segments) keep it */ }
    this.#closed = true;
    return true;
  }

  // --- internals ---

  #writeNow(): boolean {
    const fs = this.#fs;
    let seg: Segment;
    try {
      seg = this.#active ?? this.#open();
      if (this.#goodSize >= 0) {
        fs.truncate(seg.fd!, this.#goodSize);
        this.#diskBytes -= seg.size - this.#goodSize;
        seg.size = this.#goodSize;
        this.#goodSize = -1;
      }
    } catch (e) {
      this.#fail(e, "write");
      return false;
    }
    const bytes = this.#out.bytes();
    if (bytes.length > 0) {
      try {
        fs.write(seg.fd!, bytes);
      } catch (e) {
        // Part of it may be in the file: cut back before the next attempt.
        this.#goodSize = seg.size;
        this.#fail(e, "write");
        return false;
      }
      seg.size += bytes.length;
      this.#diskBytes += bytes.length;
      this.#out.clear();
      this.#needsSync = true;
    }
    if (this.#batch !== undefined) {
      this.#unsynced.push(this.#batch);
      this.#batch = undefined;
    }
    return true;
  }

  #fail(e: unknown, what: string): StoreError {
    const why = e instanceof Error ? e.message : String(e);
    const err = e instanceof StoreError
      ? e
      : new StoreError(`${what} failed: ${why}`, { cause: e });
    if (this.#failure === undefined) {
      this.#host.log(
        "error",
        `the log of ${this.name} failed (${err.message}); publishes to it get STORE_FAILED ` +
          `and its records are kept in memory and retried`,
      );
    }
    this.#failure = err;
    this.#batch?.reject(err);
    this.#batch = undefined;
    this.#host.failed(this);
    return err;
  }

  /** Opens a new active segment. */
  #open(): Segment {
    const fs = this.#fs;
    const seq = this.#nextSeq++;
    const path = `${this.dir}/${segmentFileName(seq)}`;
    const header = encodeSegmentHeader({
      seq,
      floorId: this.#host.floorId(),
      createdAt: Date.now(),
      name: this.name,
    });
    let fd: number | undefined;
    try {
      fs.mkdirp(this.dir);
      fd = fs.openAppend(path);
      fs.write(fd, header);
      if (this.#host.policy !== "never") fs.syncDir(this.dir);
    } catch (e) {
      if (fd !== undefined) {
        try {
          fs.close(fd);
          fs.remove(path);
        } catch { /* recovery removes a torn segment */ }
      }
      throw new StoreError(`cannot create ${path}: ${e instanceof Error ? e.message : e}`, {
        cause: e,
      });
    }
    const seg = new Segment(seq, path, header.length, Infinity);
    seg.fd = fd;
    this.#segments.push(seg);
    this.#active = seg;
    this.#diskBytes += header.length;
    return seg;
  }

  /** Forces and closes a full active segment; the next append opens a new one. */
  #seal(a: Segment): boolean {
    try {
      if (this.#needsSync && this.#host.policy !== "never") this.#fs.datasyncSync(a.fd!);
    } catch (e) {
      this.#syncFailed = true;
      const err = this.#fail(e, "fsync");
      for (const b of this.#unsynced.splice(0)) b.reject(err);
      return false;
    }
    this.#synced();
    this.#closeFd(a);
    this.#active = undefined;
    return true;
  }

  #synced(): void {
    this.#needsSync = false;
    for (const b of this.#unsynced.splice(0)) b.resolve();
  }

  #closeFd(seg: Segment): void {
    if (seg.fd === undefined) return;
    try {
      this.#fs.close(seg.fd);
    } catch { /* already closed */ }
    seg.fd = undefined;
  }

  /** Records that `msg`'s latest PUB or COPY went to `seg`. */
  #home(msg: Message, seg: Segment): void {
    const id = msg.id;
    const last = this.#pubIndex.length === 0
      ? undefined
      : this.#pubIndex[this.#pubIndex.length - 1];
    if (seg.firstPubId === Infinity && (last === undefined || id > last.firstPubId)) {
      seg.firstPubId = id;
      this.#pubIndex.push(seg);
    } else if (last !== seg || id < seg.firstPubId) {
      this.#moved.set(id, seg);
    }
    this.#count(msg, seg);
  }

  #count(msg: Message, seg: Segment): void {
    const n = recordBytes(msg);
    seg.live++;
    seg.liveBytes += n;
    this.#liveBytes += n;
    seg.msgs.push(msg);
  }

  /** The segment a live message's latest PUB or COPY is in. */
  #segmentOf(msg: Message): Segment {
    return this.#moved.get(msg.id) ?? this.#lookup(msg.id);
  }

  /** Forgets a live message (called once per message leaving); returns the segment it was in. */
  #uncount(msg: Message): Segment {
    const id = msg.id;
    let seg = this.#moved.get(id);
    if (seg !== undefined) this.#moved.delete(id);
    else seg = this.#lookup(id);
    const n = recordBytes(msg);
    seg.live--;
    seg.liveBytes -= n;
    this.#liveBytes -= n;
    return seg;
  }

  /** The segment of a message that is not in `#moved`: the last with a first PUB id at most `id`. */
  #lookup(id: number): Segment {
    const idx = this.#pubIndex;
    let lo = 0;
    let hi = idx.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (idx[mid].firstPubId <= id) lo = mid;
      else hi = mid - 1;
    }
    return idx[lo];
  }

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
    this.#out.remove(msg.id, reason);
    this.#uncount(msg);
    this.#host.dirty(this);
  }

  /** Deletes segments from the front while they hold no live message. */
  #dropDeadHeads(): void {
    const segs = this.#segments;
    while (segs.length > 0 && segs[0] !== this.#active && segs[0].live === 0) {
      const h = segs[0];
      try {
        this.#fs.remove(h.path);
      } catch (e) {
        this.#host.log("warn", `cannot delete ${h.path}: ${e instanceof Error ? e.message : e}`);
        return;
      }
      segs.shift();
      if (this.#pubIndex[0] === h) this.#pubIndex.shift();
      this.#diskBytes -= h.size;
    }
  }

  /** More dead than live bytes on disk, and at least a segment's worth: worth compacting. */
  #garbageHigh(): boolean {
    const segs = this.#segments;
    if (segs.length < 2 || segs[0] === this.#active) return false;
    const garbage = this.#diskBytes - this.#liveBytes;
    return garbage > this.#liveBytes && garbage > this.#host.segmentBytes;
  }

  /**
   * Copies (some of) the oldest segment's live messages to the active one,
   * forces them to disk, and deletes the segment once none is left in it.
   */
  #compactStep(): void {
    const head = this.#segments[0];
    const moving: Message[] = [];
    let bytes = 0;
    const msgs = head.msgs;
    let i = head.scanned;
    for (; i < msgs.length && moving.length < head.live && bytes < COMPACT_STEP_BYTES_MAX; i++) {
      const m = msgs[i];
      // Settled, or copied away by an earlier step: not here any more.
      if (m.state === MessageState.DONE || this.#segmentOf(m) !== head) continue;
      moving.push(m);
      bytes += recordBytes(m);
    }
    head.scanned = i;
    let a: Segment;
    try {
      a = this.#active ?? this.#open();
    } catch (e) {
      this.#fail(e, "compaction");
      return;
    }
    for (const m of moving) {
      this.#uncount(m);
      this.#out.message(RecordType.COPY, m);
      this.#moved.set(m.id, a);
      this.#count(m, a);
    }
    if (!this.#writeNow()) return;
    if (this.#host.policy !== "never") {
      // The copies must be on the device before the originals are deleted.
      try {
        this.#fs.datasyncSync(a.fd!);
      } catch (e) {
        this.#syncFailed = true;
        this.#fail(e, "fsync");
        return;
      }
    }
    this.#synced();
    this.#dropDeadHeads();
  }

  /** Rebuilds the queue from its recovered log: no records are written while it does. */
  #restore(r: RecoveredLog, now: number): void {
    this.#replaying = true;
    const segs = new Map<object, Segment>();
    for (const f of r.segments) {
      const s = new Segment(f.seq, f.path, f.size, f.firstPubId);
      segs.set(f, s);
      this.#segments.push(s);
      this.#diskBytes += f.size;
      const last = this.#pubIndex[this.#pubIndex.length - 1];
      if (f.firstPubId !== Infinity && (last === undefined || f.firstPubId > last.firstPubId)) {
        this.#pubIndex.push(s);
      }
      this.#nextSeq = f.seq + 1;
    }
    this.#maxId = r.maxId;
    // The live messages by segment, each in the segment of its latest PUB or COPY.
    const homes: Segment[] = new Array(r.messages.length);
    for (let i = 0; i < r.messages.length; i++) {
      const m = r.messages[i];
      const found = r.homes.get(m.id);
      const seg = found === undefined ? this.#lookup(m.id) : segs.get(found)!;
      if (found !== undefined && (this.#pubIndex.length === 0 || this.#lookup(m.id) !== seg)) {
        this.#moved.set(m.id, seg);
      }
      homes[i] = seg;
    }
    for (let i = 0; i < r.messages.length; i++) this.#count(r.messages[i], homes[i]);
    // Delayed messages go in first, each alone in the store, so that `take`
    // returns exactly it and `requeue` delays it to its recorded due time.
    // Mostly sorted already (TimSort makes that a linear pass).
    const byId = r.messages.slice().sort((a, b) => a.id - b.id);
    for (const m of byId) {
      if (m.state !== MessageState.DELAYED || m.dueAt <= now || m.expired(now)) continue;
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
      if (m.state === MessageState.DELAYED && m.dueAt > now && !m.expired(now)) continue;
      m.state = MessageState.READY;
      this.#inner.push(m);
    }
    this.#replaying = false;
    this.#dropDeadHeads();
  }
}
