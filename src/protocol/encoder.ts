/**
 * Bytes of server frames. Constant replies are encoded once; a message's MSG
 * line is split into a per-subscription head (`MSG <dest> sub_id:<sid>`) and a
 * per-message tail (` msg_id:<id> ... <size>\r\n`), each built once and reused
 * for every delivery.
 *
 * @module
 */
import { MSG_HEAD_SLAB_BYTES } from "../config/limits.ts";
import type { ErrorCode } from "./errors.ts";

const encoder = new TextEncoder();

/** `OK\r\n`. */
export const OK = encoder.encode("OK\r\n");
/** `PING\r\n`. */
export const PING = encoder.encode("PING\r\n");
/** `PONG\r\n`. */
export const PONG = encoder.encode("PONG\r\n");
/** The line end after a payload. */
export const CRLF = encoder.encode("\r\n");

/** `ERR <code> <text>\r\n`; the text loses any line end so one error is always one line. */
export function errFrame(code: ErrorCode, text: string): Uint8Array {
  return encoder.encode(`ERR ${code} ${text.replace(/[\r\n]+/g, " ")}\r\n`);
}

/** The slab the next MSG head is cut from, and where its free part starts. */
let headSlab = new Uint8Array(0);
let headOff = 0;

/**
 * The per-subscription head of a MSG line: a view into a shared slab. Every
 * small ArrayBuffer on Deno has a backing store of its own outside the heap
 * (with its allocator and bookkeeping overhead: 10,000 `Uint8Array(30)` grew
 * RSS by ~0.8 KiB each, views of one slab by ~0.15 KiB), and a subscription
 * keeps its head as long as it lives. Heads are never written after this.
 */
export function msgHead(dest: string, sid: string): Uint8Array {
  const s = `MSG ${dest} sub_id:${sid}`;
  const n = s.length;
  if (n > MSG_HEAD_SLAB_BYTES / 8) return ascii(s);
  if (headOff + n > headSlab.length) {
    headSlab = new Uint8Array(MSG_HEAD_SLAB_BYTES);
    headOff = 0;
  }
  const slab = headSlab;
  const at = headOff;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return encoder.encode(s); // its bytes so far in the slab are left unused
    slab[at + i] = c;
  }
  headOff = at + n;
  return slab.subarray(at, at + n);
}

/** The fields of a message that its MSG tail shows. */
export interface TailFields {
  id: number;
  priority: number;
  ttlMs: number;
  correlationId: string | undefined;
  replyTo: string | undefined;
  contentType: string | undefined;
  hdrBytes: number;
  size: number;
}

const MSG_ID = encoder.encode(" msg_id:");

/** Bytes the tail of a message without options can take at most. */
export const PLAIN_TAIL_BYTES_MAX = MSG_ID.length + 16 + 1 + 10 + 2;

/** Writes a non-negative int32 in decimal at `pos`; returns the end. */
function writeInt(buf: Uint8Array, pos: number, v: number): number {
  let n = 1;
  for (let x = v; x >= 10; x = (x / 10) | 0) n++;
  let end = pos + n;
  const last = end;
  do {
    const q = (v / 10) | 0;
    buf[--end] = 0x30 + (v - q * 10);
    v = q;
  } while (v > 0);
  return last;
}

/** Writes an id (< 1e16) in decimal: two int32 halves, no float division per digit. */
function writeId(buf: Uint8Array, pos: number, v: number): number {
  if (v < 1e8) return writeInt(buf, pos, v);
  const hi = Math.floor(v / 1e8);
  let lo = v - hi * 1e8;
  pos = writeInt(buf, pos, hi) + 8;
  for (let k = 1; k <= 8; k++) {
    const q = (lo / 10) | 0;
    buf[pos - k] = 0x30 + (lo - q * 10);
    lo = q;
  }
  return pos;
}

/**
 * The last plain tail written, kept so fan-out encodes each message's tail
 * once, and exactly as long as it is so that copying it out is one `set`
 * (a `set` of ~30 bytes costs half a byte loop; a `subarray` to trim it costs more than either).
 */
let lastTail = new Uint8Array(0);
/**
 * The id and size of `lastTail`, in a typed array: an id is above 2^31, and
 * a module variable holding it took a fresh heap number and a write barrier
 * at every delivery on Deno (V8 boxes doubles; Bun does not).
 */
