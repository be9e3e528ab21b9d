/**
 * The publish hot path's protobuf, by hand: a `PublishBatch` is read into one
 * small `PublishView` per message whose body stays a range of the received
 * bytes (`buf`, `off`, `len`), handed to `broker.publishFrom` as a PUB's
 * payload is: no copy, no Buffer view, no headers object unless there are
 * headers. proto-loader would build a plain object, a `Buffer` and a map per
 * message first. Field numbers are those of docs/relayr.proto;
 * tests/grpc_codec_test.ts checks this against the generated encoder.
 *
 * @module
 */

const decoder = new TextDecoder("utf-8", { fatal: true });

/** One `PublishRequest` as read from the wire (or from a proto-loader object, `viewOf`). */
export class PublishView {
  destination = "";
  /** The body is `buf[off, off + len)`. */
  buf: Uint8Array = EMPTY;
  off = 0;
  len = 0;
  /** Header pairs in wire order; undefined when there are none. */
  headers: [string, string][] | undefined = undefined;
  priority = 0;
  ttlMs = 0;
  correlationId = "";
  replyTo = "";
  contentType = "";
  delayMs = 0;
  deliverAt = 0;
  dedupId = "";
}

const EMPTY = new Uint8Array(0);

/**
 * A plain `Uint8Array` over a grpc-js `Buffer`'s bytes: the broker keeps
 * payloads as ranges, and `Buffer#slice` makes a view where
 * `Uint8Array#slice` copies (`Message.retain` relies on the copy).
 */
function plain(b: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(b) === Uint8Array.prototype
    ? b
    : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A malformed message: grpc-js answers the call with INTERNAL ("error deserializing"). */
export class WireError extends SyntaxError {}

/** Reads protobuf fields of `b` between `pos` and `end`. */
class Reader {
  pos: number;
  constructor(readonly b: Uint8Array, pos: number, readonly end: number) {
    this.pos = pos;
  }

  varint(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const c = this.b[this.pos++];
      v += (c & 0x7f) * scale;
      if (c < 0x80) return v;
      scale *= 128;
    }
    throw new WireError("varint over 56 bits");
  }

  /** The length of a length-delimited field; the field's bytes are `[pos, pos + n)`. */
  length(): number {
    const n = this.varint();
    if (n > this.end - this.pos) throw new WireError("length past the end");
    return n;
  }

  string(): string {
    const n = this.length();
    const s = this.pos;
    this.pos += n;
    return ascii(this.b, s, n) ?? decoder.decode(this.b.subarray(s, s + n));
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos += this.length();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new WireError(`wire type ${wireType} is not used by relayr.v1`);
    }
    if (this.pos > this.end) throw new WireError("field past the end");
  }
}

/** A short ASCII string without a decoder call; undefined when not ASCII. */
function ascii(b: Uint8Array, s: number, n: number): string | undefined {
  if (n > 64) return undefined;
  let out = "";
  for (let i = s; i < s + n; i++) {
    const c = b[i];
    if (c >= 0x80) return undefined;
    out += String.fromCharCode(c);
  }
  return out;
}

/** Decodes a `PublishBatch` (field 1: repeated PublishRequest); throws `WireError` when malformed. */
export function decodePublishBatch(bytes: Uint8Array): PublishView[] {
  const b = plain(bytes);
  const out: PublishView[] = [];
  const r = new Reader(b, 0, b.length);
  let lastDest: PublishView | undefined;
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag !== 0x0a) {
      r.skip(tag & 7);
      continue;
    }
    const n = r.length();
    const v = readRequest(b, r.pos, r.pos + n, lastDest);
    r.pos += n;
    out.push(v);
    lastDest = v;
  }
  return out;
}

/** One PublishRequest in `b[pos, end)`; the destination string is shared with `prev` when equal. */
function readRequest(
  b: Uint8Array,
  pos: number,
  end: number,
  prev: PublishView | undefined,
): PublishView {
  const v = new PublishView();
  const r = new Reader(b, pos, end);
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case 0x0a: // destination
        v.destination = r.string();
        if (prev !== undefined && prev.destination === v.destination) {
          v.destination = prev.destination;
        }
        break;
      case 0x12: // body
        v.len = r.length();
        v.buf = b;
        v.off = r.pos;
        r.pos += v.len;
        break;
      case 0x1a: { // headers map entry
        const n = r.length();
        (v.headers ??= []).push(mapEntry(b, r.pos, r.pos + n));
        r.pos += n;
        break;
      }
      case 0x20:
        v.priority = r.varint();
        break;
      case 0x28:
        v.ttlMs = r.varint();
        break;
      case 0x32:
        v.correlationId = r.string();
        break;
      case 0x3a:
        v.replyTo = r.string();
        break;
      case 0x42:
        v.contentType = r.string();
        break;
      case 0x48:
        v.delayMs = r.varint();
        break;
      case 0x50:
        v.deliverAt = r.varint();
        break;
      case 0x5a:
        v.dedupId = r.string();
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return v;
}

function mapEntry(b: Uint8Array, pos: number, end: number): [string, string] {
  const r = new Reader(b, pos, end);
  let key = "";
  let value = "";
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a) key = r.string();
    else if (tag === 0x12) value = r.string();
    else r.skip(tag & 7);
  }
  return [key, value];
}

/** A `PublishRequest` as proto-loader decodes it (unary calls). */
export interface PublishRequest {
  destination: string;
  body: Uint8Array;
  headers: Record<string, string>;
  priority: number;
  ttl_ms: number;
  correlation_id: string;
  reply_to: string;
  content_type: string;
  delay_ms: number;
  deliver_at_ms: number;
  dedup_id: string;
}

/** A proto-loader `PublishRequest` as a view (the unary calls share the stream's checks). */
export function viewOf(r: PublishRequest): PublishView {
  const v = new PublishView();
  v.destination = r.destination;
  v.buf = plain(r.body);
  v.len = r.body.length;
  const keys = Object.keys(r.headers);
  if (keys.length > 0) v.headers = keys.map((k) => [k, r.headers[k]]);
  v.priority = r.priority;
  v.ttlMs = r.ttl_ms;
  v.correlationId = r.correlation_id;
  v.replyTo = r.reply_to;
  v.contentType = r.content_type;
  v.delayMs = r.delay_ms;
  v.deliverAt = r.deliver_at_ms;
  v.dedupId = r.dedup_id;
  return v;
}
