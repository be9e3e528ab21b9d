/**
 * Recovery of one queue's log: read its segments oldest first, check every
 * record, replay them into the state of each message, and cut torn or
 * corrupt tails off (with a log line) so the next append never follows
 * garbage. Everything before the first bad record of a segment is kept.
 *
 * @module
 */
import type { FileSystem } from "../../runtime/mod.ts";
import { type Message, MessageState } from "../message.ts";
import { StoreError } from "../store.ts";
import {
  decodeSegmentHeader,
  type ReadRecord,
  readRecord,
  RecordType,
  segmentFileName,
  segmentSeq,
} from "./format.ts";
import type { LogFn } from "./types.ts";

/** A segment file as recovery found it. */
export interface FoundSegment {
  seq: number;
  path: string;
  /** Bytes of the file once its bad tail is cut. */
  size: number;
  /**
   * Lowest id of an in-order PUB in it (Infinity: none). In-order PUB ids
   * grow through the log, so a message whose latest record is such a PUB is
   * in the last segment whose `firstPubId` is at most its id.
   */
  firstPubId: number;
}

/** What the log of one queue holds. */
export interface RecoveredLog {
  segments: FoundSegment[];
  /**
   * Live messages, mostly in id order; `msg.state` is READY, INFLIGHT
   * (delivered, unacked) or DELAYED (`msg.dueAt`).
   */
  messages: Message[];
  /** The segment of each live message that `firstPubId` does not tell (COPY, out-of-order PUB). */
  homes: Map<number, FoundSegment>;
  /** Highest message id seen in any record or segment header. */
  maxId: number;
  records: number;
  /** Bytes cut off torn or corrupt tails. */
  truncatedBytes: number;
  /** DEDUP records in log order (settled messages included): the dedup window's ids. */
  dedup: { id: number; dedupId: string }[];
}

/**
 * Messages by id while replaying. PUB ids grow through a log, so most go in
 * a sorted array found by binary search; the few that do not (COPY records,
 * writes repeated after a failure) go in a map. A plain map of a million ids
 * (doubles, not small integers) costs several times more (measured).
 */
class IdIndex {
  #ids = new Float64Array(1024);
  #items: (Message | undefined)[] = [];
  #extra = new Map<number, Message>();

  get(id: number): Message | undefined {
    const i = this.#find(id);
    return i >= 0 ? this.#items[i] : this.#extra.get(id);
  }

