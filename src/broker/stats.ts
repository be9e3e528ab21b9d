/**
 * The broker's admin data as plain objects: what `/api/stats`, `/metrics`,
 * the CLI and the coming dashboard all read. Each is built by the thing it
 * measures (`Queue.stats()`, `Topic.stats()`, `Subscription.stats()`,
 * `Broker.stats()`), at the moment it is asked for, never on the message
 * path, and building one changes nothing.
 *
 * Shapes follow nats-server's monitoring (`/varz`, `/connz`, `/subsz`): keys
 * in snake_case, sizes in bytes.
 *
 * @module
 */

/** Broker-wide figures. */
export interface BrokerStats {
  /** Epoch ms when the broker started. */
  started_at_ms: number;
  /** Messages the broker accepted. */
  published_msgs: number;
  published_bytes: number;
  /** Publishes refused because a queue was full. */
  rejected_msgs: number;
  /** Topic messages published with no matching subscription. */
  unrouted_msgs: number;
  queues: number;
  /** Topics with at least one subscriber (declared topics without one are not counted). */
  topics: number;
  /** Topics declared with retention (`DECLARE`), with or without subscribers. */
  declared_topics: number;
  /** Durable subscriptions over all declared topics, connected or not. */
  durables: number;
  /** Topic-to-queue bindings (`BIND`). */
  bindings: number;
  /** Copies of topic messages enqueued through bindings. */
  routed_msgs: number;
  /** Queues declared with settings (`DECLARE queue:`). */
  declared_queues: number;
  /** Messages published with `delay`/`deliver_at` and not yet due, queues and topics. */
  scheduled_msgs: number;
  /** Publishes answered `duplicate:true`. */
  duplicate_msgs: number;
  /** Publish-to-first-delivery latency; `buckets` are cumulative as in Prometheus. */
  latency: { count: number; sum_s: number; buckets: { le: number; count: number }[] };
}

/** One subscription of a connection (as `/subsz` per client). */
export interface SubscriptionStats {
  sid: string;
  /** The subscribed destination or pattern. */
  destination: string;
  ack: "explicit" | "none";
  prefetch: number;
  /** Messages delivered and not yet acked. */
  inflight: number;
  delivered: number;
  /** Its `filter` selector, when it has one. */
  filter?: string;
  /** Topic subscriptions: messages skipped by the drop-oldest policy. */
  dropped?: number;
  /** Topic subscriptions: how far behind the most lagging bound topic it is. */
  lag_msgs?: number;
  lag_bytes?: number;
}

/** One topic-to-queue binding (`BIND`). */
export interface BindingStats {
  pattern: string;
  queue: string;
  filter?: string;
  /** Copies it enqueued. */
  routed: number;
  /** Publishes it refused: its queue was full under `reject`. */
  rejected: number;
}

/** One queue. */
export interface QueueStats {
  name: string;
  /** Messages waiting for a consumer. */
  depth: number;
  inflight: number;
  delayed: number;
  size: number;
  bytes: number;
  consumers: number;
  published: number;
  delivered: number;
  acked: number;
  redelivered: number;
  dead_lettered: number;
  expired: number;
  dropped: number;
  rejected: number;
  /** Messages published with `delay`/`deliver_at`, not yet due (a part of `delayed`). */
  scheduled: number;
  /** Publishes answered `duplicate:true` (a `dedup_id` seen within the window). */
  duplicates: number;
  /** Dedup ids remembered now. */
  dedup_ids: number;
  /** Whether it was declared (`DECLARE queue:`). */
  declared: boolean;
  /** The settings it works by (declared or the server's defaults). */
  settings: QueueSettingsStats;
  /** Removed by an operator's purge. */
  purged: number;
}

/** The settings of a queue, resolved (see `DECLARE queue:` in docs/PROTOCOL.md). */
export interface QueueSettingsStats {
  max_messages: number;
  max_bytes: number;
  overflow: "reject" | "drop_oldest";
  /** Default message TTL (0: none). */
  ttl_ms: number;
  max_deliveries: number;
  /** Dead-letter queue; null: dead letters are dropped. */
  dlq: string | null;
  ack_timeout_ms: number;
  /** 0: no deduplication. */
  dedup_window_ms: number;
}

/** A declared topic's retention limits. */
export interface RetentionStats {
  messages: number;
  bytes: number;
  /** 0: no age limit. */
  age_ms: number;
}

/** One durable subscription of a declared topic. */
export interface DurableStats {
  name: string;
  /** Whether a subscription uses it now. */
  connected: boolean;
  /** The live subscription's sid, when connected. */
  sid: string | null;
  /** Id of the last settled message: everything up to it counts as done. */
  position: number;
  /** Retained messages after its position (delivered and unacked ones included). */
  backlog_msgs: number;
  /** Messages it never got because retention dropped them first. */
  skipped: number;
}

/** One topic. */
export interface TopicStats {
  name: string;
  /** Whether it was declared with retention (`DECLARE`). */
  declared: boolean;
  /** Retention limits of a declared topic; null for one that is not declared. */
  retention: RetentionStats | null;
  subscribers: number;
  /** Messages the topic holds: for lagging subscribers, and within retention when declared. */
  retained: number;
  /** Payload bytes of the held messages. */
  retained_bytes: number;
  /** The most lagging subscriber's lag. */
  max_lag_msgs: number;
  max_lag_bytes: number;
  published: number;
  delivered: number;
  dropped: number;
  slow_consumers: number;
  /** Messages a declared topic dropped by its retention limits. */
  retention_dropped: number;
  /** Durable subscriptions, by name. */
  durables: DurableStats[];
}

/** Which part of a list to return. */
export interface PageOptions {
  offset: number;
  limit: number;
}

/** A page of a list: `total` says how many there are, so a cut is visible. */
export interface Page<T> {
  total: number;
  offset: number;
  limit: number;
  list: T[];
}

/** The page `o` of `all`, each element mapped by `f` (only those on the page are). */
export function page<T, R>(all: readonly T[], o: PageOptions, f: (x: T) => R): Page<R> {
  return {
    total: all.length,
    offset: o.offset,
    limit: o.limit,
    list: all.slice(o.offset, o.offset + o.limit).map(f),
  };
}

/** A map's values in the order of their keys (names sort the admin lists). */
export function byName<T>(m: ReadonlyMap<string, T>): T[] {
  return [...m.keys()].sort().map((k) => m.get(k)!);
}
