/**
 * Options of the client's commands, their validation, and the encoders of
 * client frames (`PUB`, `SUB`, `DECLARE`, `UNSUB`, `ACK`, `NACK`, `CONNECT`).
 *
 * Everything that goes on a control line is validated here first: a space or
 * line end smuggled into a destination or token would otherwise let a caller
 * inject frames. Validation errors are the same typed errors the broker would
 * answer with, raised before anything is sent.
 *
 * @module
 */
import {
  ACK_IDS_MAX,
  ACK_TIMEOUT_MS_MAX,
  CONTROL_LINE_BYTES_MAX,
  DECLARED_DELIVERIES_MAX,
  DECLARED_QUEUE_BYTES_MAX,
  DECLARED_QUEUE_MESSAGES_MAX,
  DEDUP_WINDOW_MS_MAX,
  DELIVER_AT_MS_MAX,
  HEADERS_BYTES_MAX,
  NACK_DELAY_MS_MAX,
  PREFETCH_MAX,
  PUB_DELAY_MS_MAX,
  RETAIN_AGE_MS_MAX,
  RETAIN_BYTES_MAX,
  RETAIN_MESSAGES_MAX,
  TOKEN_BYTES_MAX,
  TTL_MS_MAX,
} from "../config/limits.ts";
import { compileFilter, FilterError } from "../filter/mod.ts";
import {
  destinationError,
  DURABLE_NAME,
  encodeHeaders,
  START_TIME_MS_MAX,
} from "../protocol/mod.ts";
import {
  BadArgumentError,
  BadDestinationError,
  BadFilterError,
  BadHeadersError,
  PayloadTooLargeError,
} from "./errors.ts";
import type { Codec } from "./codec.ts";
import type { OutBuf } from "./outbound.ts";

/** Options of one published message. */
export interface PublishOptions {
  /** Header block: keys of `A-Z a-z 0-9 - _ .`, values without line ends. */
  headers?: Record<string, string>;
  /** 0-9, higher first (queues); default 0. */
  priority?: number;
  /** Expire the message this many ms after the broker accepted it (1 to 30 days). */
  ttlMs?: number;
  /** Copied to the delivered message; request/reply uses it. */
  correlationId?: string;
  /** A destination where a responder should publish its reply. */
  replyTo?: string;
  /** E.g. `application/json`. */
  contentType?: string;
  /** Invisible for this many ms after the broker accepted it (queues and topics; 0-30 days). */
  delayMs?: number;
  /** Invisible until this time (queues and topics); not with `delayMs`. */
  deliverAt?: Date | number;
  /**
   * A second publish with this id to the same destination within its dedup
   * window (default 2 minutes) is answered with the first message's id and
   * not stored again. A publish with a dedup id whose reply was lost with
   * the connection is sent again after the reconnect.
   */
  dedupId?: string;
  /**
   * Encode the body with this codec and set `contentType` to its type
   * (`application/json`, `application/msgpack`, `application/octet-stream`)
   * unless one is given; the body may then be any value the codec encodes.
   */
  codec?: Codec;
}

/** Settings of {@linkcode declareQueueLine} (`Client.declareQueue`); any left out take the broker's defaults. */
export interface QueueOptions {
  /** Most messages held (ready, in flight, delayed). */
  maxMessages?: number;
  /** Most payload bytes held. */
  maxBytes?: number;
  /** What a publish to a full queue does: refused with `QueueFullError`, or the oldest ready message dropped. */
  overflow?: "reject" | "drop_oldest";
  /** Default TTL of a message published without one. */
  ttlMs?: number;
  /** Deliveries before a message is dead-lettered. */
  maxDeliveries?: number;
  /** Dead-letter queue (default `<queue>.dlq`); `null` drops dead letters. */
  dlq?: string | null;
  /** Default ack timeout of consumers that give none. */
  ackTimeoutMs?: number;
  /** How long a `dedupId` is remembered (0 turns deduplication off; default 2 minutes). */
  dedupWindowMs?: number;
}

/** How a subscription settles messages: `explicit` needs `ack()`, `none` counts a message as done once sent. */
export type AckMode = "explicit" | "none";