  set(id: number, m: Message): void {
    const n = this.#items.length;
    if (n === 0 || id > this.#ids[n - 1]) {
      if (n === this.#ids.length) {
        const bigger = new Float64Array(n * 2);
        bigger.set(this.#ids);
        this.#ids = bigger;
      }
      this.#ids[n] = id;
      this.#items.push(m);
      return;
    }
    const i = this.#find(id);
    if (i >= 0) this.#items[i] = m;
    else this.#extra.set(id, m);
  }

  delete(id: number): void {
    const i = this.#find(id);
    if (i >= 0) this.#items[i] = undefined;
    else this.#extra.delete(id);
  }

  /** Live entries: the sorted ones in id order, then the others. */
  values(): Message[] {
    const out: Message[] = [];
    for (const m of this.#items) if (m !== undefined) out.push(m);
    for (const m of this.#extra.values()) out.push(m);
    return out;
  }

  #find(id: number): number {
    const ids = this.#ids;
    let lo = 0;
    let hi = this.#items.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const x = ids[mid];
      if (x === id) return mid;
      if (x < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** Reads the segments in `dir` and replays them; `name` is the queue the directory belongs to. */
export function recoverLog(fs: FileSystem, dir: string, name: string, log: LogFn): RecoveredLog {
  const seqs: number[] = [];
  for (const f of fs.readDir(dir)) {
    const seq = segmentSeq(f);
    if (seq !== undefined) seqs.push(seq);
  }
  seqs.sort((a, b) => a - b);
  const state = new IdIndex();
  const out: RecoveredLog = {
    segments: [],
    messages: [],
    homes: new Map(),
    maxId: 0,
    records: 0,
    truncatedBytes: 0,
    dedup: [],
  };
  const replay: Replay = { state, out, lastPubId: -1 };
  // One read buffer for every segment: records copy out what they keep.
  const scratch = { buf: new Uint8Array(0) };
  for (const seq of seqs) {
    const path = `${dir}/${segmentFileName(seq)}`;
    const seg = readSegment(fs, path, seq, name, replay, log, scratch);
    if (seg !== undefined) out.segments.push(seg);
  }
  out.messages = state.values();
  return out;
}

/** Replay state across the segments of one log. */
interface Replay {
  state: IdIndex;
  out: RecoveredLog;
  /** Highest PUB id so far: a PUB above it is in order. */
  lastPubId: number;
}

function readSegment(
  fs: FileSystem,
  path: string,
  seq: number,
  name: string,
  replay: Replay,
  log: LogFn,
  scratch: { buf: Uint8Array },
): FoundSegment | undefined {
  const out = replay.out;
  const b = fs.readFile(path, scratch.buf);
  if (b.buffer !== scratch.buf.buffer) scratch.buf = new Uint8Array(b.buffer);
  const h = decodeSegmentHeader(b);
  if ("error" in h) {
    if (h.torn) {
      // Cut off while it was being created: it never held a record.
      log("warn", `${path}: ${h.error}; removing the empty segment`);
      fs.remove(path);
      return undefined;
    }
    if (h.error.startsWith("format version")) {
      throw new StoreError(
        `${path}: ${h.error}; refusing to start on a log this build cannot read`,
      );
    }
    log(
      "error",
      `${path}: ${h.error}; set aside as ${path}.corrupt, its records are not recovered`,
    );
    fs.rename(path, `${path}.corrupt`);
    return undefined;
  }
  if (h.header.name !== name || h.header.seq !== seq) {
    log("error", `${path}: header names ${h.header.name} #${h.header.seq}; set aside as .corrupt`);
    fs.rename(path, `${path}.corrupt`);
    return undefined;
  }
  if (h.header.floorId > out.maxId) out.maxId = h.header.floorId;
  const seg: FoundSegment = { seq, path, size: b.length, firstPubId: Infinity };
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = h.size;
  while (pos < b.length) {
    const r = readRecord(b, pos, name, view);
    if (!r.ok) {
      const what = r.torn ? "torn tail" : "corrupt record";
      log(
        "warn",
        `${path}: ${what} at offset ${pos} (${r.error}); truncated ${b.length - pos} bytes, ` +
          `the ${out.records} records before it are recovered`,
      );
      fs.truncatePath(path, pos);
      out.truncatedBytes += b.length - pos;
      seg.size = pos;
      break;
    }
    apply(r.record, seg, replay);
    out.records++;
    pos = r.next;
  }
  return seg;
}

function apply(rec: ReadRecord, seg: FoundSegment, replay: Replay): void {
  const { state, out } = replay;
  switch (rec.type) {
    case RecordType.PUB:
    case RecordType.COPY: {
      const id = rec.msg.id;
      if (id > out.maxId) out.maxId = id;
      if (rec.type === RecordType.PUB && id > replay.lastPubId) {
        replay.lastPubId = id;
        if (seg.firstPubId === Infinity) seg.firstPubId = id;
        out.homes.delete(id);
      } else {
        out.homes.set(id, seg);
      }
      // A second PUB of an id is a write retried after a failure: the records
      // after it are repeated too, so it simply starts the message over.
      state.set(id, rec.msg);
      return;
    }
    case RecordType.DELIVER: {
      const m = state.get(rec.id);
      if (m === undefined) return; // its PUB was in a segment already deleted
      m.deliveries = rec.deliveries;
      m.state = MessageState.INFLIGHT;
      return;
    }
    case RecordType.REQUEUE: {
      const m = state.get(rec.id);
      if (m === undefined) return;
      m.deliveries = rec.deliveries;
      m.dueAt = rec.dueAt;
      m.state = rec.dueAt > 0 ? MessageState.DELAYED : MessageState.READY;
      return;
    }
    case RecordType.REMOVE:
      state.delete(rec.id);
      out.homes.delete(rec.id);
      return;
    case RecordType.DEDUP: {
      out.dedup.push({ id: rec.id, dedupId: rec.dedupId });
      // A live message keeps it, so compaction copies it along.
      state.get(rec.id)?.setDedupId(rec.dedupId);
      return;
    }
  }
}
