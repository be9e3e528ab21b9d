/**
 * The hot path's protobuf, by hand: a `SubscribeResponse` of many `Message`s
 * is encoded straight from the broker's messages into one buffer, with no
 * object per message (protobufjs would build a plain object, a `Buffer` view
 * and a map per message, then walk them again to encode). Field numbers are
 * those of docs/relayr.proto; tests/grpc_test.ts decodes what this writes
 * with the generated (proto-loader) decoder, field by field.
 *
 * @module
 */
import { GRPC_BATCH_BYTES_MIN } from "../config/mod.ts";
import { decodeHeaders, grow } from "../protocol/mod.ts";
import { copyRange } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";

const encoder = new TextEncoder();

/** Wire type 2 (length-delimited) tags of `Message` and `SubscribeResponse` fields. */
const TAG = {
  /** `SubscribeResponse.messages = 1`. */
  MESSAGES: 0x0a,
  DESTINATION: 0x0a,
  BODY: 0x12,
  HEADERS: 0x1a,
  MSG_ID: 0x22,
  /** Varint (wire type 0). */
  PRIORITY: 0x28,
  /** Varint. */
  TTL_MS: 0x30,
  CORRELATION_ID: 0x3a,
  REPLY_TO: 0x42,
  CONTENT_TYPE: 0x4a,
  /** Varint. */
  DELIVERY: 0x50,
  /** Map entry key (1) and value (2). */
  KEY: 0x0a,
  VALUE: 0x12,
} as const;

/** Bytes of `v` (non-negative, < 2^53) as a varint. */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Decimal digits of an id (< 2^53). */
function digits(v: number): number {
  let n = 1;
  while (v >= 10) {
    v = Math.floor(v / 10);
    n++;
  }
  return n;
}

/** Writes `v` in decimal, `n` digits, ending at `pos + n`: two int32 halves, no float per digit. */
function writeDecimal(buf: Uint8Array, pos: number, v: number, n: number): number {
  const end = pos + n;
  let p = end;
  let lo = v % 1e8;
  let hi = (v - lo) / 1e8;
  const loDigits = hi > 0 ? 8 : n;
  for (let k = 0; k < loDigits; k++) {
    const q = (lo / 10) | 0;
    buf[--p] = 0x30 + (lo - q * 10);
    lo = q;
  }
  while (hi > 0) {
    const q = (hi / 10) | 0;
    buf[--p] = 0x30 + (hi - q * 10);
    hi = q;
  }
  return end;
}

/**
 * The rarely used fields of a message (headers, TTL, correlation id, reply
 * topic, content type) as encoded `Message` fields; built per delivery, so
 * only messages that have options pay for it.
 */
