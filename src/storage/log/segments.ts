/**
 * The segment files of one queue's log and the accounting of where each live
 * message's latest PUB or COPY lies: what deletion and compaction decide on.
 * `LogQueueStore` does the writing; this knows which segment holds what.
 *
 * A message's segment is found from its id: in-order PUB ids grow through
 * the log, so it is the last segment whose first PUB id is at most the id.
 * The few messages for which that is wrong (copied by compaction, or
 * published out of id order) are kept in a map.
 *
 * @module
 */
import { COMPACT_STEP_BYTES_MAX } from "../../config/mod.ts";
import type { FileSystem } from "../../runtime/mod.ts";
import { type Message, MessageState } from "../message.ts";
import { MESSAGE_FIXED_BYTES, RECORD_HEADER_BYTES } from "./format.ts";
import type { RecoveredLog } from "./recovery.ts";
import type { LogFn } from "./types.ts";

/** One segment file and the live messages whose latest PUB or COPY is in it. */
export class Segment {
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

/** The segments of one queue, oldest first, and which one each live message is in. */
export class Segments {
  #fs: FileSystem;
  #log: LogFn;
  /** Oldest first; the last one is the active one when the queue has one open. */
  #list: Segment[] = [];
  /** Segments with a PUB, by strictly increasing first PUB id: finds a message's segment by id. */
  #pubIndex: Segment[] = [];
  /** Live messages whose segment the id does not tell (copied by compaction, or ids out of order). */
  #moved = new Map<number, Segment>();
  #nextSeq = 1;
  #diskBytes = 0;
  #liveBytes = 0;

  constructor(fs: FileSystem, log: LogFn) {
    this.#fs = fs;
    this.#log = log;
  }

  /** Bytes of the segment files. */
  get diskBytes(): number {
    return this.#diskBytes;
  }

  /** Number of segment files. */
  get count(): number {
    return this.#list.length;
  }

  /** Every segment, oldest first. */
  all(): readonly Segment[] {
    return this.#list;
  }

  /** The number of the next segment to create. */
  takeSeq(): number {
    return this.#nextSeq++;
  }

  /** A segment file was created (its header is its first `size` bytes). */
  add(seg: Segment): void {
    this.#list.push(seg);
    this.#diskBytes += seg.size;
  }

  /** The segment's file is now `size` bytes (appended to, or cut back). */
  resize(seg: Segment, size: number): void {
    this.#diskBytes += size - seg.size;
    seg.size = size;
  }

  /** Records that `msg`'s PUB went to `seg`. */
  home(msg: Message, seg: Segment): void {
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

  /** Records that `msg`, just uncounted, has its COPY in `seg` now (compaction). */
  moveTo(msg: Message, seg: Segment): void {
    this.#moved.set(msg.id, seg);
    this.#count(msg, seg);
  }

  /** Forgets a live message (called once per message leaving); returns the segment it was in. */
  uncount(msg: Message): Segment {
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

  /** Lets the shells of settled messages go once they are most of a segment's list (amortised O(1)). */
  trimSettled(): void {
    for (const seg of this.#list) {
      if (seg.msgs.length > 2 * seg.live + 1024) {
        seg.msgs = seg.msgs.filter((m) =>
          m.state !== MessageState.DONE && this.#segmentOf(m) === seg
        );
        seg.scanned = 0;
      }
    }
  }

  /** Deletes segments from the front, up to `active`, while they hold no live message. */
  dropDeadHeads(active: Segment | undefined): void {
    const segs = this.#list;
    while (segs.length > 0 && segs[0] !== active && segs[0].live === 0) {
      const h = segs[0];
      try {
        this.#fs.remove(h.path);
      } catch (e) {
        this.#log("warn", `cannot delete ${h.path}: ${e instanceof Error ? e.message : e}`);
        return;
      }
      segs.shift();
      if (this.#pubIndex[0] === h) this.#pubIndex.shift();
      this.#diskBytes -= h.size;
    }
  }

  /** More dead than live bytes on disk, and more than `segmentBytes` of them: worth compacting. */
  garbageHigh(active: Segment | undefined, segmentBytes: number): boolean {
    const segs = this.#list;
    if (segs.length < 2 || segs[0] === active) return false;
    const garbage = this.#diskBytes - this.#liveBytes;
    return garbage > this.#liveBytes && garbage > segmentBytes;
  }

  /**
   * The next live messages of the oldest segment to copy away, at most
   * `COMPACT_STEP_BYTES_MAX` of them; the segment remembers how far it got.
   */
  compactionBatch(): Message[] {
    const head = this.#list[0];
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
    return moving;
  }

  /** Takes over the segments recovery found, each live message in the segment of its latest PUB or COPY. */
  restore(r: RecoveredLog): void {
    const segs = new Map<object, Segment>();
    for (const f of r.segments) {
      const s = new Segment(f.seq, f.path, f.size, f.firstPubId);
      segs.set(f, s);
      this.#list.push(s);
      this.#diskBytes += f.size;
      const last = this.#pubIndex[this.#pubIndex.length - 1];
      if (f.firstPubId !== Infinity && (last === undefined || f.firstPubId > last.firstPubId)) {
        this.#pubIndex.push(s);
      }
      this.#nextSeq = f.seq + 1;
    }
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
}
