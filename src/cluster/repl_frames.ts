/**
 * The frames of a replication connection (`REPL <node-id>` on the cluster
 * port): text lines in the style of the wire protocol, and one binary body,
 * a message as the log store writes it (a checksummed COPY record of
 * src/storage/log/format.ts, so a follower validates every field it stores).
 *
 * The node that dials is the **leader** of the queues it talks about; the
 * node dialled is a **follower** (a replica). Both write on the connection,
 * each side one writer.
 *
 * ```
 * leader to follower
 * REPL <node-id>\r\n                                  first line: who dials
 * PUB <queue> <epoch> <lsn> <bytes>\r\n<record>\r\n   a message (lsn 0: part of a snapshot); its
 *                                                   COPY record, then a DEDUP one if it has a dedup_id
 * DEL <queue> <epoch> <lsn> <msg-id>\r\n              a message left (ACK, expiry, drop, purge)
 * DUE <queue> <epoch> <lsn> <msg-id> <due-at>\r\n     a message given back by a NACK with a delay:
 *                                                   not to be delivered again before <due-at> (ms)
 * SNAP <queue> <epoch>\r\n                            a snapshot starts: PUBs with lsn 0 follow
 * DONE <queue> <epoch> <lsn>\r\n                      ... ends: the copy is the leader's state at lsn
 * FETCH <queue> <epoch>\r\n                           a new leader: promise <epoch>, say what you hold
 * PULL <queue> <epoch>\r\n                            ... and send it (SNAP, PUBs, DONE back)
 *
 * follower to leader
 * ACK <frames>\r\n                                     frames applied (and stored) so far
 * FENCED <queue> <epoch>\r\n                          refused: <epoch> is the highest it promised
 * HAVE <queue> <epoch> <data-epoch> <lsn>\r\n          answer to FETCH <epoch>
 * SNAP, PUB, DONE                                     answer to PULL
 * ```
 *
 * Every leader-to-follower frame but `REPL` counts one toward `ACK`.
 * `ReplParser` is pure: bytes in, frames out; it checks the line and body
 * limits before it buffers.
 *
 * @module
 */
import { CLUSTER_REPL_FRAME_BYTES_MAX, CLUSTER_REPL_LINE_BYTES_MAX } from "../config/mod.ts";
import { destinationError } from "../protocol/mod.ts";
import { format, type Message, MessageState } from "../storage/mod.ts";
import { DURABLES_PREFIX } from "./topic_leader.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A parsed replication frame. */
export type ReplFrame =
  | { op: "REPL"; node: string }
  | { op: "PUB"; queue: string; epoch: number; lsn: number; msg: Message }
  | { op: "DEL"; queue: string; epoch: number; lsn: number; id: number }
  | { op: "DUE"; queue: string; epoch: number; lsn: number; id: number; dueAt: number }
  | { op: "SNAP"; queue: string; epoch: number }
  | { op: "DONE"; queue: string; epoch: number; lsn: number }
  | { op: "FETCH" | "PULL"; queue: string; epoch: number }
  | { op: "ACK"; frames: number }
  | { op: "FENCED"; queue: string; epoch: number }
  | { op: "HAVE"; queue: string; epoch: number; dataEpoch: number; lsn: number };

/** A frame that breaks the replication protocol: the connection is cut. */
export class ReplProtocolError extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = "ReplProtocolError";
  }
}

/** Encodes a line frame (everything but `PUB`). */
export function replLine(op: string, ...args: (string | number)[]): Uint8Array {
  return encoder.encode(`${op} ${args.join(" ")}\r\n`);
}

/**
 * Frames waiting to be sent, in one growable buffer: a message's record is
 * encoded by the log format's writer and copied in behind its head line, a
 * removal is one line; nothing is allocated per frame but the head's text.
 * `take()` hands the bytes out (the same bytes go to every follower).
 */
export class FrameWriter {
  #buf = new Uint8Array(64 * 1024);
  #len = 0;
  #frames = 0;
  #record = new format.RecordWriter();

  /** Frames written and not taken. */
  get frames(): number {
    return this.#frames;
  }

