/**
 * The front node's side of a proxy connection's wire: parsed client frames
 * written again in the client protocol (docs/PROTOCOL.md) for the queue's
 * leader, into one buffer per upstream connection that is written once per
 * tick. The leader parses them with the ordinary parser, so what a client
 * may send and what the leader accepts stay one grammar.
 *
 * @module
 */
import {
  grow,
  type PubOptions,
  type QueueDeclareOptions,
  type RetentionOptions,
  type StartPosition,
  type SubOptions,
} from "../protocol/mod.ts";
import { copyRange } from "../runtime/mod.ts";

const encoder = new TextEncoder();

/** A growing byte buffer for one upstream connection (two take turns: one is being written). */
export class ProxyOut {
  #buf = new Uint8Array(16 * 1024);
  #len = 0;
  #spare: Uint8Array<ArrayBuffer> | undefined = undefined;

  /** Bytes waiting. */
  get size(): number {
    return this.#len;
  }

  /** Appends a line (or any text). */
  text(s: string): void {
    this.#buf = grow(this.#buf, this.#len, this.#len + s.length * 3);
    this.#len += encoder.encodeInto(s, this.#buf.subarray(this.#len)).written;
  }

  /** Appends `buf[off, off + len)` and a line end: a payload. */
  payload(buf: Uint8Array, off: number, len: number): void {
    this.#buf = grow(this.#buf, this.#len, this.#len + len + 2);
    const out = this.#buf;
    let p = this.#len;
    p = copyRange(out, p, buf, off, len);
    out[p++] = 13;
    out[p++] = 10;
    this.#len = p;
  }

  /**
   * Appends `<prefix><len>\r\n<payload>\r\n`: an option-less PUB whose
   * `PUB <dest> ` bytes the caller keeps, so a run to one queue builds no string.
   */
  pubPlain(prefix: Uint8Array, buf: Uint8Array, off: number, len: number): void {
    this.#buf = grow(this.#buf, this.#len, this.#len + prefix.length + 18);
    const out = this.#buf;
    let p = this.#len;
    out.set(prefix, p);
    p += prefix.length;
    if (len === 0) out[p++] = 48;
    else {
      let digits = 0;
      for (let n = len; n > 0; n = Math.floor(n / 10)) digits++;
      p += digits;
      for (let n = len, q = p - 1; n > 0; n = Math.floor(n / 10)) out[q--] = 48 + n % 10;
    }
    out[p++] = 13;
    out[p++] = 10;
    this.#len = p;
    this.payload(buf, off, len);
  }

  /** The bytes waiting, as one view; the next appends go to the other buffer. */
  take(): Uint8Array<ArrayBuffer> {
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = this.#spare ?? new Uint8Array(16 * 1024);
    this.#spare = undefined;
    this.#len = 0;
    return out;
  }

  /** Gives back a buffer from `take` once written. */
  release(bytes: Uint8Array<ArrayBuffer>): void {
    if (bytes.buffer.byteLength <= 1024 * 1024) this.#spare = new Uint8Array(bytes.buffer);
  }

  /** Drops what waits. */
  clear(): void {
    this.#len = 0;
  }
}

/** `PUB <dest> [options] <size>\r\n` of a parsed PUB. */
export function pubLine(dest: string, o: PubOptions | undefined, size: number): string {
  if (o === undefined) return `PUB ${dest} ${size}\r\n`;
  let line = `PUB ${dest}`;
  if (o.priority !== 0) line += ` priority:${o.priority}`;
  if (o.ttlMs !== 0) line += ` ttl:${o.ttlMs}`;
  if (o.correlationId !== undefined) line += ` correlation_id:${o.correlationId}`;
  if (o.replyTo !== undefined) line += ` reply_to:${o.replyTo}`;
  if (o.contentType !== undefined) line += ` content_type:${o.contentType}`;
  if (o.hdrBytes !== 0) line += ` hdr:${o.hdrBytes}`;
  if (o.delayMs !== 0) line += ` delay:${o.delayMs}`;
  if (o.deliverAt !== 0) line += ` deliver_at:${o.deliverAt}`;
  if (o.dedupId !== undefined) line += ` dedup_id:${o.dedupId}`;
  return `${line} ${size}\r\n`;
}

/**
 * `SUB <dest> sub_id:<sid> [options]\r\n` of a parsed SUB (`durable`/`start`:
 * a declared topic's). A users-file user's durable, kept as `<user>/<name>`
 * (a name has no `/`), goes as `durable:<name> durable_user:<user>` (percent-
 * encoded: a user name may hold any character), which only a proxy
 * connection may send: the leader keeps it under the same scoped name.
 */
export function subLine(dest: string, sid: string, o: SubOptions): string {
  let line = `SUB ${dest} sub_id:${sid}`;
  const d = o.durable;
  if (d !== undefined) {
    const slash = d.lastIndexOf("/");
    line += slash < 0
      ? ` durable:${d}`
      : ` durable:${d.slice(slash + 1)} durable_user:${encodeURIComponent(d.slice(0, slash))}`;
  }
  if (o.start !== undefined) line += ` start:${startArg(o.start)}`;
  if (o.ack !== undefined) line += ` ack:${o.ack}`;
  if (o.prefetch !== undefined) line += ` prefetch:${o.prefetch}`;
  if (o.ackTimeoutMs !== undefined) line += ` ack_timeout:${o.ackTimeoutMs}`;
  if (o.filter !== undefined) line += ` filter:${quote(o.filter.source)}`;
  return `${line}\r\n`;
}

/** `DECLARE <queue> [settings]\r\n` of a parsed queue declaration. */
export function declareQueueLine(dest: string, q: QueueDeclareOptions): string {
  let line = `DECLARE ${dest}`;
  if (q.maxMessages !== undefined) line += ` max_messages:${q.maxMessages}`;
  if (q.maxBytes !== undefined) line += ` max_bytes:${q.maxBytes}`;
  if (q.overflow !== undefined) line += ` overflow:${q.overflow}`;
  if (q.ttlMs !== undefined) line += ` ttl:${q.ttlMs}`;
  if (q.maxDeliveries !== undefined) line += ` max_deliveries:${q.maxDeliveries}`;
  if (q.dlq !== undefined) line += ` dlq:${q.dlq ?? "none"}`;
  if (q.ackTimeoutMs !== undefined) line += ` ack_timeout:${q.ackTimeoutMs}`;
  if (q.dedupWindowMs !== undefined) line += ` dedup_window:${q.dedupWindowMs}`;
  return `${line}\r\n`;
}

/** `DECLARE <topic> [retain_...]\r\n` of a parsed topic declaration. */
export function declareTopicLine(dest: string, r: RetentionOptions): string {
  let line = `DECLARE ${dest}`;
  if (r.messages !== undefined) line += ` retain_messages:${r.messages}`;
  if (r.bytes !== undefined) line += ` retain_bytes:${r.bytes}`;
  if (r.ageMs !== undefined) line += ` retain_age:${r.ageMs}`;
  return `${line}\r\n`;
}

function startArg(s: StartPosition): string {
  switch (s.kind) {
    case "new":
    case "first":
      return s.kind;
    case "id":
      return `id:${s.id}`;
    case "time":
      return `time:${s.ms}`;
  }
}

/** A selector quoted as `filter:"..."` wants it: `"` and `\` escaped with a `\`. */
function quote(source: string): string {
  return `"${source.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}
