/**
 * The on-disk format of a queue's log, in one place: a segment file is a
 * header followed by records; every number is little-endian.
 *
 * Segment header (`SEGMENT_HEADER_FIXED_BYTES` + name + 4):
 *
 * | field      | type  | meaning                                              |
 * | ---------- | ----- | ---------------------------------------------------- |
 * | magic      | u32   | `SEGMENT_MAGIC` (the bytes `RLYQ`)                  |
 * | version    | u16   | `FORMAT_VERSION`                                     |
 * | headerSize | u16   | bytes of the whole header, checksum included         |
 * | seq        | u32   | segment number, also in the file name                |
 * | floorId    | f64   | highest message id the store knew when it was made   |
 * | createdAt  | f64   | epoch ms                                             |
 * | nameLen    | u16   | bytes of the queue name                              |
 * | name       | bytes | the queue name, `queue:orders`                       |
 * | crc        | u32   | CRC-32C of the header bytes before it                |
 *
 * Record (`RECORD_HEADER_BYTES` + `len`): `len u32 | crc u32 | type u8 | body`,
 * where `len` counts the type byte and the body and `crc` is the CRC-32C of
 * them. Records are idempotent assignments of a message's state (never
 * increments), so a record replayed twice, or written twice after a failed
 * write was retried, gives the same result.
 *
 * | type    | body                                                                    |
 * | ------- | ----------------------------------------------------------------------- |
 * | PUB     | the message (see `MESSAGE_FIXED_BYTES`), state READY                    |
 * | COPY    | the message again, with its current state; written by compaction       |
 * | DELIVER | id f64, deliveries u32: taken by a consumer (in flight)                 |
 * | REQUEUE | id f64, deliveries u32, dueAt f64: given back (dueAt 0: ready now)      |
 * | REMOVE  | id f64, reason u8 (`REASON_CODE`: acked ... replayed); final          |
 * | DEDUP   | id f64, dedupId as u16 length + UTF-8: the message's `dedup_id` (v2)   |
 *
 * A scheduled publish (`delay`/`deliver_at`) is a PUB followed by a REQUEUE
 * with deliveries 0 and its due time. Version 2 added DEDUP, written after the
 * PUB or COPY of a message that has a dedup id; a version 2 build reads
 * version 1 segments as they are (they hold no DEDUP), and writes new
 * segments as version 2, which a version 1 build refuses to start on rather
 * than cut off as corrupt.
 *
 * Message body: id f64, acceptedAt f64, expiresAt f64, dueAt f64, ttlMs u32,
 * deliveries u32, hdrBytes u32, priority u8, state u8, then correlationId,
 * replyTo and contentType as u16 length + UTF-8 (`STRING_ABSENT`: none), then
 * payloadLen u32 and the payload, which must end the record exactly.
 *
 * @module
 */
import { TTL_MS_MAX } from "../../config/mod.ts";
import { grow } from "../../protocol/mod.ts";
import { copyRange } from "../../runtime/mod.ts";
import { Message, MessageState } from "../message.ts";
import { type RemoveReason, StoreError } from "../store.ts";
import { crc32c } from "./crc32c.ts";

/** First four bytes of every segment file: `RLYQ`. */
export const SEGMENT_MAGIC = 0x51594c52;
/** Version of this format, written in new segments; a reader refuses segments of a newer version. */
export const FORMAT_VERSION = 2;
/** Oldest version this build reads. */
export const FORMAT_VERSION_MIN = 1;
/** Header bytes before the queue name. */
export const SEGMENT_HEADER_FIXED_BYTES = 30;
/** Bytes of the header checksum after the name. */
export const SEGMENT_HEADER_CRC_BYTES = 4;
/** Longest queue name a header holds (`DESTINATION_BYTES_MAX` with room to spare). */
export const SEGMENT_NAME_BYTES_MAX = 1024;
/** Bytes before a record's type byte: length u32 and checksum u32. */
export const RECORD_HEADER_BYTES = 8;
/** Largest record: the largest payload `--max-payload` allows (64 MiB) plus room for the fields. */
export const RECORD_BYTES_MAX = 64 * 1024 * 1024 + 64 * 1024;
/** Message body bytes before the three strings. */
export const MESSAGE_FIXED_BYTES = 46;
/** String length meaning "absent". */
export const STRING_ABSENT = 0xffff;
/** Longest string field (correlation id, reply-to, content type). */
export const STRING_BYTES_MAX = 4096;
/** Segment file name suffix; the stem is the zero-padded segment number. */
export const SEGMENT_SUFFIX = ".seg";
/** Most deliveries a record may carry: what `Message` packs in its flags (anything above is corruption). */
const DELIVERIES_MAX = 1 << 24;

