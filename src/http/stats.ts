/**
 * Admin data as plain objects, built from the live `Server` and `Broker` at
 * the moment they are asked for (never on the hot path) and read-only: nothing
 * here changes broker or server state. `/api/stats` serialises these objects
 * and `/metrics` is rendered from them, so both always agree.
 *
 * Shapes follow nats-server's monitoring (`/varz`, `/connz`, `/subsz`): JSON
 * keys in snake_case, times as ISO strings, sizes in bytes.
 *
 * @module
 */
import {
  type Broker,
  type Durable,
  LATENCY_BUCKETS_S,
  type Queue,
  QueueConsumer,
  type Subscription,
  type Topic,
  type TopicSubscription,
} from "../broker/mod.ts";
import type { Connection, Server } from "../server/mod.ts";

/** What the stats are built from. */
export interface StatsSource {
  readonly server: Server;
  readonly broker: Broker;
  readonly store: { readonly kind: string };
  /** Relayr's version. */
  readonly version: string;
  readonly runtime: {
    readonly name: string;
    readonly version: string;
    memory(): { rss: number; heapUsed: number };
  };
  /** Event-loop lag in ms, when it is measured (see `loop_lag.ts`). */
  loopLag?(): { lastMs: number; maxMs: number };
}

/** Server-wide figures (as `/varz`). */
export interface ServerStats {
  server_id: string;
  version: string;
  runtime: string;
  runtime_version: string;
  store: string;
  port: number;
  ready: boolean;
  started_at: string;
  now: string;
  uptime_s: number;
  connections: number;
  total_connections: number;
  /** PUB frames and their payload bytes received from clients (refused ones included). */
  in_msgs: number;
  in_bytes: number;
  /** MSG frames and their payload bytes sent to clients (redeliveries included). */
  out_msgs: number;
  out_bytes: number;
  /** Messages the broker accepted. */
  published_msgs: number;
  published_bytes: number;
  /** Publishes refused because a queue was full. */
  rejected_msgs: number;
  /** Topic messages published with no matching subscription. */
  unrouted_msgs: number;
  slow_consumers: number;
  closed_by_reason: Record<string, number>;
  queues: number;
  /** Topics with at least one subscriber (declared topics without one are not counted). */
  topics: number;
  /** Topics declared with retention (`DECLARE`), with or without subscribers. */
  declared_topics: number;
  /** Durable subscriptions over all declared topics, connected or not. */
  durables: number;
  mem: { rss: number; heap_used: number };
  event_loop_lag_ms: { last: number; max: number } | null;
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
  /** Topic subscriptions: messages skipped by the drop-oldest policy. */
  dropped?: number;
  /** Topic subscriptions: how far behind the most lagging bound topic it is. */
  lag_msgs?: number;
  lag_bytes?: number;
}

/** One open connection (as `/connz`). */
export interface ConnectionStats {
  id: number;
  client_id: string | null;
  name: string | null;
  remote_addr: string;
  opened_at: string;
  uptime_s: number;
  idle_s: number;
  pending_bytes: number;
  in_msgs: number;
  in_bytes: number;
  out_msgs: number;
  out_bytes: number;
  subscriptions: SubscriptionStats[];
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

/** A recently closed connection and why it closed. */
export interface ClosedConnectionStats {
  id: number;
  client_id: string | null;
  name: string | null;
  remote_addr: string;
  reason: string;
  detail: string;
  opened_at: string;
  closed_at: string;
  in_msgs: number;
  in_bytes: number;
  out_msgs: number;
  out_bytes: number;
}

/** A page of a list: `total` says how many there are, so a cut is visible. */
export interface Page<T> {
  total: number;
  offset: number;
  limit: number;
  list: T[];
}

/** Everything `/api/stats` returns. */
export interface Stats {
  server: ServerStats;
  connections: Page<ConnectionStats>;
  queues: Page<QueueStats>;
  topics: Page<TopicStats>;
  /** Newest first. */
  closed_connections: ClosedConnectionStats[];
}

/** Which part of the lists to return. */
export interface StatsOptions {
  offset: number;
  limit: number;
  /** Closed connections to list. */
  closed: number;
  /** Whether to list each connection's subscriptions. */
  subs: boolean;
}

/** Messages and bytes of one connection, in and out. */
interface Traffic {
  msgsIn: number;
  bytesIn: number;
  msgsOut: number;
  bytesOut: number;
}

/**
 * Builds the stats from the server and broker at call time; keeps no state.
 * Traffic totals are the server's totals of closed connections plus the live
 * connections' counters, so they never go down.
 */
export class StatsCollector {
  readonly source: StatsSource;