const lastTailOf = new Float64Array([-1, -1]);
/** Where the id's digits end in `lastTail`. */
let lastTailIdEnd = 0;
/** Scratch to encode a tail in, before it is copied to `lastTail`'s exact length. */
const scratch = new Uint8Array(PLAIN_TAIL_BYTES_MAX);

/**
 * Writes the tail of a message without options (` msg_id:<id> <size>\r\n`)
 * straight into an outbound buffer with `PLAIN_TAIL_BYTES_MAX` bytes of room:
 * no per-message allocation on the hottest path. Fan-out writes the same
 * message to many subscribers in a row, so the last tail is kept and copied
 * (profile of fan-out to 4 at 16 B: encoding was ~19% of the broker); a queue
 * or a single subscriber gets ids in ascending order, mostly a few apart
 * (`ms * 1024 + seq`), so the last tail's digits are counted up in place
 * instead of encoding 16 digits anew.
 */
export function writePlainTail(buf: Uint8Array, pos: number, id: number, size: number): number {
  const was = lastTailOf[0];
  if (id !== was || size !== lastTailOf[1]) {
    const delta = id - was;
    if (
      size !== lastTailOf[1] || !countUpDigits(lastTail, MSG_ID.length, lastTailIdEnd, delta)
    ) encodeTail(id, size);
    lastTailOf[0] = id;
  }
  buf.set(lastTail, pos);
  return pos + lastTail.length;
}

/**
 * Adds `delta` to the decimal number `b[start, end)` in place (a MSG line's
 * id counted up from the last one's, see `MsgLine`, `writePlainTail`); false
 * when `delta` is negative or not below 2^30, or the sum would need another
 * digit: the digits may then be partly changed, and the caller writes them
 * anew. Int32 arithmetic: `Math.floor` of a double per digit was most of
 * MsgLine's share of the broker under the queue bench.
 */
export function countUpDigits(b: Uint8Array, start: number, end: number, delta: number): boolean {
  if (!(delta >= 0 && delta < 0x40000000)) return false;
  let add = delta | 0;
  for (let k = end - 1; add !== 0; k--) {
    if (k < start) return false;
    const sum = b[k] - 0x30 + add;
    if (sum < 10) {
      b[k] = 0x30 + sum;
      return true;
    }
    add = (sum / 10) | 0;
    b[k] = 0x30 + sum - add * 10;
  }
  return true;
}

/** Encodes the tail of `id`, `size` into `lastTail`. */
function encodeTail(id: number, size: number): void {
  const b = scratch;
  b.set(MSG_ID, 0);
  let pos = writeId(b, MSG_ID.length, id);
  lastTailIdEnd = pos;
  b[pos++] = 0x20;
  pos = writeInt(b, pos, size);
  b[pos++] = 13;
  b[pos++] = 10;
  if (lastTail.length !== pos) lastTail = new Uint8Array(pos);
  for (let i = 0; i < pos; i++) lastTail[i] = b[i];
  lastTailOf[1] = size;
}

/** What a MSG frame is written from: a stored message. */
export interface MsgFields extends TailFields {
  /** The payload is `buf[off, off + len)`. */
  buf: Uint8Array;
  off: number;
  len: number;
  /** Undefined when the message has no options (its tail is then written in place). */
  opts: object | undefined;
  /** Cache of the first-delivery tail of a message with options. */
  tail: Uint8Array | undefined;
}

/** The per-message tail of a MSG line with options, `delivery` shown from 2 on. */
export function msgTail(m: TailFields, delivery: number): Uint8Array {
  let s = ` msg_id:${m.id}`;
  if (m.priority !== 0) s += ` priority:${m.priority}`;
  if (m.ttlMs !== 0) s += ` ttl:${m.ttlMs}`;
  if (m.correlationId !== undefined) s += ` correlation_id:${m.correlationId}`;
  if (m.replyTo !== undefined) s += ` reply_to:${m.replyTo}`;
  if (m.contentType !== undefined) s += ` content_type:${m.contentType}`;
  if (m.hdrBytes !== 0) s += ` hdr:${m.hdrBytes}`;
  if (delivery > 1) s += ` delivery:${delivery}`;
  return ascii(`${s} ${m.size}\r\n`);
}

/**
 * Encodes a short string that is almost always ASCII without TextEncoder: a
 * char-code loop is several times cheaper for ~40-byte lines, and this runs
 * once per published message.
 */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return encoder.encode(s);
    out[i] = c;
  }
  return out;
}