/** Options of {@linkcode SubscribeOptions}'s wire part: what goes on the `SUB` line. */
export interface SubWireOptions {
  /** The connection's name for the subscription; chosen by the client when absent. */
  subId?: string;
  /** Default: `explicit` for queues, `none` for topics. */
  ack?: AckMode;
  /** Most unacknowledged messages in flight (explicit acks only), 1-65536; broker default 1000. */
  prefetch?: number;
  /** Unacked messages older than this are redelivered; broker default 30000. */
  ackTimeoutMs?: number;
  /**
   * The name of a durable subscription of a declared topic (1-256 bytes of
   * `A-Z a-z 0-9 _ - .`): the broker keeps its position while nobody uses it,
   * and a later subscription with the name resumes there. Implies explicit
   * acks (`ack: "none"` is refused).
   */
  durable?: string;
  /**
   * Where a replay or a new durable starts (declared topics only): `"new"`
   * (the default), `"first"` (the oldest retained message), `{ id }` (the
   * oldest retained message whose id is `>=` it) or `{ time }` (the oldest
   * published at or after it). Only sent on the first `SUB`: after a
   * reconnect the subscription is renewed without it (see docs/CLIENT.md).
   */
  start?: StartPosition;
  /**
   * A selector (docs/PROTOCOL.md, "Filters"): only messages it takes are
   * delivered, e.g. `"region = 'eu' AND priority >= 5"`. Checked here first
   * (`BadFilterError`), sent quoted.
   */
  filter?: string;
}

/** Options of `Client.bind`. */
export interface BindOptions {
  /** A selector: only the messages it takes are enqueued (see `SubWireOptions.filter`). */
  filter?: string;
}

/**
 * Where a replay or a new durable subscription starts. Message ids are
 * strings in this SDK (as `publish` returns them and `Message.id` holds them).
 */
export type StartPosition = "new" | "first" | { id: string } | { time: Date | number };

/** Retention limits of {@linkcode declareLine} (`Client.declare`); at least one is required. */
export interface DeclareOptions {
  /** Most messages retained, 1-10000000; broker default: its queue message limit. */
  retainMessages?: number;
  /** Most payload bytes retained, 1-1073741824; broker default: its queue byte limit. */
  retainBytes?: number;
  /** Drop retained messages older than this many ms, 1-2592000000; default: no age limit. */
  retainAgeMs?: number;
}

const encoder = new TextEncoder();
const EMPTY: Uint8Array = new Uint8Array(0);
/** Destinations already validated for publishing; a publisher usually sends to a few, so this saves a scan per message. */
const validPubDests = new Set<string>();
const VALID_DESTS_CACHED_MAX = 1024;

/** Throws `BadDestinationError` unless `dest` is valid (`wildcards`: a topic subscription). */
export function checkDestination(dest: string, wildcards: boolean): void {
  if (typeof dest !== "string") throw new BadDestinationError("destination must be a string");
  if (!wildcards && validPubDests.has(dest)) return;
  const why = destinationError(dest, wildcards);
  if (why !== undefined) throw new BadDestinationError(why);
  if (!wildcards && validPubDests.size < VALID_DESTS_CACHED_MAX) validPubDests.add(dest);
}

/** Throws `BadArgumentError` unless `value` is a token: 1-256 bytes, no spaces or control characters. */
export function checkToken(name: string, value: string): void {
  if (typeof value !== "string" || value.length === 0) {
    throw new BadArgumentError(`${name} must be a non-empty string`);
  }
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) {
      throw new BadArgumentError(
        `${name} ${JSON.stringify(value)} holds a space or control character`,
      );
    }
    if (c > 0x7f) ascii = false;
  }
  const bytes = ascii ? value.length : encoder.encode(value).length;
  if (bytes > TOKEN_BYTES_MAX) {
    throw new BadArgumentError(`${name} is longer than ${TOKEN_BYTES_MAX} bytes`);
  }
}

/** Throws `BadArgumentError` unless `value` is an integer in `[min, max]`. */
export function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BadArgumentError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

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
  if (opts.ttlMs !== undefined) {
    checkInt("ttlMs", opts.ttlMs, 1, TTL_MS_MAX);
    line += ` ttl:${opts.ttlMs}`;
  }
  if (opts.correlationId !== undefined) {
    checkToken("correlationId", opts.correlationId);
    line += ` correlation_id:${opts.correlationId}`;
  }
  if (opts.replyTo !== undefined) {
    checkDestination(opts.replyTo, false);
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
 * import { encodePub } from "./commands.ts";
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
      checkDestination(dest, false);
      lastPubPrefix = encoder.encode(`PUB ${dest} `);
      lastPubDest = dest;
    }
    if (body.length > maxPayload) throw tooLarge(body.length, maxPayload);
    out.writeFrame(lastPubPrefix, body);
    return;
  }
  checkDestination(dest, false);
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

