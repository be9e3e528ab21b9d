/**
 * The `PUB` frame: a publish's options and header block checked and encoded
 * after its destination, straight into the outbound buffer.
 *
 * @module
 */
import {
  DELIVER_AT_MS_MAX,
  HEADERS_BYTES_MAX,
  PUB_DELAY_MS_MAX,
  TTL_MS_MAX,
} from "../config/limits.ts";
import { DEST, encodeHeaders } from "../protocol/mod.ts";
import { checkDestination, checkInt, checkToken, intOption } from "./checks.ts";
import { BadArgumentError, BadHeadersError, PayloadTooLargeError } from "./errors.ts";
import type { PublishOptions } from "./options.ts";
import type { OutBuf } from "./outbound.ts";

const encoder = new TextEncoder();
const EMPTY: Uint8Array = new Uint8Array(0);

/** The header block of `headers`, or an empty array when there are none. */
export function headerBlock(headers: Record<string, string> | undefined): Uint8Array {
  if (headers === undefined) return EMPTY;
  const entries = Object.entries(headers);
  if (entries.length === 0) return EMPTY;
  let block: Uint8Array;
  try {
    block = encodeHeaders(entries.map(([k, v]) => [k, String(v)]));
  } catch (err) {
    throw new BadHeadersError((err as Error).message);
  }
  if (block.length > HEADERS_BYTES_MAX) {
    throw new BadHeadersError(`header block is larger than ${HEADERS_BYTES_MAX} bytes`);
  }
  return block;
}

/** The options part of a `PUB` line (leading space included); validates each. */
function pubOptions(opts: PublishOptions): string {
  let line = "";
  if (opts.priority !== undefined && opts.priority !== 0) {
    checkInt("priority", opts.priority, 0, 9);
    line += ` priority:${opts.priority}`;
  }
  line += intOption("ttlMs", "ttl", opts.ttlMs, 1, TTL_MS_MAX);
  if (opts.correlationId !== undefined) {
    checkToken("correlationId", opts.correlationId);
    line += ` correlation_id:${opts.correlationId}`;
  }
  if (opts.replyTo !== undefined) {
    checkDestination(opts.replyTo, DEST.REPLY_TO);
    line += ` reply_to:${opts.replyTo}`;
  }
  if (opts.contentType !== undefined) {
    checkToken("contentType", opts.contentType);
    line += ` content_type:${opts.contentType}`;
  }
  if (opts.delayMs !== undefined && opts.delayMs !== 0) {
    if (opts.deliverAt !== undefined) {
      throw new BadArgumentError("give delayMs or deliverAt, not both");
    }
    checkInt("delayMs", opts.delayMs, 0, PUB_DELAY_MS_MAX);
    line += ` delay:${opts.delayMs}`;
  }
  if (opts.deliverAt !== undefined) {
    const at = opts.deliverAt instanceof Date ? opts.deliverAt.getTime() : opts.deliverAt;
    checkInt("deliverAt", at, 0, DELIVER_AT_MS_MAX);
    line += ` deliver_at:${at}`;
  }
  if (opts.dedupId !== undefined) {
    checkToken("dedupId", opts.dedupId);
    line += ` dedup_id:${opts.dedupId}`;
  }
  return line;
}

/**
 * Validates and appends one `PUB` frame; nothing is appended when it throws.
 *
 * @example
 * ```ts
 * import { OutBuf } from "./outbound.ts";
 * import { encodePub } from "./pub_frame.ts";
 * const out = new OutBuf();
 * encodePub(out, "queue:orders", new TextEncoder().encode("hi"), { priority: 5 }, 1 << 20);
 * console.assert(new TextDecoder().decode(out.take()) === "PUB queue:orders priority:5 2\r\nhi\r\n");
 * ```
 */
export function encodePub(
  out: OutBuf,
  dest: string,
  body: Uint8Array,
  opts: PublishOptions | undefined,
  maxPayload: number,
): void {
  if (opts === undefined) {
    // The common case, one destination over and over: its checked, encoded
    // `PUB <dest> ` prefix is kept, so a message costs a few byte copies.
    if (dest !== lastPubDest) {
      checkDestination(dest, DEST.PUBLISH);
      lastPubPrefix = encoder.encode(`PUB ${dest} `);
      lastPubDest = dest;
    }
    if (body.length > maxPayload) throw tooLarge(body.length, maxPayload);
    out.writeFrame(lastPubPrefix, body);
    return;
  }
  checkDestination(dest, DEST.PUBLISH);
  let line = "PUB " + dest;
  let block: Uint8Array = EMPTY;
  if (opts !== undefined) {
    line += pubOptions(opts);
    block = headerBlock(opts.headers);
    if (block.length > 0) line += ` hdr:${block.length}`;
  }
  const size = block.length + body.length;
  if (size > maxPayload) throw tooLarge(size, maxPayload);
  out.writeString(`${line} ${size}\r\n`);
  if (block.length > 0) out.writeBytes(block);
  out.writeBytes(body);
  out.writeString("\r\n");
}

/** The destination of the last option-less `PUB` encoded, and its `PUB <dest> ` bytes. */
let lastPubDest = "";
let lastPubPrefix: Uint8Array = EMPTY;

function tooLarge(size: number, maxPayload: number): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `payload of ${size} bytes is larger than the broker's max_payload of ${maxPayload} bytes`,
  );
}

/** Body conveniences: strings are sent as UTF-8. */
export function toBytes(body: Uint8Array | string): Uint8Array {
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  throw new TypeError("body must be a Uint8Array or a string");
}
