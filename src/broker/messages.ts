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
 * `ttlMs` is the destination's default TTL (0: none) for a PUB without one;
 * `visibleAt` (0: now) is when a scheduled message becomes visible, and its
 * TTL counts from then.
 */
export function published(
  id: number,
  dest: string,
  buf: Uint8Array,
  off: number,
  len: number,
  o: PubOptions | undefined,
  now: number,
  ttlMs = 0,
  visibleAt = 0,
): Message {
  const ttl = o === undefined || o.ttlMs === 0 ? ttlMs : o.ttlMs;
  const msg = o === undefined && ttl === 0
    ? new Message(id, dest, EMPTY, 0, 0, 0, 0, undefined, undefined, undefined, now)
    : new Message(
      id,
      dest,
      EMPTY,
      o?.hdrBytes ?? 0,
      o?.priority ?? 0,
      ttl,
      ttl === 0 ? 0 : (visibleAt === 0 ? now : visibleAt) + ttl,
      o?.correlationId,
      o?.replyTo,
      o?.contentType,
      now,
    );
  if (o?.dedupId !== undefined) msg.setDedupId(o.dedupId);
  msg.buf = buf;
  msg.off = off;
  msg.len = len;
  return msg;
}

/**
 * A copy of topic message `msg` for a bound queue: a new id (an id names one
 * message in one queue), the same options, and the same payload bytes (no
 * copy per binding: `msg` was retained once, into a slab or a buffer of its
 * own, and every copy points into it). A message without a TTL of its own
 * takes the queue's default `ttlMs`, counted from `now` (the tick that
 * routes it), as a PUB to that queue would.
 */
export function routedCopy(msg: Message, id: number, ttlMs = 0, now = 0): Message {
  const o = msg.opts;
  const own = o !== undefined && o.ttlMs !== 0;
  const ttl = own ? o.ttlMs : ttlMs;
  const copy = o === undefined && ttl === 0
    ? new Message(id, "", EMPTY, 0, msg.priority, 0, 0, undefined, undefined, undefined)
    : new Message(
      id,
      "",
      EMPTY,
      o?.hdrBytes ?? 0,
      msg.priority,
      ttl,
      own ? o.expiresAt : ttl === 0 ? 0 : now + ttl,
      o?.correlationId,
      o?.replyTo,
      o?.contentType,
    );
  copy.buf = msg.buf;
  copy.off = msg.off;
  copy.len = msg.len;
  return copy;
}

/**
 * A copy of `msg` for `dest` (a dead-letter queue, a scheduled message's
 * topic or its store queue): the id given, the same options, `payload`
 * (default: its own), retained (a payload in a buffer of its own is kept
 * as it is).
 */
export function copyOf(
  msg: Message,
  id: number,
  dest: string,
  now: number,
  payload = msg.payload,
): Message {
  const copy = new Message(
    id,
    dest,
    payload,
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