/** The `start:` value of a position; validates it. */
export function startValue(start: StartPosition): string {
  if (start === "new" || start === "first") return start;
  if (typeof start === "object" && start !== null) {
    if ("id" in start) {
      const id = start.id;
      if (typeof id !== "string" || !/^[0-9]{1,16}$/.test(id) || !Number.isSafeInteger(+id)) {
        throw new BadArgumentError(
          `start.id must be a message id (a decimal string), got ${JSON.stringify(id)}`,
        );
      }
      return `id:${id}`;
    }
    if ("time" in start) {
      const t = start.time;
      const ms = t instanceof Date ? t.getTime() : t;
      checkInt("start.time", ms, 0, START_TIME_MS_MAX);
      return `time:${ms}`;
    }
  }
  throw new BadArgumentError(
    `start must be "new", "first", { id } or { time }, got ${JSON.stringify(start)}`,
  );
}

/**
 * Validates the wire options of a subscription; returns its `SUB` line
 * (without the line end). `resume`: the line that renews the subscription
 * after a reconnect, which leaves `start` out (a durable resumes at its
 * stored position; a plain replay would otherwise repeat its history).
 *
 * @example
 * ```ts
 * import { subLine } from "./commands.ts";
 * const opts = { durable: "billing", start: "first" } as const;
 * console.assert(
 *   subLine("topic:orders", "s1", "explicit", opts) ===
 *     "SUB topic:orders sub_id:s1 ack:explicit durable:billing start:first",
 * );
 * console.assert(
 *   subLine("topic:orders", "s1", "explicit", opts, true) ===
 *     "SUB topic:orders sub_id:s1 ack:explicit durable:billing",
 * );
 * ```
 */
export function subLine(
  dest: string,
  sid: string,
  ack: AckMode,
  opts: SubWireOptions,
  resume = false,
): string {
  let line = `SUB ${dest} sub_id:${sid} ack:${ack}`;
  if (opts.prefetch !== undefined) {
    checkInt("prefetch", opts.prefetch, 1, PREFETCH_MAX);
    line += ` prefetch:${opts.prefetch}`;
  }
  if (opts.ackTimeoutMs !== undefined) {
    checkInt("ackTimeoutMs", opts.ackTimeoutMs, 1, ACK_TIMEOUT_MS_MAX);
    line += ` ack_timeout:${opts.ackTimeoutMs}`;
  }
  if (opts.durable !== undefined) {
    if (typeof opts.durable !== "string" || !DURABLE_NAME.test(opts.durable)) {
      throw new BadArgumentError(
        `durable must be 1 to ${TOKEN_BYTES_MAX} bytes of A-Z a-z 0-9 _ - ., got ${
          JSON.stringify(opts.durable)
        }`,
      );
    }
    line += ` durable:${opts.durable}`;
  }
  if (opts.start !== undefined) {
    const start = startValue(opts.start);
    if (!resume) line += ` start:${start}`;
  }
  if (opts.filter !== undefined) line += ` filter:${filterValue(opts.filter)}`;
  return line;
}

/**
 * Checks a selector as the broker will (`BadFilterError` saying where) and
 * quotes it for the wire: `"` and `\` escaped with a `\`.
 *
 * @example
 * ```ts
 * import { filterValue } from "./commands.ts";
 * console.assert(filterValue(`a = 'x"y'`) === `"a = 'x\\"y'"`);
 * ```
 */
export function filterValue(selector: string): string {
  if (typeof selector !== "string") throw new BadArgumentError("filter must be a string");
  if (/[\r\n]/.test(selector)) throw new BadFilterError("a filter must not hold a line end");
  try {
    compileFilter(selector);
  } catch (e) {
    if (e instanceof FilterError) throw new BadFilterError(e.message);
    throw e;
  }
  return `"${selector.replace(/[\\"]/g, (c) => "\\" + c)}"`;
}