  constructor(source: StatsSource) {
    this.source = source;
  }

  /** Server-wide figures. */
  server(): ServerStats {
    const { server, broker, runtime } = this.source;
    const traffic = this.#traffic();
    const now = Date.now();
    const mem = runtime.memory();
    const lag = this.source.loopLag?.();
    const h = broker.latency;
    let cumulative = 0;
    const buckets = LATENCY_BUCKETS_S.map((le, i) => ({ le, count: cumulative += h.counts[i] }));
    return {
      server_id: server.serverId,
      version: this.source.version,
      runtime: runtime.name,
      runtime_version: runtime.version,
      store: this.source.store.kind,
      port: server.port,
      ready: server.ready,
      started_at: new Date(broker.startedAt).toISOString(),
      now: new Date(now).toISOString(),
      uptime_s: (now - broker.startedAt) / 1000,
      connections: server.connections.size,
      total_connections: server.totalConnections,
      in_msgs: traffic.msgsIn,
      in_bytes: traffic.bytesIn,
      out_msgs: traffic.msgsOut,
      out_bytes: traffic.bytesOut,
      published_msgs: broker.counters.published,
      published_bytes: broker.counters.publishedBytes,
      rejected_msgs: broker.counters.rejected,
      unrouted_msgs: broker.counters.unrouted,
      slow_consumers: server.closedByReason.SLOW_CONSUMER,
      closed_by_reason: { ...server.closedByReason },
      queues: broker.queues.size,
      ...topicCounts(broker.topics),
      mem: { rss: mem.rss, heap_used: mem.heapUsed },
      event_loop_lag_ms: lag === undefined ? null : { last: lag.lastMs, max: lag.maxMs },
      latency: { count: h.count, sum_s: h.sumMs / 1000, buckets },
    };
  }

  /** Open connections by id, a page of them. */
  connections(o: Pick<StatsOptions, "offset" | "limit" | "subs">): Page<ConnectionStats> {
    const all = [...this.source.server.connections.values()].sort((a, b) => a.id - b.id);
    const now = Date.now();
    return page(all, o, (c) => connectionStats(c, now, o.subs));
  }

  /** Queues by name, a page of them. */
  queues(o: Pick<StatsOptions, "offset" | "limit">): Page<QueueStats> {
    return page(sortedValues(this.source.broker.queues), o, queueStats);
  }

  /** Topics by name, a page of them. */
  topics(o: Pick<StatsOptions, "offset" | "limit">): Page<TopicStats> {
    return page(sortedValues(this.source.broker.topics), o, topicStats);
  }

  /** The last `n` closed connections, newest first. */
  closed(n: number): ClosedConnectionStats[] {
    const ring = this.source.server.closedConnections;
    const out: ClosedConnectionStats[] = [];
    for (let i = ring.length - 1; i >= 0 && out.length < n; i--) {
      const c = ring[i];
      out.push({
        id: c.id,
        client_id: c.clientId ?? null,
        name: c.name ?? null,
        remote_addr: c.remoteAddr,
        reason: c.reason,
        detail: c.detail,
        opened_at: new Date(c.openedAt).toISOString(),
        closed_at: new Date(c.closedAt).toISOString(),
        in_msgs: c.msgsIn,
        in_bytes: c.bytesIn,
        out_msgs: c.msgsOut,
        out_bytes: c.bytesOut,
      });
    }
    return out;
  }

  /** Everything, for `/api/stats`. */
  all(o: StatsOptions): Stats {
    return {
      server: this.server(),
      connections: this.connections(o),
      queues: this.queues(o),
      topics: this.topics(o),
      closed_connections: this.closed(o.closed),
    };
  }

  /** Traffic of open connections plus the folded traffic of closed ones. */
  #traffic(): Traffic {
    const server = this.source.server;
    const t = { ...server.closedTraffic };
    for (const c of server.connections.values()) addTraffic(t, c);
    return t;
  }
}

/** Subscribed and declared topics, and durables (declared topics without subscribers are held too). */
function topicCounts(
  topics: ReadonlyMap<string, Topic>,
): Pick<ServerStats, "topics" | "declared_topics" | "durables"> {
  let subscribed = 0;
  let declared = 0;
  let durables = 0;
  for (const t of topics.values()) {
    if (t.bindings.length > 0) subscribed++;
    if (t.retention !== undefined) {
      declared++;
      durables += t.durables.size;
    }
  }
  return { topics: subscribed, declared_topics: declared, durables };
}

