/**
 * Declared queues (`DECLARE queue:<name>`): per-queue settings that override
 * the server's defaults. A declaration is idempotent: the same settings again
 * are fine, other settings are `ERR DECLARE_CONFLICT` (a queue's contract
 * does not change under its producers' feet; RabbitMQ's `PRECONDITION_FAILED`
 * on a redeclare works the same way). Declarations are stored with the
 * declared topics' state record (`$relayr.topics`, see topic_state.ts).
 *
 * @module
 */
import { DECLARED_QUEUES_MAX, DEDUP_WINDOW_MS } from "../config/mod.ts";
import type { QueueDeclareOptions } from "../protocol/mod.ts";
import { BrokerError, type BrokerOptions, type QueueOverflow } from "./types.ts";

/** The settings a queue works by: its declaration over the server's defaults. */
export interface QueueSettings {
  readonly messagesMax: number;
  readonly bytesMax: number;
  readonly overflow: QueueOverflow;
  /** Default TTL of a message published without one (0: none). */
  readonly ttlMs: number;
  readonly maxDeliveries: number;
  /** Where dead letters go; null drops them (`dlq:none`). */
  readonly dlq: string | null;
  /** Default ack timeout of a consumer that gives none. */
  readonly ackTimeoutMs: number;
  /** How long a `dedup_id` is remembered (0: no deduplication). */
  readonly dedupWindowMs: number;
  /** The declaration as given, or undefined for a queue that is not declared. */
  readonly declared: QueueDeclareOptions | undefined;
}

/** One declaration as stored in the state record (the options as given, and the name). */
export type QueueDeclaration = { name: string } & Partial<QueueDeclareOptions>;

const KEYS = [
  "maxMessages",
  "maxBytes",
  "overflow",
  "ttlMs",
  "maxDeliveries",
  "dlq",
  "ackTimeoutMs",
  "dedupWindowMs",
] as const satisfies readonly (keyof QueueDeclareOptions)[];

/** The settings of queue `name` under declaration `d` (undefined: the server's defaults). */
export function resolveSettings(
  name: string,
  d: QueueDeclareOptions | undefined,
  o: BrokerOptions,
): QueueSettings {
  return {
    messagesMax: d?.maxMessages ?? o.queueMessagesMax,
    bytesMax: d?.maxBytes ?? o.queueBytesMax,
    overflow: d?.overflow === undefined
      ? o.queueOverflow
      : d.overflow === "drop_oldest"
      ? "drop-oldest"
      : "reject",
    ttlMs: d?.ttlMs ?? 0,
    maxDeliveries: d?.maxDeliveries ?? o.maxDeliveries,
    dlq: d?.dlq === undefined ? `${name}.dlq` : d.dlq,
    ackTimeoutMs: d?.ackTimeoutMs ?? o.ackTimeoutMs,
    dedupWindowMs: d?.dedupWindowMs ?? DEDUP_WINDOW_MS,
    declared: d,
  };
}

/** Whether two declarations give the same settings (an option left out is not one given). */
export function sameDeclaration(a: Partial<QueueDeclareOptions>, b: QueueDeclareOptions): boolean {
  return KEYS.every((k) => a[k] === b[k]);
}

/** The declared queues of one broker: their declarations, by name. */
export class DeclaredQueues {
  #byName = new Map<string, QueueDeclareOptions>();

  /** Declared queues. */
  get size(): number {
    return this.#byName.size;
  }

  /** The declaration of `name`, if it is declared. */
  get(name: string): QueueDeclareOptions | undefined {
    return this.#byName.get(name);
  }

  /**
   * Declares `name`; true when it is new (to be stored), false when it was
   * declared with the same settings. Throws `DECLARE_CONFLICT` or `LIMIT`.
   */
  declare(name: string, d: QueueDeclareOptions): boolean {
    if (!this.check(name, d)) return false;
    this.#byName.set(name, d);
    return true;
  }

  /**
   * Whether declaring `name` with `d` would be new (false: declared so
   * already), declaring nothing. Throws `DECLARE_CONFLICT` or `LIMIT`.
   */
  check(name: string, d: QueueDeclareOptions): boolean {
    const old = this.#byName.get(name);
    if (old !== undefined) {
      if (sameDeclaration(old, d)) return false;
      throw new BrokerError(
        "DECLARE_CONFLICT",
        `${name} is declared with other settings: ${describe(old)}`,
      );
    }
    if (this.#byName.size >= DECLARED_QUEUES_MAX) {
      throw new BrokerError("LIMIT", `the server holds ${DECLARED_QUEUES_MAX} declared queues`);
    }
    return true;
  }

  /**
   * (cluster) Sets the declaration of `name` as the cluster stores it, over
   * any other held here; false when it is new and the limit is reached.
   */
  set(name: string, d: QueueDeclareOptions): boolean {
    if (!this.#byName.has(name) && this.#byName.size >= DECLARED_QUEUES_MAX) return false;
    this.#byName.set(name, d);
    return true;
  }

  /** Declarations read back from the state record at start. */
  restore(list: readonly QueueDeclaration[] | undefined): void {
    for (const x of list ?? []) {
      this.#byName.set(x.name, {
        maxMessages: x.maxMessages ?? undefined,
        maxBytes: x.maxBytes ?? undefined,
        overflow: x.overflow ?? undefined,
        ttlMs: x.ttlMs ?? undefined,
        maxDeliveries: x.maxDeliveries ?? undefined,
        dlq: x.dlq, // null (dlq:none) is a setting: kept as it is
        ackTimeoutMs: x.ackTimeoutMs ?? undefined,
        dedupWindowMs: x.dedupWindowMs ?? undefined,
      });
    }
  }

  /** The declarations for the state record (options left out are not written). */
  record(): QueueDeclaration[] {
    const out: QueueDeclaration[] = [];
    for (const [name, d] of this.#byName) out.push({ name, ...d });
    return out;
  }
}

/** `key:value` of the options given, as a DECLARE line has them, for error texts. */
function describe(d: QueueDeclareOptions): string {
  const wire: Record<(typeof KEYS)[number], string> = {
    maxMessages: "max_messages",
    maxBytes: "max_bytes",
    overflow: "overflow",
    ttlMs: "ttl",
    maxDeliveries: "max_deliveries",
    dlq: "dlq",
    ackTimeoutMs: "ack_timeout",
    dedupWindowMs: "dedup_window",
  };
  const parts = KEYS.filter((k) => d[k] !== undefined).map((k) =>
    `${wire[k]}:${d[k] === null ? "none" : d[k]}`
  );
  return parts.length === 0 ? "(server defaults)" : parts.join(" ");
}
