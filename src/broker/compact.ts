/**
 * A payload that is a small view into a large read chunk would keep the whole
 * chunk alive while the message waits; such a payload is copied when it is
 * retained (queued, or held for a lagging subscriber). Messages written out at
 * once are never copied.
 *
 * @module
 */

/** The payload, or a copy of it when its backing buffer is much larger. */
export function compact(payload: Uint8Array): Uint8Array {
  return payload.buffer.byteLength > 2 * payload.byteLength + 64 ? payload.slice() : payload;
}