  /**
   * A `PUB` frame of `msg`, with its current state (in flight, delayed,
   * ready), or delayed until `dueAt` when given (a copy's ready message whose
   * leader delayed it: `ReplicatedQueueStore.dues`).
   */
  pub(queue: string, epoch: number, lsn: number, msg: Message, dueAt = 0): void {
    const w = this.#record;
    w.clear();
    if (dueAt === 0) w.message(format.RecordType.COPY, msg);
    else {
      // Encoded as delayed after a delivery (a NACK follows one; a replica's copy counts none),
      // which a receiver keeps as a due time even for a message it holds (`applyPub`), then put
      // back as it was (synchronously: nobody sees the difference).
      const state = msg.state;
      const was = msg.dueAt;
      const deliveries = msg.deliveries;
      msg.state = MessageState.DELAYED;
      msg.dueAt = dueAt;
      if (deliveries === 0) msg.deliveries = 1;
      w.message(format.RecordType.COPY, msg);
      msg.state = state;
      msg.dueAt = was;
      msg.deliveries = deliveries;
    }
    // Its dedup_id goes with it, so that a later leader rebuilds the queue's dedup window.
    if (msg.dedupId !== undefined) w.dedup(msg.id, msg.dedupId);
    const record = w.bytes();
    this.#ascii(`PUB ${queue} ${epoch} ${lsn} ${record.length}\r\n`);
    this.#room(record.length + 2);
    this.#buf.set(record, this.#len);
    this.#len += record.length;
    this.#buf[this.#len++] = 13;
    this.#buf[this.#len++] = 10;
    this.#frames++;
  }

  /** A line frame (`DEL`, `SNAP`, `DONE`, ...). */
  line(op: string, ...args: (string | number)[]): void {
    this.#ascii(`${op} ${args.join(" ")}\r\n`);
    this.#frames++;
  }

  /** The frames written (a copy), and how many; the writer starts over. */
  take(): { bytes: Uint8Array; frames: number } {
    const out = { bytes: this.#buf.slice(0, this.#len), frames: this.#frames };
    this.#len = 0;
    this.#frames = 0;
    if (this.#buf.length > 8 * 1024 * 1024) this.#buf = new Uint8Array(64 * 1024);
    return out;
  }

  /** Queue names and numbers are ASCII (checked where they come from). */
  #ascii(s: string): void {
    this.#room(s.length);
    const b = this.#buf;
    let at = this.#len;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
    this.#len = at;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}

const OPS_LINE: Record<string, number> = {
  REPL: 1,
  DEL: 4,
  DUE: 5,
  SNAP: 2,
  DONE: 3,
  FETCH: 2,
  PULL: 2,
  ACK: 1,
  FENCED: 2,
  HAVE: 4,
};

/** Reads frames out of the bytes of one replication connection. */
export class ReplParser {
  #pending: Uint8Array = new Uint8Array(0);
  /** The last queue name read, and its bytes: a connection's records mostly name one queue. */
  #queue = "";
  #queueBytes = new Uint8Array(0);

  /** The queue name in `buf[from, to)`, checked (its string made once per change of queue). */
  #queueAt(buf: Uint8Array, from: number, to: number, pos: number, end: number): string {
    const known = this.#queueBytes;
    if (to - from === known.length) {
      let i = 0;
      while (i < known.length && buf[from + i] === known[i]) i++;
      if (i === known.length) return this.#queue;
    }
    const line = decoder.decode(buf.subarray(pos, end));
    this.#queue = queueArg(decoder.decode(buf.subarray(from, to)), line);
    this.#queueBytes = buf.slice(from, to);
    return this.#queue;
  }

  /** Adds `chunk` and returns the complete frames. Throws `ReplProtocolError`. */
  push(chunk: Uint8Array): ReplFrame[] {
    let buf = chunk;
    if (this.#pending.length > 0) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending, 0);
      buf.set(chunk, this.#pending.length);
    }
    const frames: ReplFrame[] = [];
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0 || nl - pos > CLUSTER_REPL_LINE_BYTES_MAX) {
        if (buf.length - pos > CLUSTER_REPL_LINE_BYTES_MAX) {
          throw new ReplProtocolError("control line over CLUSTER_REPL_LINE_BYTES_MAX");
        }
        break;
      }
      const end = nl > pos && buf[nl - 1] === 13 ? nl - 1 : nl;
      if (
        buf[pos] === 0x50 && buf[pos + 1] === 0x55 && buf[pos + 2] === 0x42 && buf[pos + 3] === 32
      ) {
        // PUB <queue> <epoch> <lsn> <bytes>: read from the bytes, no line string or split per record.
        const q0 = pos + 4;
        const q1 = spaceAt(buf, q0, end);
        const e1 = spaceAt(buf, q1 + 1, end);
        const l1 = spaceAt(buf, e1 + 1, end);
        const epoch = numAt(buf, q1 + 1, e1);
        const lsn = numAt(buf, e1 + 1, l1);
        const bytes = numAt(buf, l1 + 1, end);
        if (q1 === q0 || epoch < 0 || lsn < 0 || bytes < 0) {
          throw bad(decoder.decode(buf.subarray(pos, end)));
        }
        const queue = this.#queueAt(buf, q0, q1, pos, end);
        if (bytes > CLUSTER_REPL_FRAME_BYTES_MAX) {
          throw new ReplProtocolError("PUB over CLUSTER_REPL_FRAME_BYTES_MAX");
        }
        const body = nl + 1;
        if (buf.length < body + bytes + 2) break; // the record is still coming
        if (buf[body + bytes] !== 13 || buf[body + bytes + 1] !== 10) {
          throw bad(decoder.decode(buf.subarray(pos, end)));
        }
        const rec = buf.subarray(body, body + bytes);
        const r = format.readRecord(rec, 0, queue);
        if (!r.ok || r.record.type !== format.RecordType.COPY) {
          throw new ReplProtocolError(
            `bad PUB record for ${queue}: ${r.ok ? "not a COPY record" : r.error}`,
          );
        }
        const msg = r.record.msg;
        if (r.next !== bytes) {
          // The message's DEDUP record, and nothing else, may follow.
          const d = format.readRecord(rec, r.next, queue);
          if (
            !d.ok || d.next !== bytes || d.record.type !== format.RecordType.DEDUP ||
            d.record.id !== msg.id
          ) {
            throw new ReplProtocolError(
              `bad PUB record for ${queue}: ${d.ok ? "not a COPY and its DEDUP" : d.error}`,
            );
          }
          msg.setDedupId(d.record.dedupId);
        }
        frames.push({ op: "PUB", queue, epoch, lsn, msg });
        pos = body + bytes + 2;
        continue;
      }
      const line = decoder.decode(buf.subarray(pos, end));
      const parts = line.split(" ");
      const op = parts[0];
      if (op === "PUB") throw bad(line);
      const n = OPS_LINE[op];
      if (n === undefined || parts.length !== n + 1) throw bad(line);
      frames.push(lineFrame(op, parts, line));
      pos = nl + 1;
    }
    this.#pending = pos === buf.length ? new Uint8Array(0) : buf.slice(pos);
    return frames;
  }
}

function lineFrame(op: string, p: string[], line: string): ReplFrame {
  switch (op) {
    case "REPL":
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(p[1])) throw bad(line);
      return { op, node: p[1] };
    case "ACK":
      return { op, frames: num(p[1], line) };
    case "DEL":
    case "DUE": {
      const f = {
        queue: queueArg(p[1], line),
        epoch: num(p[2], line),
        lsn: num(p[3], line),
        id: num(p[4], line),
      };
      return op === "DEL" ? { op, ...f } : { op, ...f, dueAt: num(p[5], line) };
    }
    case "DONE":
      return { op, queue: queueArg(p[1], line), epoch: num(p[2], line), lsn: num(p[3], line) };
    case "HAVE":
      return {
        op,
        queue: queueArg(p[1], line),
        epoch: num(p[2], line),
        dataEpoch: num(p[3], line),
        lsn: num(p[4], line),
      };
    default:
      return {
        op: op as "SNAP" | "FETCH" | "PULL" | "FENCED",
        queue: queueArg(p[1], line),
        epoch: num(p[2], line),
      };
  }
}

