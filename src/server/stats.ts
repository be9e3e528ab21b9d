/**
 * The server's admin data as plain objects: server-wide figures (as
 * nats-server's `/varz`), open connections (`/connz`) and recently closed
 * ones, composed with the broker's (`broker.stats()`). `/api/stats`,
 * `/metrics` and the CLI read these; http/ only serialises them.
 *
 * @module
 */
import type {
  BindingStats,
  BrokerStats,
  Page,
  PageOptions,
  QueueStats,
  SubscriptionStats,
  TopicStats,
} from "../broker/mod.ts";
import type { AuthStats, AuthzCounters } from "../auth/mod.ts";
import type { UdpStats } from "./udp.ts";

/** One open connection (as `/connz`). */
export interface ConnectionStats {
  id: number;
  client_id: string | null;
  name: string | null;
  /** The authenticated user (auth on), never a credential. */
  user: string | null;
  /** Whether the connection is over TLS. */
  tls: boolean;
  remote_addr: string;
  /** `tcp` or `ws` (WebSocket). */
  transport: "tcp" | "ws";
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

/** Server-wide figures (as `/varz`). */
export interface ServerStats extends Omit<BrokerStats, "started_at_ms"> {
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
  /** TLS handshakes that failed or timed out (0 without TLS). */
  tls_handshake_failures: number;
  /** PUB frames and their payload bytes received from clients (refused ones included). */
  in_msgs: number;
  in_bytes: number;
  /** MSG frames and their payload bytes sent to clients (redeliveries included). */
  out_msgs: number;
  out_bytes: number;
  slow_consumers: number;
  closed_by_reason: Record<string, number>;
  /**
   * Process memory in bytes: `heap_total` is the JS heap's reserved size, `external` what the
   * engine holds outside it (ArrayBuffers: read chunks, outbound buffers, message slabs),
   * `array_buffers` the ArrayBuffer part where the runtime counts it apart (null on Deno).
   */
  mem: {
    rss: number;
    heap_used: number;
    heap_total: number;
    external: number;
    array_buffers: number | null;
  };
  event_loop_lag_ms: { last: number; max: number } | null;
  /** Authentication figures; null when auth is off. */
  auth: AuthStats | null;
  /** The UDP ingest's figures; null without `--udp-port`. */
  udp: UdpStats | null;
  /** Permission refusals and publish-rate pauses; null when auth is off. */
  authorization: AuthzCounters | null;
}

/** A recently closed connection and why it closed. */
export interface ClosedConnectionStats {
  id: number;
  client_id: string | null;
  name: string | null;
  user: string | null;
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

/** Everything `/api/stats` returns. */
export interface Stats {
  server: ServerStats;
  connections: Page<ConnectionStats>;
  queues: Page<QueueStats>;
  topics: Page<TopicStats>;
  /** Topic-to-queue bindings (`BIND`), by pattern then queue. */
  bindings: Page<BindingStats>;
  /** Newest first. */
  closed_connections: ClosedConnectionStats[];
}

/** Which part of the lists to return. */
export interface StatsOptions extends PageOptions {
  /** Closed connections to list. */
  closed: number;
  /** Whether to list each connection's subscriptions. */
  subs: boolean;
}

/** Messages and bytes of one connection, in and out. */
export interface Traffic {
  msgsIn: number;
  bytesIn: number;
  msgsOut: number;
  bytesOut: number;
}

/** Adds `c`'s traffic to `to`. */
export function addTraffic(to: Traffic, c: Traffic): void {
  to.msgsIn += c.msgsIn;
  to.bytesIn += c.bytesIn;
  to.msgsOut += c.msgsOut;
  to.bytesOut += c.bytesOut;
}

/** A closed connection as the server keeps it in its ring (times as epoch ms). */
export interface ClosedConnection extends Traffic {
  id: number;
  clientId: string | undefined;
  name: string | undefined;
  user: string | undefined;
  remoteAddr: string;
  reason: string;
  detail: string;
  openedAt: number;
  closedAt: number;
}

/** The ring entry as the admin API shows it. */
export function closedStats(c: ClosedConnection): ClosedConnectionStats {
  return {
    id: c.id,
    client_id: c.clientId ?? null,
    name: c.name ?? null,
    user: c.user ?? null,
    remote_addr: c.remoteAddr,
    reason: c.reason,
    detail: c.detail,
    opened_at: new Date(c.openedAt).toISOString(),
    closed_at: new Date(c.closedAt).toISOString(),
    in_msgs: c.msgsIn,
    in_bytes: c.bytesIn,
    out_msgs: c.msgsOut,
    out_bytes: c.bytesOut,
  };
}
