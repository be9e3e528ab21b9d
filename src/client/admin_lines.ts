/**
 * The lines that shape the broker's destinations: `BIND` and `UNBIND` (a
 * topic pattern feeding a queue), `DECLARE` of a topic's retention and of a
 * queue's limits. Each is checked in full before it is sent.
 *
 * @module
 */
import {
  ACK_TIMEOUT_MS_MAX,
  CONTROL_LINE_BYTES_MAX,
  DECLARED_DELIVERIES_MAX,
  DECLARED_QUEUE_BYTES_MAX,
  DECLARED_QUEUE_MESSAGES_MAX,
  DEDUP_WINDOW_MS_MAX,
  RETAIN_AGE_MS_MAX,
  RETAIN_BYTES_MAX,
  RETAIN_MESSAGES_MAX,
  TTL_MS_MAX,
} from "../config/limits.ts";
import { DEST } from "../protocol/mod.ts";
import { checkDestination, filterValue, intOption } from "./checks.ts";
import { BadArgumentError, BadFilterError } from "./errors.ts";
import type { BindOptions, DeclareOptions, QueueOptions } from "./options.ts";

/**
 * Validates and returns a `BIND` line, or with `unbind` an `UNBIND` line
 * (without the line end).
 *
 * @example
 * ```ts
 * import { bindLine } from "./admin_lines.ts";
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
  checkDestination(pattern, DEST.BIND_PATTERN);
  checkDestination(queue, DEST.BIND_QUEUE);
  if (unbind) return `UNBIND ${pattern} ${queue}`;
  let line = `BIND ${pattern} ${queue}`;
  if (opts.filter !== undefined) line += ` filter:${filterValue(opts.filter)}`;
  if (line.length > CONTROL_LINE_BYTES_MAX) {
    throw new BadFilterError(`the BIND line is over ${CONTROL_LINE_BYTES_MAX} bytes`);
  }
  return line;
}

/**
 * Validates and returns a `DECLARE` line (without the line end).
 *
 * @example
 * ```ts
 * import { declareLine } from "./admin_lines.ts";
 * console.assert(
 *   declareLine("topic:orders", { retainMessages: 1000, retainAgeMs: 60000 }) ===
 *     "DECLARE topic:orders retain_messages:1000 retain_age:60000",
 * );
 * ```
 */
export function declareLine(topic: string, opts: DeclareOptions): string {
  checkDestination(topic, DEST.DECLARE_TOPIC);
  if (typeof opts !== "object" || opts === null) {
    throw new BadArgumentError("declare needs options with at least one retention limit");
  }
  let line = `DECLARE ${topic}`;
  line += intOption(
    "retainMessages",
    "retain_messages",
    opts.retainMessages,
    1,
    RETAIN_MESSAGES_MAX,
  );
  line += intOption("retainBytes", "retain_bytes", opts.retainBytes, 1, RETAIN_BYTES_MAX);
  line += intOption("retainAgeMs", "retain_age", opts.retainAgeMs, 1, RETAIN_AGE_MS_MAX);
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
 * import { declareQueueLine } from "./admin_lines.ts";
 * console.assert(
 *   declareQueueLine("queue:jobs", { maxMessages: 1000, dlq: null }) ===
 *     "DECLARE queue:jobs max_messages:1000 dlq:none",
 * );
 * ```
 */
export function declareQueueLine(queue: string, opts: QueueOptions = {}): string {
  checkDestination(queue, DEST.DECLARE_QUEUE);
  if (typeof opts !== "object" || opts === null) {
    throw new BadArgumentError("declareQueue options must be an object");
  }
  let line = `DECLARE ${queue}`;
  line += intOption(
    "maxMessages",
    "max_messages",
    opts.maxMessages,
    1,
    DECLARED_QUEUE_MESSAGES_MAX,
  );
  line += intOption("maxBytes", "max_bytes", opts.maxBytes, 1, DECLARED_QUEUE_BYTES_MAX);
  if (opts.overflow !== undefined) {
    if (opts.overflow !== "reject" && opts.overflow !== "drop_oldest") {
      throw new BadArgumentError(`overflow must be "reject" or "drop_oldest"`);
    }
    line += ` overflow:${opts.overflow}`;
  }
  line += intOption("ttlMs", "ttl", opts.ttlMs, 1, TTL_MS_MAX);
  line += intOption(
    "maxDeliveries",
    "max_deliveries",
    opts.maxDeliveries,
    1,
    DECLARED_DELIVERIES_MAX,
  );
  if (opts.dlq === null) line += " dlq:none";
  else if (opts.dlq !== undefined) {
    checkDestination(opts.dlq, DEST.DLQ);
    line += ` dlq:${opts.dlq}`;
  }
  line += intOption("ackTimeoutMs", "ack_timeout", opts.ackTimeoutMs, 1, ACK_TIMEOUT_MS_MAX);
  line += intOption("dedupWindowMs", "dedup_window", opts.dedupWindowMs, 0, DEDUP_WINDOW_MS_MAX);
  return line;
}