function optionFields(msg: Message): Uint8Array {
  const o = msg.opts!;
  const parts: Uint8Array[] = [];
  let size = 0;
  const field = (tag: number, bytes: Uint8Array): void => {
    const head = new Uint8Array(1 + varintSize(bytes.length));
    head[0] = tag;
    writeVarint(head, 1, bytes.length);
    parts.push(head, bytes);
    size += head.length + bytes.length;
  };
  if (o.hdrBytes > 0) {
    for (const [k, v] of headerMap(msg.buf.subarray(msg.off, msg.off + o.hdrBytes))) {
      const key = encoder.encode(k);
      const value = encoder.encode(v);
      const entry = new Uint8Array(
        2 + varintSize(key.length) + key.length + varintSize(value.length) + value.length,
      );
      entry[0] = TAG.KEY;
      let p = writeVarint(entry, 1, key.length);
      entry.set(key, p);
      p += key.length;
      entry[p++] = TAG.VALUE;
      p = writeVarint(entry, p, value.length);
      entry.set(value, p);
      field(TAG.HEADERS, entry);
    }
  }
  if (o.ttlMs > 0) {
    const b = new Uint8Array(1 + varintSize(o.ttlMs));
    b[0] = TAG.TTL_MS;
    writeVarint(b, 1, o.ttlMs);
    parts.push(b);
    size += b.length;
  }
  if (o.correlationId !== undefined) field(TAG.CORRELATION_ID, encoder.encode(o.correlationId));
  if (o.replyTo !== undefined) field(TAG.REPLY_TO, encoder.encode(o.replyTo));
  if (o.contentType !== undefined) field(TAG.CONTENT_TYPE, encoder.encode(o.contentType));
  const out = new Uint8Array(size);
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/**
 * A header block as a map: a key that appears twice (the text protocol
 * allows it, a protobuf map does not) gets its values joined with ", ", as
 * HTTP joins repeated fields.
 */
export function headerMap(block: Uint8Array): Map<string, string> {
  const map = new Map<string, string>();
  for (const [k, v] of decodeHeaders(block)) {
    const had = map.get(k);
    map.set(k, had === undefined ? v : `${had}, ${v}`);
  }
  return map;
}

/**
 * One `SubscribeResponse` being filled: each `add` appends one encoded
 * `Message` (field 1, repeated), `take` hands the bytes over.
 */
export class DeliveryBatch {
  #buf: Uint8Array<ArrayBuffer> = new Uint8Array(GRPC_BATCH_BYTES_MIN);
  #len = 0;
  /** Messages in the batch. */
  count = 0;

  /** Encoded bytes so far. */
  get length(): number {
    return this.#len;
  }

  /** Appends `msg`, delivered for the `delivery`-th time, published to `dest` (its bytes). */
  add(dest: Uint8Array, msg: Message, delivery: number): void {
    const hdr = msg.opts === undefined ? 0 : msg.opts.hdrBytes;
    const bodyLen = msg.len - hdr;
    const idDigits = digits(msg.id);
    const extra = msg.opts === undefined ? undefined : optionFields(msg);
    const priority = msg.priority;
    const size = 1 + varintSize(dest.length) + dest.length +
      (bodyLen > 0 ? 1 + varintSize(bodyLen) + bodyLen : 0) +
      2 + idDigits +
      (priority > 0 ? 2 : 0) +
      (extra === undefined ? 0 : extra.length) +
      1 + varintSize(delivery);
    const need = this.#len + 1 + varintSize(size) + size;
    if (need > this.#buf.length) this.#buf = grow(this.#buf, this.#len, need);
    const buf = this.#buf;
    let p = this.#len;
    buf[p++] = TAG.MESSAGES;
    p = writeVarint(buf, p, size);
    buf[p++] = TAG.DESTINATION;
    p = writeVarint(buf, p, dest.length);
    buf.set(dest, p);
    p += dest.length;
    if (bodyLen > 0) {
      buf[p++] = TAG.BODY;
      p = writeVarint(buf, p, bodyLen);
      p = copyRange(buf, p, msg.buf, msg.off + hdr, bodyLen);
    }
    buf[p++] = TAG.MSG_ID;
    buf[p++] = idDigits;
    p = writeDecimal(buf, p, msg.id, idDigits);
    if (priority > 0) {
      buf[p++] = TAG.PRIORITY;
      buf[p++] = priority;
    }
    if (extra !== undefined) {
      buf.set(extra, p);
      p += extra.length;
    }
    buf[p++] = TAG.DELIVERY;
    p = writeVarint(buf, p, delivery);
    this.#len = p;
    this.count++;
  }

  /**
   * The batch's bytes, handed over: the stream may hold them past this call
   * (grpc-js queues writes while one is in progress), so the next batch
   * starts in a new buffer, sized like this one.
   */
  take(): Uint8Array {
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = new Uint8Array(Math.max(GRPC_BATCH_BYTES_MIN, this.#len));
    this.#len = 0;
    this.count = 0;
    return out;
  }
}

/** The encoded `SubscribeResponse` that opens a stream: its `sub_id` (field 2). */
export function openedResponse(sid: string): Uint8Array {
  const id = encoder.encode(sid);
  const out = new Uint8Array(1 + varintSize(id.length) + id.length);
  out[0] = 0x12;
  out.set(id, writeVarint(out, 1, id.length));
  return out;
}

/** An encoded `SubscribeResponse` with only `error` (field 3): a settle named unknown ids. */
export function errorResponse(code: string, message: string): Uint8Array {
  const c = encoder.encode(code);
  const m = encoder.encode(message);
  const inner = new Uint8Array(
    2 + varintSize(c.length) + c.length + varintSize(m.length) + m.length,
  );
  inner[0] = 0x0a;
  let p = writeVarint(inner, 1, c.length);
  inner.set(c, p);
  p += c.length;
  inner[p++] = 0x12;
  p = writeVarint(inner, p, m.length);
  inner.set(m, p);
  const out = new Uint8Array(1 + varintSize(inner.length) + inner.length);
  out[0] = 0x1a;
  out.set(inner, writeVarint(out, 1, inner.length));
  return out;
}

/** A delivered message as a proto-loader `Message` object (for unary replies: Request). */
export interface MessageObject {
  destination: string;
  body: Uint8Array;
  headers: Record<string, string>;
  msg_id: string;
  priority: number;
  ttl_ms: number;
  correlation_id: string;
  reply_to: string;
  content_type: string;
  delivery: number;
}

/** `msg`, published to `dest`, as a `Message` object; the body is copied (the message may be released). */
export function messageObject(dest: string, msg: Message, delivery: number): MessageObject {
  const hdr = msg.hdrBytes;
  const payload = msg.payload;
  return {
    destination: dest,
    body: payload.slice(hdr),
    headers: hdr > 0 ? Object.fromEntries(headerMap(payload.subarray(0, hdr))) : {},
    msg_id: String(msg.id),
    priority: msg.priority,
    ttl_ms: msg.ttlMs,
    correlation_id: msg.correlationId ?? "",
    reply_to: msg.replyTo ?? "",
    content_type: msg.contentType ?? "",
    delivery,
  };
}

const decoder = new TextDecoder();

/** The destination a MSG head names (`MSG <dest> sub_id:<sid>`). */
export function headDestination(head: Uint8Array): string {
  return decoder.decode(head.subarray(4, head.indexOf(0x20, 4)));
}