/** Record kinds. */
export const RecordType = {
  PUB: 1,
  DELIVER: 2,
  REQUEUE: 3,
  REMOVE: 4,
  COPY: 5,
  DEDUP: 6,
} as const;
export type RecordType = typeof RecordType[keyof typeof RecordType];

/** Remove reasons as stored. */
export const REASON_CODE: Readonly<Record<RemoveReason, number>> = {
  acked: 1,
  expired: 2,
  dropped: 3,
  dead_lettered: 4,
  purged: 5,
  replayed: 6,
};
const REASONS: readonly (RemoveReason | undefined)[] = [
  undefined,
  "acked",
  "expired",
  "dropped",
  "dead_lettered",
  "purged",
  "replayed",
];

/** File name of segment `seq`. */
export function segmentFileName(seq: number): string {
  return String(seq).padStart(10, "0") + SEGMENT_SUFFIX;
}

/** Segment number of a file name, or undefined when it is not a segment. */
export function segmentSeq(fileName: string): number | undefined {
  const m = /^([0-9]{10})\.seg$/.exec(fileName);
  return m === null ? undefined : Number(m[1]);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A segment header's fields. */
export interface SegmentHeader {
  seq: number;
  floorId: number;
  createdAt: number;
  name: string;
}

/** Encodes a segment header. */
export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  const name = encoder.encode(h.name);
  if (name.length > SEGMENT_NAME_BYTES_MAX) throw new StoreError(`queue name too long: ${h.name}`);
  const size = SEGMENT_HEADER_FIXED_BYTES + name.length + SEGMENT_HEADER_CRC_BYTES;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setUint32(0, SEGMENT_MAGIC, true);
  v.setUint16(4, FORMAT_VERSION, true);
  v.setUint16(6, size, true);
  v.setUint32(8, h.seq, true);
  v.setFloat64(12, h.floorId, true);
  v.setFloat64(20, h.createdAt, true);
  v.setUint16(28, name.length, true);
  b.set(name, SEGMENT_HEADER_FIXED_BYTES);
  v.setUint32(size - 4, crc32c(b, 0, size - 4), true);
  return b;
}

/** Decodes and checks a segment header; returns it and its size, or why it is unreadable. */
export function decodeSegmentHeader(
  b: Uint8Array,
): { header: SegmentHeader; size: number } | { error: string; torn: boolean } {
  if (b.length < SEGMENT_HEADER_FIXED_BYTES) {
    return { error: `header cut short at ${b.length} bytes`, torn: true };
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0, true) !== SEGMENT_MAGIC) return { error: "bad magic", torn: false };
  const version = v.getUint16(4, true);
  if (version < FORMAT_VERSION_MIN || version > FORMAT_VERSION) {
    return {
      error:
        `format version ${version}, this build reads ${FORMAT_VERSION_MIN} to ${FORMAT_VERSION}`,
      torn: false,
    };
  }
  const size = v.getUint16(6, true);
  const nameLen = v.getUint16(28, true);
  if (size !== SEGMENT_HEADER_FIXED_BYTES + nameLen + SEGMENT_HEADER_CRC_BYTES) {
    return { error: `header size ${size} does not match its name length`, torn: false };
  }
  if (b.length < size) return { error: `header cut short at ${b.length} bytes`, torn: true };
  if (v.getUint32(size - 4, true) !== crc32c(b, 0, size - 4)) {
    return { error: "header checksum mismatch", torn: false };
  }
  let name: string;
  try {
    name = decoder.decode(
      b.subarray(SEGMENT_HEADER_FIXED_BYTES, SEGMENT_HEADER_FIXED_BYTES + nameLen),
    );
  } catch {
    return { error: "header name is not UTF-8", torn: false };
  }
  return {
    header: {
      seq: v.getUint32(8, true),
      floorId: v.getFloat64(12, true),
      createdAt: v.getFloat64(20, true),
      name,
    },
    size,
  };
}

/** Throws `StoreError` when a message cannot be stored faithfully (checked before writing). */
export function checkMessage(msg: Message): void {
  const bad = messageProblem(
    msg.id,
    msg.priority,
    msg.ttlMs,
    msg.expiresAt,
    msg.acceptedAt,
    msg.hdrBytes,
    msg.len,
  );
  if (bad !== undefined) throw new StoreError(`message ${msg.id} cannot be stored: ${bad}`);
}

