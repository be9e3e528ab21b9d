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
    const size = body.length;
    if (dest !== lastPubDest) {
      checkDestination(dest, DEST.PUBLISH);
      lastPubPrefix = encoder.encode(`PUB ${dest} `);
      lastPubHeads = [];
      lastPubDest = dest;
      lastPubSize = -1;
    }
    if (size > maxPayload) throw tooLarge(size, maxPayload);
    if (size !== lastPubSize) {
      // A size unlike the last: its digits written apart, no line made (sizes may change every
      // message); the next publish of the same size makes it.
      lastPubSize = size;
      lastPubHead = null;
      out.writePub(lastPubPrefix, body);
      return;
    }
    out.writeLine(lastPubHead ??= sizeLine(lastPubPrefix, lastPubHeads, size), body);
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

/**
 * The destination and body size of the last option-less `PUB` encoded, and
 * its line, `PUB <dest> <size>\r\n`, from the second publish of that size
 * in a row: a stream of one destination and one size (ticks, samples, a
 * benchmark) copies the line whole, which cost 10-15% less per publish than
 * the prefix and the digits apart (16 B bodies, Deno and Bun). Each count
 * of digits has its line, made once per destination, its digits rewritten
 * in place for a new size: sizes that change (9, 10, 10, 9, 9, ...) cost no
 * allocation and no string.
 */
let lastPubDest = "";
let lastPubSize = -1;
let lastPubHead: Uint8Array | null = null;
/** `PUB <dest> `, and the lines made from it by count of digits. */
let lastPubPrefix: Uint8Array = EMPTY;
let lastPubHeads: Uint8Array[] = [];

/** The line `<prefix><size>\r\n`, from `heads` (by count of digits), its digits written. */
function sizeLine(prefix: Uint8Array, heads: Uint8Array[], size: number): Uint8Array {
  let digits = 1;
  for (let n = size; n >= 10; n = Math.floor(n / 10)) digits++;
  let line = heads[digits];
  if (line === undefined) {
    line = heads[digits] = new Uint8Array(prefix.length + digits + 2);
    line.set(prefix);
    line[line.length - 2] = 13;
    line[line.length - 1] = 10;
  }
  const at = prefix.length;
  let q = at + digits;
  for (let n = size; q > at; n = Math.floor(n / 10)) line[--q] = 48 + n % 10;
  return line;
}

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
