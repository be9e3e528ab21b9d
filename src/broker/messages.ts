/**
 * How the broker makes messages: from a PUB (the payload a range of the read
 * chunk, options only when the PUB had any) and as a dead letter's copy.
 *
 * @module
 */
import type { PubOptions } from "../protocol/mod.ts";
import { Message } from "../storage/mod.ts";

const EMPTY = new Uint8Array(0);

/**
 * A published message whose payload is `buf[off, off + len)` (not copied: see
 * `Message.retain`). Positional arguments, not an options object: this runs
 * once per PUB, and an object per message is what the hot path avoids.
 */
export function published(
  id: number,
  dest: string,
  buf: Uint8Array,
  off: number,
  len: number,
  o: PubOptions | undefined,
  now: number,
): Message {
  const msg = o === undefined
    ? new Message(id, dest, EMPTY, 0, 0, 0, 0, undefined, undefined, undefined, now)
    : new Message(
      id,
      dest,
      EMPTY,
      o.hdrBytes,
      o.priority,
      o.ttlMs,
      o.ttlMs === 0 ? 0 : now + o.ttlMs,
      o.correlationId,
      o.replyTo,
      o.contentType,
      now,
    );
  msg.buf = buf;
  msg.off = off;
  msg.len = len;
  return msg;
}

/**
 * A copy of topic message `msg` for a bound queue: a new id (an id names one
 * message in one queue), the same options, and the same payload bytes (no
 * copy per binding: `msg` was retained once, into a slab or a buffer of its
 * own, and every copy points into it).
 */
export function routedCopy(msg: Message, id: number): Message {
  const o = msg.opts;
  const copy = o === undefined
    ? new Message(id, "", EMPTY, 0, msg.priority, 0, 0, undefined, undefined, undefined)
    : new Message(
      id,
      "",
      EMPTY,
      o.hdrBytes,
      msg.priority,
      o.ttlMs,
      o.expiresAt,
      o.correlationId,
      o.replyTo,
      o.contentType,
    );
  copy.buf = msg.buf;
  copy.off = msg.off;
  copy.len = msg.len;
  return copy;
}

/** A copy of `msg` for the dead-letter queue `dest`: a new id, the same payload and options, retained. */
export function deadLetterCopy(msg: Message, id: number, dest: string, now: number): Message {
  const copy = new Message(
    id,
    dest,
    msg.payload,
    msg.hdrBytes,
    msg.priority,
    msg.ttlMs,
    msg.expiresAt,
    msg.correlationId,
    msg.replyTo,
    msg.contentType,
    now,
  );
  copy.retain();
  return copy;
}