/**
 * Validates and returns a `BIND` line, or with `unbind` an `UNBIND` line
 * (without the line end).
 *
 * @example
 * ```ts
 * import { bindLine } from "./commands.ts";
 * console.assert(
 *   bindLine("topic:orders.*", "queue:audit", { filter: "priority > 4" }) ===
 *     `BIND topic:orders.* queue:audit filter:"priority > 4"`,
 * );
 * ```
 */
export function bindLine(
  pattern: string,
  queue: string,
  opts: BindOptions = {},
  unbind = false,
): string {
  checkDestination(pattern, true);
  if (!pattern.startsWith("topic:")) {
    throw new BadDestinationError(`a binding takes a topic pattern first, not ${pattern}`);
  }
  checkDestination(queue, false);
  if (!queue.startsWith("queue:")) {
    throw new BadDestinationError(`a binding feeds a queue, not ${queue}`);
  }
  if (unbind) return `UNBIND ${pattern} ${queue}`;
  let line = `BIND ${pattern} ${queue}`;
  if (opts.filter !== undefined) line += ` filter:${filterValue(opts.filter)}`;
  if (line.length > CONTROL_LINE_BYTES_MAX) {
    throw new BadFilterError(`the BIND line is over ${CONTROL_LINE_BYTES_MAX} bytes`);
  }
  return line;
}

/** Checks everything `subscribe` takes before it registers anything. */
export function checkSubscribe(dest: string, opts: SubWireOptions): AckMode {
  checkDestination(dest, true);
  if (opts.subId !== undefined) checkToken("subId", opts.subId);
  const durable = opts.durable !== undefined;
  if (durable || opts.start !== undefined) {
    const what = durable ? "durable" : "start";
    if (!dest.startsWith("topic:")) {
      throw new BadArgumentError(`${what} takes a declared topic, not ${dest}`);
    }
    if (destinationError(dest, false) !== undefined) {
      throw new BadDestinationError(`${what} takes a topic without wildcards, not ${dest}`);
    }
  }
  const ack = opts.ack ?? (dest.startsWith("queue:") || durable ? "explicit" : "none");
  if (ack !== "explicit" && ack !== "none") {
    throw new BadArgumentError(`ack must be "explicit" or "none", got ${JSON.stringify(ack)}`);
  }
  if (durable && ack !== "explicit") {
    throw new BadArgumentError(`a durable subscription has explicit acks (ack: "none" given)`);
  }
  subLine(dest, "x", ack, opts);
  return ack;
}

/**
 * Validates and returns a `DECLARE` line (without the line end).
 *
 * @example
 * ```ts
 * import { declareLine } from "./commands.ts";
 * console.assert(
 *   declareLine("topic:orders", { retainMessages: 1000, retainAgeMs: 60000 }) ===
 *     "DECLARE topic:orders retain_messages:1000 retain_age:60000",
 * );
 * ```
 */
export function declareLine(topic: string, opts: DeclareOptions): string {
  checkDestination(topic, false);
  if (!topic.startsWith("topic:")) {
    throw new BadDestinationError(
      `declare takes a topic (declareQueue declares a queue): ${topic}`,
    );
  }
  if (typeof opts !== "object" || opts === null) {
    throw new BadArgumentError("declare needs options with at least one retention limit");
  }
  let line = `DECLARE ${topic}`;
  if (opts.retainMessages !== undefined) {
    checkInt("retainMessages", opts.retainMessages, 1, RETAIN_MESSAGES_MAX);
    line += ` retain_messages:${opts.retainMessages}`;
  }
  if (opts.retainBytes !== undefined) {
    checkInt("retainBytes", opts.retainBytes, 1, RETAIN_BYTES_MAX);
    line += ` retain_bytes:${opts.retainBytes}`;
  }
  if (opts.retainAgeMs !== undefined) {
    checkInt("retainAgeMs", opts.retainAgeMs, 1, RETAIN_AGE_MS_MAX);
    line += ` retain_age:${opts.retainAgeMs}`;
  }
  if (line.length === 8 + topic.length) {
    throw new BadArgumentError(
      "declare needs at least one of retainMessages, retainBytes, retainAgeMs",
    );
  }
  return line;
}

