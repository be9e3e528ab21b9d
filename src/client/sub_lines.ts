/**
 * The lines of a subscription's life: `SUB` (checked in full before the
 * subscription is registered), `UNSUB`, and the `ACK` and `NACK` lines that
 * settle its messages.
 *
 * @module
 */
import {
  ACK_IDS_MAX,
  ACK_TIMEOUT_MS_MAX,
  CONTROL_LINE_BYTES_MAX,
  NACK_DELAY_MS_MAX,
  PREFETCH_MAX,
  TOKEN_BYTES_MAX,
} from "../config/limits.ts";
import { DEST, destinationError, DURABLE_NAME } from "../protocol/mod.ts";
import {
  checkDestination,
  checkInt,
  checkToken,
  filterValue,
  intOption,
  startValue,
} from "./checks.ts";
import { BadArgumentError, BadDestinationError } from "./errors.ts";
import type { AckMode, SubWireOptions } from "./options.ts";
import type { OutBuf } from "./outbound.ts";

/**
 * Validates the wire options of a subscription; returns its `SUB` line
 * (without the line end). `resume`: the line that renews the subscription
 * after a reconnect, which leaves `start` out (a durable resumes at its
 * stored position; a plain replay would otherwise repeat its history).
 *
 * @example
 * ```ts
 * import { subLine } from "./sub_lines.ts";
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
  line += intOption("prefetch", "prefetch", opts.prefetch, 1, PREFETCH_MAX);
  line += intOption("ackTimeoutMs", "ack_timeout", opts.ackTimeoutMs, 1, ACK_TIMEOUT_MS_MAX);
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

/** Checks everything `subscribe` takes before it registers anything. */
export function checkSubscribe(dest: string, opts: SubWireOptions): AckMode {
  checkDestination(dest, DEST.SUBSCRIBE);
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
