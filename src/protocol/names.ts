/**
 * Destination names: `queue:<name>` / `topic:<name>`, dot-separated tokens,
 * with `*` and `>` wildcards allowed only in topic subscriptions.
 *
 * @module
 */
import { DESTINATION_BYTES_MAX } from "../config/limits.ts";

/** Why a destination is not valid, or undefined when it is. */
export function destinationError(dest: string, allowWildcards: boolean): string | undefined {
  if (dest.length > DESTINATION_BYTES_MAX) {
    return `destination longer than ${DESTINATION_BYTES_MAX} bytes`;
  }
  let start: number;
  const isTopic = dest.startsWith("topic:");
  if (isTopic) start = 6;
  else if (dest.startsWith("queue:")) start = 6;
  else return `destination ${JSON.stringify(dest)} must start with "queue:" or "topic:"`;
  if (start === dest.length) return "destination has an empty name";
  const wild = allowWildcards && isTopic;
  let tokenStart = start;
  for (let i = start; i <= dest.length; i++) {
    const c = i === dest.length ? 0x2e : dest.charCodeAt(i);
    if (c === 0x2e) {
      const len = i - tokenStart;
      if (len === 0) return `destination ${JSON.stringify(dest)} has an empty token`;
      const first = dest.charCodeAt(tokenStart);
      if (len === 1 && (first === 0x2a || first === 0x3e)) {
        if (!wild) return `wildcards are only allowed in topic subscriptions`;
        if (first === 0x3e && i !== dest.length) return `">" must be the last token`;
      }
      tokenStart = i + 1;
      continue;
    }
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
      c === 0x5f || c === 0x2d;
    if (!ok) {
      const isWildToken = (c === 0x2a || c === 0x3e) && i === tokenStart &&
        (i + 1 === dest.length || dest.charCodeAt(i + 1) === 0x2e);
      if (!isWildToken) {
        return `destination ${JSON.stringify(dest)} has a character outside A-Z a-z 0-9 _ -`;
      }
    }
  }
  return undefined;
}

/** Whether a valid destination has wildcard tokens. */
export function hasWildcard(dest: string): boolean {
  for (let i = 6; i < dest.length; i++) {
    const c = dest.charCodeAt(i);
    if ((c === 0x2a || c === 0x3e) && dest.charCodeAt(i - 1) === (i === 6 ? 0x3a : 0x2e)) {
      return true;
    }
  }
  return false;
}

/** Whether a topic subscription pattern matches a concrete topic (both with the `topic:` prefix). */
export function matches(pattern: string, topic: string): boolean {
  const p = pattern.slice(6).split(".");
  const t = topic.slice(6).split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== "*" && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/**
 * A place a command takes a destination, and what it accepts there: the
 * name grammar above, then the one kind the place takes, if any.
 */
export interface DestinationSlot {
  /** The one kind it takes; undefined: a queue or a topic. */
  readonly kind?: "queue" | "topic";
  /** A topic pattern (`*`, `>`) is allowed. */
  readonly pattern?: boolean;
  /** The option it is the value of (`reply_to`, `dlq`): grammar errors name it. */
  readonly option?: string;
  /** What a destination of another kind is told, before `, not <dest>`. */
  readonly refusal?: string;
}

/**
 * The destination places of the commands (docs/PROTOCOL.md), one rule each,
 * shared by the broker's parser, the gRPC front end and the client's
 * encoders, so that all three refuse the same destinations with the same
 * words (`BAD_DESTINATION`).
 */
export const DEST = {
  /** `PUB <dest>`: a queue or a topic, no pattern. */
  PUBLISH: {},
  /** `reply_to:<dest>` of a publish. */
  REPLY_TO: { option: "reply_to" },
  /** `SUB <dest>`: a queue, a topic or a topic pattern. */
  SUBSCRIBE: { pattern: true },
  /** `DECLARE <dest>` on the wire: a topic's retention or a queue's settings. */
  DECLARE: {},
  /** A topic's retention (gRPC's Declare, the client's `declare`). */
  DECLARE_TOPIC: { kind: "topic", refusal: "declare takes a topic" },
  /** A queue's settings (the client's `declareQueue`). */
  DECLARE_QUEUE: { kind: "queue", refusal: "declareQueue takes a queue" },
  /** `BIND <pattern> ...`, `UNBIND <pattern> ...`. */
  BIND_PATTERN: { kind: "topic", pattern: true, refusal: "a binding takes a topic pattern first" },
  /** `BIND ... <queue>`, `UNBIND ... <queue>`. */
  BIND_QUEUE: { kind: "queue", refusal: "a binding feeds a queue" },
  /** `dlq:<dest>` of a queue. */
  DLQ: { kind: "queue", option: "dlq", refusal: "dlq takes a queue" },
} as const satisfies Record<string, DestinationSlot>;

/** Why `dest` cannot stand in `slot` (one of `DEST`), or undefined when it can. */
export function slotError(dest: string, slot: DestinationSlot): string | undefined {
  const why = destinationError(dest, slot.pattern === true);
  if (why !== undefined) return slot.option === undefined ? why : `${slot.option}: ${why}`;
  if (slot.kind !== undefined && !dest.startsWith(slot.kind === "queue" ? "queue:" : "topic:")) {
    return `${slot.refusal ?? `a ${slot.kind} is needed`}, not ${dest}`;
  }
  return undefined;
}