function messageProblem(
  id: number,
  priority: number,
  ttlMs: number,
  expiresAt: number,
  acceptedAt: number,
  hdrBytes: number,
  payloadLen: number,
): string | undefined {
  if (!Number.isSafeInteger(id) || id < 0) return `bad id ${id}`;
  if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
    return `bad priority ${priority}`;
  }
  if (!Number.isInteger(ttlMs) || ttlMs < 0 || ttlMs > TTL_MS_MAX) return `bad ttl ${ttlMs}`;
  if (!Number.isFinite(expiresAt) || expiresAt < 0) return `bad expiry ${expiresAt}`;
  if (!Number.isFinite(acceptedAt) || acceptedAt < 0) return `bad accept time ${acceptedAt}`;
  if (!Number.isInteger(hdrBytes) || hdrBytes < 0 || hdrBytes > payloadLen) {
    return `bad header size ${hdrBytes}`;
  }
  if (payloadLen + MESSAGE_FIXED_BYTES + 3 * STRING_BYTES_MAX + 5 > RECORD_BYTES_MAX) {
    return `payload of ${payloadLen} bytes is over the record limit`;
  }
  return undefined;
}

/**
 * Appends records to a growable buffer, each checksummed as it is sealed.
 * The owner writes `bytes()` to the file and calls `clear()` once written.
 */
export class RecordWriter {
  #buf: Uint8Array<ArrayBuffer>;
  #view: DataView;
  #len = 0;

  constructor(initialBytes = 64 * 1024) {
    this.#buf = new Uint8Array(initialBytes);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Bytes appended and not cleared. */
  get length(): number {
    return this.#len;
  }

  /** The appended records (a view, valid until the next append). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  /** Forgets the appended bytes; gives back a buffer grown very large. */
  clear(): void {
    this.#len = 0;
    if (this.#buf.length > 8 * 1024 * 1024) {
      this.#buf = new Uint8Array(64 * 1024);
      this.#view = new DataView(this.#buf.buffer);
    }
  }

  /** Appends a PUB (state READY) or a COPY (with the message's current state). */
  message(type: typeof RecordType.PUB | typeof RecordType.COPY, msg: Message): void {
    const len = msg.len;
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const strings = (msg.correlationId?.length ?? 0) + (msg.replyTo?.length ?? 0) +
      (msg.contentType?.length ?? 0);
    const start = this.#begin(type, MESSAGE_FIXED_BYTES + 6 + 3 * strings + 4 + len);
    const v = this.#view;
    let p = start + 1;
    v.setFloat64(p, msg.id, true);
    v.setFloat64(p + 8, msg.acceptedAt, true);
    v.setFloat64(p + 16, msg.expiresAt, true);
    const state = type === RecordType.PUB ? MessageState.READY : msg.state;
    v.setFloat64(p + 24, state === MessageState.DELAYED ? msg.dueAt : 0, true);
    v.setUint32(p + 32, msg.ttlMs, true);
    v.setUint32(p + 36, type === RecordType.PUB ? 0 : msg.deliveries, true);
    v.setUint32(p + 40, msg.hdrBytes, true);
    this.#buf[p + 44] = msg.priority;
    this.#buf[p + 45] = state;
    p += MESSAGE_FIXED_BYTES;
    p = this.#string(p, msg.correlationId);
    p = this.#string(p, msg.replyTo);
    p = this.#string(p, msg.contentType);
    v.setUint32(p, len, true);
    p += 4;
    // The payload is a range of a shared buffer: copied without making a view where it is small.
    this.#seal(start, copyRange(this.#buf, p, msg.buf, msg.off, len));
  }

  /** Appends a DELIVER: the message is in flight with `deliveries` attempts. */
  deliver(id: number, deliveries: number): void {
    const start = this.#begin(RecordType.DELIVER, 12);
    this.#view.setFloat64(start + 1, id, true);
    this.#view.setUint32(start + 9, deliveries, true);
    this.#seal(start, start + 13);
  }

  /** Appends a REQUEUE: back in the queue, ready at `dueAt` (0: now). */
  requeue(id: number, deliveries: number, dueAt: number): void {
    const start = this.#begin(RecordType.REQUEUE, 20);
    this.#view.setFloat64(start + 1, id, true);
    this.#view.setUint32(start + 9, deliveries, true);
    this.#view.setFloat64(start + 13, dueAt, true);
    this.#seal(start, start + 21);
  }

  /** Appends a REMOVE: the message is gone for `reason`. */
  remove(id: number, reason: RemoveReason): void {
    const start = this.#begin(RecordType.REMOVE, 9);
    this.#view.setFloat64(start + 1, id, true);
    this.#buf[start + 9] = REASON_CODE[reason];
    this.#seal(start, start + 10);
  }

  /** Appends a DEDUP: message `id` was published with `dedupId`. */
  dedup(id: number, dedupId: string): void {
    const start = this.#begin(RecordType.DEDUP, 8 + 2 + 3 * dedupId.length);
    this.#view.setFloat64(start + 1, id, true);
    this.#seal(start, this.#string(start + 9, dedupId));
  }

  /** Reserves room for a record of at most `bodyMax` body bytes; returns where its type byte goes. */
  #begin(type: RecordType, bodyMax: number): number {
    const need = this.#len + RECORD_HEADER_BYTES + 1 + bodyMax;
    if (need > this.#buf.length) {
      this.#buf = grow(this.#buf, this.#len, need);
      this.#view = new DataView(this.#buf.buffer);
    }
    const typeAt = this.#len + RECORD_HEADER_BYTES;
    this.#buf[typeAt] = type;
    return typeAt;
  }

