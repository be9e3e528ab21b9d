/**
 * What the broker's admin actions share: their typed refusal (`AdminError`,
 * which the HTTP face turns into 404/409/400) and the shape of a peeked
 * message. The actions themselves are methods of the thing they act on
 * (`Broker.purgeQueue`, `Broker.peekQueue`, `Broker.replayDeadLetters`,
 * `Broker.deleteQueue`, `Broker.deleteDurable`, `Server.closeConnection`):
 * the HTTP API, the CLI and the dashboard all end up there.
 *
 * @module
 */
import { PEEK_PREVIEW_BYTES_MAX } from "../config/mod.ts";
import { decodeHeaders } from "../protocol/mod.ts";
import type { Message } from "../storage/mod.ts";

/** Why an admin action was refused: no such thing, or its state forbids the action. */
export const AdminErrorKind = {
  NOT_FOUND: "NOT_FOUND",
  CONFLICT: "CONFLICT",
  BAD_REQUEST: "BAD_REQUEST",
} as const;
/** One refusal kind. */
export type AdminErrorKind = typeof AdminErrorKind[keyof typeof AdminErrorKind];

/** An admin action the broker refuses; the message says why, in sentence case. */
export class AdminError extends Error {
  /** What kind of refusal (the HTTP face maps it to a status). */
  readonly kind: AdminErrorKind;
  /** @param kind the refusal kind @param message why */
  constructor(kind: AdminErrorKind, message: string) {
    super(message);
    this.name = "AdminError";
    this.kind = kind;
  }
}

/** One message as a peek shows it: where it is in line, its options, headers and the start of its body. */
export interface PeekedMessage {
  id: number;
  priority: number;
  /** Deliveries so far (a redelivered message was given back this many times). */
  deliveries: number;
  /** Payload bytes, header block included. */
  size: number;
  accepted_at: string;
  /** Null: it never expires. */
  expires_at: string | null;
  correlation_id: string | null;
  reply_to: string | null;
  content_type: string | null;
  headers: [string, string][];
  /** Bytes of the body (the payload after its header block). */
  body_bytes: number;
  /** The first `PEEK_PREVIEW_BYTES_MAX` body bytes: UTF-8 text, or base64 when they are not text. */
  body_preview: string;
  preview_encoding: "utf8" | "base64";
  /** Whether the preview is cut short. */
  truncated: boolean;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** What a peek shows of `msg` (reads it, changes nothing). */
export function peeked(msg: Message): PeekedMessage {
  const payload = msg.payload;
  const hdr = msg.hdrBytes;
  const body = payload.subarray(hdr);
  const cut = body.subarray(0, PEEK_PREVIEW_BYTES_MAX);
  const text = utf8Prefix(cut, cut.length < body.length);
  return {
    id: msg.id,
    priority: msg.priority,
    deliveries: msg.deliveries,
    size: msg.size,
    accepted_at: new Date(msg.acceptedAt).toISOString(),
    expires_at: msg.expiresAt === 0 ? null : new Date(msg.expiresAt).toISOString(),
    correlation_id: msg.correlationId ?? null,
    reply_to: msg.replyTo ?? null,
    content_type: msg.contentType ?? null,
    headers: hdr === 0 ? [] : decodeHeaders(payload.subarray(0, hdr)),
    body_bytes: body.length,
    body_preview: text?.text ?? base64(cut),
    preview_encoding: text === undefined ? "base64" : "utf8",
    truncated: (text?.bytes ?? cut.length) < body.length,
  };
}

/**
 * `bytes` as UTF-8 text, or undefined when they are not. A cut preview may
 * end inside a character: up to 3 bytes are then left off the end.
 */
function utf8Prefix(bytes: Uint8Array, cut: boolean): { text: string; bytes: number } | undefined {
  for (let back = 0; back <= (cut ? 3 : 0) && back <= bytes.length; back++) {
    try {
      return {
        text: strictUtf8.decode(bytes.subarray(0, bytes.length - back)),
        bytes: bytes.length - back,
      };
    } catch { /* not text, or cut inside a character: try one byte less */ }
  }
  return undefined;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** `name` as a queue name: `orders` and `queue:orders` are the same queue. */
export function queueName(name: string): string {
  return name.startsWith("queue:") ? name : `queue:${name}`;
}

/** `name` as a topic name: `events` and `topic:events` are the same topic. */
export function topicName(name: string): string {
  return name.startsWith("topic:") ? name : `topic:${name}`;
}
