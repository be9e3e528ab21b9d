/**
 * Bytes of server frames. Constant replies are encoded once; a message's MSG
 * line is split into a per-subscription head (`MSG <dest> sub_id:<sid>`) and a
 * per-message tail (` msg_id:<id> ... <size>\r\n`), each built once and reused
 * for every delivery.
 *
 * @module
 */
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

/** The per-subscription head of a MSG line. */
export function msgHead(dest: string, sid: string): Uint8Array {
  return encoder.encode(`MSG ${dest} sub_id:${sid}`);
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

/** The per-message tail of a MSG line, `delivery` shown from 2 on. */
export function msgTail(m: TailFields, delivery: number): Uint8Array {
  let s = ` msg_id:${m.id}`;
  if (m.priority !== 0) s += ` priority:${m.priority}`;
  if (m.ttlMs !== 0) s += ` ttl:${m.ttlMs}`;
  if (m.correlationId !== undefined) s += ` correlation_id:${m.correlationId}`;
  if (m.replyTo !== undefined) s += ` reply_to:${m.replyTo}`;
  if (m.contentType !== undefined) s += ` content_type:${m.contentType}`;
  if (m.hdrBytes !== 0) s += ` hdr:${m.hdrBytes}`;
  if (delivery > 1) s += ` delivery:${delivery}`;
  return encoder.encode(`${s} ${m.size}\r\n`);
}