  /** Fills in length and checksum of the record whose type byte is at `typeAt`. */
  #seal(typeAt: number, end: number): void {
    const len = end - typeAt;
    if (len > RECORD_BYTES_MAX) throw new StoreError(`record of ${len} bytes is over the limit`);
    this.#view.setUint32(typeAt - 8, len, true);
    this.#view.setUint32(typeAt - 4, crc32c(this.#buf, typeAt, end), true);
    this.#len = end;
  }

  #string(p: number, s: string | undefined): number {
    if (s === undefined) {
      this.#view.setUint16(p, STRING_ABSENT, true);
      return p + 2;
    }
    let n = 0;
    const buf = this.#buf;
    for (; n < s.length; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      buf[p + 2 + n] = c;
    }
    if (n < s.length) n = encoder.encodeInto(s, buf.subarray(p + 2, p + 2 + 3 * s.length)).written;
    if (n > STRING_BYTES_MAX) throw new StoreError(`string field of ${n} bytes is over the limit`);
    this.#view.setUint16(p, n, true);
    return p + 2 + n;
  }
}

/** One record read back from a segment. */
export type ReadRecord =
  | { type: typeof RecordType.PUB | typeof RecordType.COPY; msg: Message }
  | { type: typeof RecordType.DELIVER; id: number; deliveries: number }
  | { type: typeof RecordType.REQUEUE; id: number; deliveries: number; dueAt: number }
  | { type: typeof RecordType.REMOVE; id: number; reason: RemoveReason }
  | { type: typeof RecordType.DEDUP; id: number; dedupId: string };

/** Result of reading at an offset: a record and where the next begins, or why there is none. */
export type ReadResult =
  | { ok: true; record: ReadRecord; next: number }
  | { ok: false; torn: boolean; error: string };

/**
 * Reads and validates the record at `pos` of `b`: length in range and inside
 * the buffer (else a torn tail), checksum, a known type, every field in range,
 * the body consumed exactly. A PUB or COPY payload is copied out (into a
 * slab, see `Message.retain`), so no message keeps a segment's read buffer
 * alive and the buffer can be reused. `view` is a DataView of `b` to reuse.
 */
export function readRecord(
  b: Uint8Array,
  pos: number,
  dest: string,
  view?: DataView,
): ReadResult {
  if (b.length - pos < RECORD_HEADER_BYTES) {
    return { ok: false, torn: true, error: "record header cut short" };
  }
  const v = view ?? new DataView(b.buffer, b.byteOffset, b.byteLength);
  const len = v.getUint32(pos, true);
  if (len < 1 || len > RECORD_BYTES_MAX) {
    return { ok: false, torn: false, error: `record length ${len} out of range` };
  }
  const start = pos + RECORD_HEADER_BYTES;
  const end = start + len;
  if (end > b.length) return { ok: false, torn: true, error: "record cut short" };
  if (v.getUint32(pos + 4, true) !== crc32c(b, start, end)) {
    return { ok: false, torn: false, error: "record checksum mismatch" };
  }
  const record = decodeBody(b, v, start, end, dest);
  if (typeof record === "string") return { ok: false, torn: false, error: record };
  return { ok: true, record, next: end };
}