function addTraffic(to: Traffic, c: Traffic): void {
  to.msgsIn += c.msgsIn;
  to.bytesIn += c.bytesIn;
  to.msgsOut += c.msgsOut;
  to.bytesOut += c.bytesOut;
}

function sortedValues<T>(m: ReadonlyMap<string, T>): T[] {
  return [...m.keys()].sort().map((k) => m.get(k)!);
}

function page<T, R>(all: T[], o: { offset: number; limit: number }, f: (x: T) => R): Page<R> {
  return {
    total: all.length,
    offset: o.offset,
    limit: o.limit,
    list: all.slice(o.offset, o.offset + o.limit).map(f),
  };
}

function connectionStats(c: Connection, now: number, subs: boolean): ConnectionStats {
  return {
    id: c.id,
    client_id: c.clientId ?? null,
    name: c.name ?? null,
    remote_addr: c.remoteAddr,
    opened_at: new Date(c.openedAt).toISOString(),
    uptime_s: (now - c.openedAt) / 1000,
    idle_s: Math.max(0, (now - c.lastActivity) / 1000),
    pending_bytes: c.pendingBytes,
    in_msgs: c.msgsIn,
    in_bytes: c.bytesIn,
    out_msgs: c.msgsOut,
    out_bytes: c.bytesOut,
    subscriptions: subs ? [...c.subs.values()].map(subscriptionStats) : [],
  };
}

function subscriptionStats(s: Subscription): SubscriptionStats {
  const common = {
    sid: s.sid,
    ack: s.explicit ? "explicit" as const : "none" as const,
    prefetch: s.prefetch,
    inflight: s.inflight.size,
    delivered: s.delivered,
  };
  if (s instanceof QueueConsumer) return { ...common, destination: s.queue.name };
  const lag = maxLag(s);
  return {
    ...common,
    destination: s.pattern,
    dropped: s.dropped,
    lag_msgs: lag.messages,
    lag_bytes: lag.bytes,
  };
}

function maxLag(s: TopicSubscription): { messages: number; bytes: number } {
  let messages = 0;
  let bytes = 0;
  for (const b of s.bindings) {
    const l = b.topic.lag(b);
    messages = Math.max(messages, l.messages);
    bytes = Math.max(bytes, l.bytes);
  }
  return { messages, bytes };
}

function queueStats(q: Queue): QueueStats {
  const s = q.store;
  const c = q.counters;
  return {
    name: q.name,
    depth: s.ready,
    inflight: s.inflight,
    delayed: s.delayed,
    size: s.size,
    bytes: s.bytes,
    consumers: q.consumers.length,
    published: c.published,
    delivered: c.delivered,
    acked: c.acked,
    redelivered: c.redelivered,
    dead_lettered: c.deadLettered,
    expired: s.removed.expired,
    dropped: s.removed.dropped,
    rejected: c.rejected,
  };
}

function topicStats(t: Topic): TopicStats {
  let maxMsgs = 0;
  let maxBytes = 0;
  for (const b of t.bindings) {
    const l = t.lag(b);
    maxMsgs = Math.max(maxMsgs, l.messages);
    maxBytes = Math.max(maxBytes, l.bytes);
  }
  const r = t.retention;
  return {
    name: t.name,
    declared: r !== undefined,
    retention: r === undefined ? null : { messages: r.messages, bytes: r.bytes, age_ms: r.ageMs },
    subscribers: t.bindings.length,
    retained: t.retained,
    retained_bytes: t.retainedBytes,
    max_lag_msgs: maxMsgs,
    max_lag_bytes: maxBytes,
    published: t.counters.published,
    delivered: t.counters.delivered,
    dropped: t.counters.dropped,
    slow_consumers: t.counters.slowConsumers,
    retention_dropped: t.counters.retentionDropped,
    durables: [...t.durables.keys()].sort().map((name) => durableStats(t, t.durables.get(name)!)),
  };
}

/**
 * A durable's position as the broker would store it now: the kept one, or,
 * while a subscription uses it, everything before that one's oldest unsettled
 * message (read only: `Topic.position` changes nothing).
 */
function durableStats(t: Topic, d: Durable): DurableStats {
  const b = d.sub?.bindings[0];
  const position = b === undefined ? d.acked : Math.max(d.acked, t.position(b));
  // Ids grow along the list: the held messages after `position` are those from its index on.
  const first = t.seqAfter(-Infinity);
  const backlog = t.retained - (t.seqAfter(position) - first);
  return {
    name: d.name,
    connected: d.sub !== undefined,
    sid: d.sub?.sid ?? null,
    position,
    backlog_msgs: backlog,
    skipped: d.skipped,
  };
}