function bad(line: string): ReplProtocolError {
  return new ReplProtocolError(`bad frame ${JSON.stringify(line.slice(0, 64))}`);
}

/** Where the next space is in `buf[from, end)`, or `end`. */
function spaceAt(buf: Uint8Array, from: number, end: number): number {
  let i = from;
  while (i < end && buf[i] !== 32) i++;
  return i;
}

/** The non-negative safe integer in decimal in `buf[from, to)`, or -1. */
function numAt(buf: Uint8Array, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return Number.isSafeInteger(n) ? n : -1;
}

/** A non-negative safe integer in decimal, or the frame is bad. */
function num(s: string, line: string): number {
  if (s.length === 0 || s.length > 16) throw bad(line);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) throw bad(line);
    n = n * 10 + d;
  }
  if (!Number.isSafeInteger(n)) throw bad(line);
  return n;
}

/** The last queue name found good: a connection's frames mostly name one queue, checked once. */
let goodQueue = "";

function queueArg(s: string, line: string): string {
  if (s === goodQueue) return s;
  // A queue, a declared topic's log, or its durables' positions (topic_leader.ts).
  const name = s.startsWith(DURABLES_PREFIX) ? s.slice(DURABLES_PREFIX.length) : s;
  if (!name.startsWith("queue:") && !name.startsWith("topic:")) throw bad(line);
  if (name !== s && !name.startsWith("topic:")) throw bad(line);
  if (destinationError(name, false) !== undefined) throw bad(line);
  return goodQueue = s;
}