/**
 * Validates and returns a `DECLARE queue:` line (without the line end).
 *
 * @example
 * ```ts
 * import { declareQueueLine } from "./commands.ts";
 * console.assert(
 *   declareQueueLine("queue:jobs", { maxMessages: 1000, dlq: null }) ===
 *     "DECLARE queue:jobs max_messages:1000 dlq:none",
 * );
 * ```
 */
export function declareQueueLine(queue: string, opts: QueueOptions = {}): string {
  checkDestination(queue, false);
  if (!queue.startsWith("queue:")) {
    throw new BadDestinationError(`declareQueue takes a queue, not ${queue}`);
  }
  if (typeof opts !== "object" || opts === null) {
    throw new BadArgumentError("declareQueue options must be an object");
  }
  let line = `DECLARE ${queue}`;
  const int = (name: keyof QueueOptions, wire: string, min: number, max: number) => {
    const v = opts[name];
    if (v === undefined) return;
    checkInt(name, v as number, min, max);
    line += ` ${wire}:${v}`;
  };
  int("maxMessages", "max_messages", 1, DECLARED_QUEUE_MESSAGES_MAX);
  int("maxBytes", "max_bytes", 1, DECLARED_QUEUE_BYTES_MAX);
  if (opts.overflow !== undefined) {
    if (opts.overflow !== "reject" && opts.overflow !== "drop_oldest") {
      throw new BadArgumentError(`overflow must be "reject" or "drop_oldest"`);
    }
    line += ` overflow:${opts.overflow}`;
  }
  int("ttlMs", "ttl", 1, TTL_MS_MAX);
  int("maxDeliveries", "max_deliveries", 1, DECLARED_DELIVERIES_MAX);
  if (opts.dlq === null) line += " dlq:none";
  else if (opts.dlq !== undefined) {
    checkDestination(opts.dlq, false);
    if (!opts.dlq.startsWith("queue:")) {
      throw new BadDestinationError(`dlq takes a queue or null, not ${opts.dlq}`);
    }
    line += ` dlq:${opts.dlq}`;
  }
  int("ackTimeoutMs", "ack_timeout", 1, ACK_TIMEOUT_MS_MAX);
  int("dedupWindowMs", "dedup_window", 0, DEDUP_WINDOW_MS_MAX);
  return line;
}

/** The `UNSUB` line of a subscription (without the line end); `forget` deletes its durable. */
export function unsubLine(sid: string, forget = false): string {
  return forget ? `UNSUB ${sid} forget:true` : `UNSUB ${sid}`;
}

/**
 * Most ids on one `ACK` line: `ACK_IDS_MAX`, and what fits in
 * `CONTROL_LINE_BYTES_MAX` bytes (checked per line by `ackGroups`).
 */
export const ACK_IDS_PER_LINE = ACK_IDS_MAX;

/**
 * Groups ids into `ACK` lines: at most `ACK_IDS_PER_LINE` ids and at most
 * `CONTROL_LINE_BYTES_MAX` bytes per line.
 */
export function ackGroups(ids: readonly string[]): string[][] {
  const groups: string[][] = [];
  let group: string[] = [];
  let bytes = 3; // "ACK"
  for (const id of ids) {
    const more = 8 + id.length; // " msg_id:" + id
    if (group.length === ACK_IDS_PER_LINE || bytes + more > CONTROL_LINE_BYTES_MAX) {
      groups.push(group);
      group = [];
      bytes = 3;
    }
    group.push(id);
    bytes += more;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** Appends one `ACK` line per group of {@linkcode ackGroups}. */
export function encodeAcks(out: OutBuf, groups: readonly string[][]): void {
  for (const group of groups) out.writeString(`ACK msg_id:${group.join(" msg_id:")}\r\n`);
}

/** The `NACK` line of one message (without the line end); validates the delay. */
export function nackLine(id: string, delayMs: number | undefined): string {
  if (delayMs === undefined || delayMs === 0) return `NACK msg_id:${id}`;
  checkInt("delayMs", delayMs, 0, NACK_DELAY_MS_MAX);
  return `NACK msg_id:${id} delay:${delayMs}`;
}

/** Body conveniences: strings are sent as UTF-8. */
export function toBytes(body: Uint8Array | string): Uint8Array {
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  throw new TypeError("body must be a Uint8Array or a string");
}
