/**
 * The binary envelope: a whole message (destination, fields, headers, body)
 * as one compact value, for wherever a message is carried as a single byte
 * string (a gRPC `bytes` field, a database column, a message forwarded as
 * the body of another). Specified in docs/PROTOCOL.md ("Binary envelope");
 * pure, no I/O.
 *
 * Layout: `magic u8 (0xB7) | version u8 (1) | present u8 (bit flags) |
 * priority u8`, then each present field in this order, and the body as the
 * rest of the value (no length: it ends the envelope):
 *
 * | bit | field            | encoding                                   |
 * | --- | ---------------- | ------------------------------------------ |
 * | 0   | `destination`    | string                                     |
 * | 1   | `id`             | varint (message ids are below 2^53)        |
 * | 2   | `delivery`       | varint                                     |
 * | 3   | `ttl_ms`         | varint                                     |
 * | 4   | `correlation_id` | string                                     |
 * | 5   | `reply_to`       | string                                     |
 * | 6   | `content_type`   | string                                     |
 * | 7   | `headers`        | varint count, then key and value strings   |
 *
 * A string is a varint byte length and UTF-8; a varint is unsigned LEB128,
 * at most 8 bytes (56 bits). A plain message with a 5-byte body and nothing
 * else is 9 bytes.
 *
 * @module
 */

/** First byte of every envelope. */
export const ENVELOPE_MAGIC = 0xb7;
/** The envelope version this build writes and reads. */
export const ENVELOPE_VERSION = 1;
/** Bytes before the fields: magic, version, presence bits, priority. */
const FIXED_BYTES = 4;
/** Most bytes of one varint: 8 bytes hold 56 bits, every safe integer. */
const VARINT_BYTES_MAX = 8;

/** A message as one value. Every field but `body` is optional. */
export interface Envelope {
  destination?: string;
  /** Message id (a safe integer). */
  id?: number;
  /** Delivery count (1 for a first delivery). */
  delivery?: number;
  /** 0-9; absent means 0. */
  priority?: number;
  ttlMs?: number;
  correlationId?: string;
  replyTo?: string;
  contentType?: string;
  /** Header pairs in order; a key may repeat. */
  headers?: [string, string][];
  body: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes `e`; throws `RangeError` for a field out of range (a negative id, priority 10). */
export function encodeEnvelope(e: Envelope): Uint8Array {
  const parts: Uint8Array[] = [];
  let present = 0;
  const str = (bit: number, s: string | undefined) => {
    if (s === undefined) return;
    present |= 1 << bit;
    const b = encoder.encode(s);
    parts.push(varint(b.length), b);
  };
  const num = (bit: number, name: string, n: number | undefined) => {
    if (n === undefined) return;
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`${name} must be a safe integer >= 0`);
    }
    present |= 1 << bit;
    parts.push(varint(n));
  };
  const priority = e.priority ?? 0;
  if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
    throw new RangeError(`priority must be 0-9, got ${priority}`);
  }
  str(0, e.destination);
  num(1, "id", e.id);
  num(2, "delivery", e.delivery);
  num(3, "ttlMs", e.ttlMs);
  str(4, e.correlationId);
  str(5, e.replyTo);
  str(6, e.contentType);
  if (e.headers !== undefined) {
    present |= 1 << 7;
    parts.push(varint(e.headers.length));
    for (const [k, v] of e.headers) {
      for (const s of [k, v]) {
        const b = encoder.encode(s);
        parts.push(varint(b.length), b);
      }
    }
  }
  let size = FIXED_BYTES + e.body.length;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  out[0] = ENVELOPE_MAGIC;
  out[1] = ENVELOPE_VERSION;
  out[2] = present;
  out[3] = priority;
  let at = FIXED_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out.set(e.body, at);
  return out;
}

/**
 * Decodes an envelope; the body is a view of `b` (no copy). Throws
 * `SyntaxError` naming what is wrong: another magic or version, a field cut
 * short, an over-long varint, a string that is not UTF-8.
 */
export function decodeEnvelope(b: Uint8Array): Envelope {
  if (b.length < FIXED_BYTES || b[0] !== ENVELOPE_MAGIC) {
    throw new SyntaxError("not a Relayr envelope (bad magic or too short)");
  }
  if (b[1] !== ENVELOPE_VERSION) {
    throw new SyntaxError(`envelope version ${b[1]}, this build reads ${ENVELOPE_VERSION}`);
  }
  const present = b[2];
  if (b[3] > 9) throw new SyntaxError(`envelope priority ${b[3]} is not 0-9`);
  const r = new Reader(b, FIXED_BYTES);
  const has = (bit: number) => (present & (1 << bit)) !== 0;
  const e: Envelope = { body: b };
  if (has(0)) e.destination = r.string("destination");
  if (has(1)) e.id = r.varint("id");
  if (has(2)) e.delivery = r.varint("delivery");
  if (has(3)) e.ttlMs = r.varint("ttl_ms");
  if (has(4)) e.correlationId = r.string("correlation_id");
  if (has(5)) e.replyTo = r.string("reply_to");
  if (has(6)) e.contentType = r.string("content_type");
  if (has(7)) {
    const n = r.varint("header count");
    // Each header takes at least two bytes: a count beyond that is corruption, not a reason to allocate.
    if (n > (b.length - r.at) / 2) throw new SyntaxError(`envelope header count ${n} is cut short`);
    e.headers = [];
    for (let i = 0; i < n; i++) e.headers.push([r.string("header key"), r.string("header value")]);
  }
  if (b[3] !== 0) e.priority = b[3];
  e.body = b.subarray(r.at);
  return e;
}

/** Unsigned LEB128 of a safe integer. */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Uint8Array.from(out);
}

/** Reads fields from `b` at `at`, checking every length against what is left. */
class Reader {
  constructor(readonly b: Uint8Array, public at: number) {}

  varint(what: string): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      if (this.at >= this.b.length) throw new SyntaxError(`envelope ${what} cut short`);
      const byte = this.b[this.at++];
      n += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(n)) throw new SyntaxError(`envelope ${what} over 2^53`);
        return n;
      }
      scale *= 128;
    }
    throw new SyntaxError(`envelope ${what} is a varint over ${VARINT_BYTES_MAX} bytes`);
  }

  string(what: string): string {
    const len = this.varint(what);
    if (len > this.b.length - this.at) throw new SyntaxError(`envelope ${what} cut short`);
    const s = this.b.subarray(this.at, this.at + len);
    this.at += len;
    try {
      return decoder.decode(s);
    } catch {
      throw new SyntaxError(`envelope ${what} is not UTF-8`);
    }
  }
}
