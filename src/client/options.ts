/**
 * Options of the client's commands: what a caller may set on a publish, a
 * subscription, a binding, a topic's retention and a declared queue. The
 * encoders (pub_frame.ts, sub_lines.ts, admin_lines.ts) check and write them.
 *
 * @module
 */
import type { Codec } from "./codec.ts";

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

/** Settings of `Client.declareQueue` (its `DECLARE queue:` line); any left out take the broker's defaults. */
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

/** Retention limits of `Client.declare` (its `DECLARE topic:` line); at least one is required. */
export interface DeclareOptions {
  /** Most messages retained, 1-10000000; broker default: its queue message limit. */
  retainMessages?: number;
  /** Most payload bytes retained, 1-1073741824; broker default: its queue byte limit. */
  retainBytes?: number;
  /** Drop retained messages older than this many ms, 1-2592000000; default: no age limit. */
  retainAgeMs?: number;
}