function decodeBody(
  b: Uint8Array,
  v: DataView,
  start: number,
  end: number,
  dest: string,
): ReadRecord | string {
  const type = b[start];
  const len = end - start - 1;
  const p = start + 1;
  switch (type) {
    case RecordType.PUB:
    case RecordType.COPY:
      return decodeMessage(b, v, p, end, dest, type);
    case RecordType.DELIVER: {
      if (len !== 12) return `DELIVER of ${len} bytes`;
      const id = v.getFloat64(p, true);
      const deliveries = v.getUint32(p + 8, true);
      if (!Number.isSafeInteger(id) || deliveries > DELIVERIES_MAX) return "bad DELIVER fields";
      return { type, id, deliveries };
    }
    case RecordType.REQUEUE: {
      if (len !== 20) return `REQUEUE of ${len} bytes`;
      const id = v.getFloat64(p, true);
      const deliveries = v.getUint32(p + 8, true);
      const dueAt = v.getFloat64(p + 12, true);
      if (!Number.isSafeInteger(id) || deliveries > DELIVERIES_MAX) return "bad REQUEUE fields";
      if (!Number.isFinite(dueAt) || dueAt < 0) return `bad REQUEUE due time ${dueAt}`;
      return { type, id, deliveries, dueAt };
    }
    case RecordType.REMOVE: {
      if (len !== 9) return `REMOVE of ${len} bytes`;
      const id = v.getFloat64(p, true);
      const reason = REASONS[b[p + 8]];
      if (!Number.isSafeInteger(id) || reason === undefined) return "bad REMOVE fields";
      return { type, id, reason };
    }
    case RecordType.DEDUP: {
      if (len < 10) return `DEDUP of ${len} bytes`;
      const id = v.getFloat64(p, true);
      const n = v.getUint16(p + 8, true);
      if (!Number.isSafeInteger(id) || n === 0 || n > STRING_BYTES_MAX || 10 + n !== len) {
        return "bad DEDUP fields";
      }
      try {
        return { type, id, dedupId: decoder.decode(b.subarray(p + 10, p + 10 + n)) };
      } catch {
        return "DEDUP id is not UTF-8";
      }
    }
    default:
      return `unknown record type ${type}`;
  }
}

function decodeMessage(
  b: Uint8Array,
  v: DataView,
  p: number,
  end: number,
  dest: string,
  type: typeof RecordType.PUB | typeof RecordType.COPY,
): ReadRecord | string {
  if (end - p < MESSAGE_FIXED_BYTES + 10) return "message record too short";
  const id = v.getFloat64(p, true);
  const acceptedAt = v.getFloat64(p + 8, true);
  const expiresAt = v.getFloat64(p + 16, true);
  const dueAt = v.getFloat64(p + 24, true);
  const ttlMs = v.getUint32(p + 32, true);
  const deliveries = v.getUint32(p + 36, true);
  const hdrBytes = v.getUint32(p + 40, true);
  const priority = b[p + 44];
  const state = b[p + 45];
  let q = p + MESSAGE_FIXED_BYTES;
  const strings: (string | undefined)[] = [];
  for (let i = 0; i < 3; i++) {
    if (q + 2 > end) return "message strings cut short";
    const n = v.getUint16(q, true);
    q += 2;
    if (n === STRING_ABSENT) {
      strings.push(undefined);
      continue;
    }
    if (n > STRING_BYTES_MAX || q + n > end) return "bad string length";
    try {
      strings.push(decoder.decode(b.subarray(q, q + n)));
    } catch {
      return "string is not UTF-8";
    }
    q += n;
  }
  if (q + 4 > end) return "payload length cut short";
  const payloadLen = v.getUint32(q, true);
  q += 4;
  if (q + payloadLen !== end) return "payload length does not match the record";
  const bad = messageProblem(id, priority, ttlMs, expiresAt, acceptedAt, hdrBytes, payloadLen);
  if (bad !== undefined) return bad;
  if (state > MessageState.DELAYED) return `bad state ${state}`;
  if (deliveries > DELIVERIES_MAX) return `bad deliveries ${deliveries}`;
  if (!Number.isFinite(dueAt) || dueAt < 0) return `bad due time ${dueAt}`;
  if (type === RecordType.PUB && (state !== MessageState.READY || deliveries !== 0)) {
    return "PUB of a message already delivered";
  }
  const msg = new Message(
    id,
    dest,
    b.subarray(q, end),
    hdrBytes,
    priority,
    ttlMs,
    expiresAt,
    strings[0],
    strings[1],
    strings[2],
    acceptedAt,
  );
  // Out of the segment's read buffer (which would otherwise stay alive for it), into a slab.
  msg.retain();
  msg.deliveries = deliveries;
  msg.state = state as MessageState;
  msg.dueAt = dueAt;
  return { type, msg };
}
