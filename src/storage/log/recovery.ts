/**
 * Recovery of one queue's log: read its segments oldest first, check every
 * record, replay them into the state of each message, and cut torn or
 * corrupt tails off (with a log line) so the next append never follows
 * garbage. Everything before the first bad record of a segment is kept.
 *
 * @module
 */
import type { FileSystem } from "../../runtime/fs.ts";
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
  /** Lowest id of a PUB record in it (Infinity: none). */
  firstPubId: number;
}

/** A message alive at the end of the log, with the segment of its last PUB or COPY. */
export interface FoundMessage {
  msg: Message;
  seg: FoundSegment;
}

/** What the log of one queue holds. */
export interface RecoveredLog {
  segments: FoundSegment[];
  /** Live messages; `msg.state` is READY, INFLIGHT (delivered, unacked) or DELAYED (`msg.dueAt`). */
  messages: FoundMessage[];
  /** Highest message id seen in any record or segment header. */
  maxId: number;
  records: number;
  /** Bytes cut off torn or corrupt tails. */
  truncatedBytes: number;
}

/** Reads the segments in `dir` and replays them; `name` is the queue the directory belongs to. */
export function recoverLog(fs: FileSystem, dir: string, name: string, log: LogFn): RecoveredLog {
  const seqs: number[] = [];
  for (const f of fs.readDir(dir)) {
    const seq = segmentSeq(f);
    if (seq !== undefined) seqs.push(seq);
  }
  seqs.sort((a, b) => a - b);
  const state = new Map<number, FoundMessage>();
  const out: RecoveredLog = { segments: [], messages: [], maxId: 0, records: 0, truncatedBytes: 0 };
  for (const seq of seqs) {
    const path = `${dir}/${segmentFileName(seq)}`;
    const seg = readSegment(fs, path, seq, name, state, out, log);
    if (seg !== undefined) out.segments.push(seg);
  }
  for (const m of state.values()) out.messages.push(m);
  return out;
}

function readSegment(
  fs: FileSystem,
  path: string,
  seq: number,
  name: string,
  state: Map<number, FoundMessage>,
  out: RecoveredLog,
  log: LogFn,
): FoundSegment | undefined {
  const b = fs.readFile(path);
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
  let pos = h.size;
  while (pos < b.length) {
    const r = readRecord(b, pos, name);
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
    apply(r.record, seg, state, out);
    out.records++;
    pos = r.next;
  }
  return seg;
}

function apply(
  rec: ReadRecord,
  seg: FoundSegment,
  state: Map<number, FoundMessage>,
  out: RecoveredLog,
): void {
  switch (rec.type) {
    case RecordType.PUB:
    case RecordType.COPY: {
      const id = rec.msg.id;
      if (id > out.maxId) out.maxId = id;
      if (rec.type === RecordType.PUB && id < seg.firstPubId) seg.firstPubId = id;
      // A second PUB of an id is a write retried after a failure: the records
      // after it are repeated too, so it simply starts the message over.
      state.set(id, { msg: rec.msg, seg });
      return;
    }
    case RecordType.DELIVER: {
      const m = state.get(rec.id);
      if (m === undefined) return; // its PUB was in a segment already deleted
      m.msg.deliveries = rec.deliveries;
      m.msg.state = MessageState.INFLIGHT;
      return;
    }
    case RecordType.REQUEUE: {
      const m = state.get(rec.id);
      if (m === undefined) return;
      m.msg.deliveries = rec.deliveries;
      m.msg.dueAt = rec.dueAt;
      m.msg.state = rec.dueAt > 0 ? MessageState.DELAYED : MessageState.READY;
      return;
    }
    case RecordType.REMOVE:
      state.delete(rec.id);
      return;
  }
}
