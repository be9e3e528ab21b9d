/**
 * `/metrics`: the stats of `stats.ts` rendered as Prometheus families. All
 * values are read at scrape time; nothing is updated on the message path.
 *
 * Why not `prom-client`: it runs on Deno and Bun alike (checked with 15.1.3),
 * but its metrics are objects updated as events happen, and here every value
 * already lives in the broker's own counters. Used with `collect()` callbacks
 * it would only format text, and its histogram cannot be loaded from the
 * broker's existing bucket counts without replaying every observation. The
 * format is small; `exposition.ts` writes it, and tests/http_test.ts parses
 * every scrape with a strict parser.
 *
 * @module
 */
import type { AuthStats, AuthzCounters } from "../auth/mod.ts";
import type { QueueStats, RetentionStats, TopicStats } from "../broker/mod.ts";
import type { ClusterNode } from "../cluster/mod.ts";
import { METRICS_DESTINATIONS_MAX } from "../config/mod.ts";
import { LOOP_LAG_WINDOW_MS, type Server, type ServerStats, type UdpStats } from "../server/mod.ts";
import { Exposition, LabelSet, type Sample } from "./exposition.ts";
import type { GrpcStats } from "../grpc/mod.ts";
import { grpcFamilies } from "./grpc_metrics.ts";

type Gauge<T> = [name: string, help: string, value: (x: T) => number];

const QUEUE_GAUGES: Gauge<QueueStats>[] = [
  ["relayr_queue_depth", "Messages waiting in the queue for a consumer", (q) => q.depth],
  ["relayr_queue_inflight", "Messages delivered and not yet acked", (q) => q.inflight],
  [
    "relayr_queue_delayed",
    "Messages NACKed or published with a delay, not yet due",
    (q) => q.delayed,
  ],
  [
    "relayr_queue_scheduled",
    "Messages published with delay or deliver_at, not yet due",
    (q) => q.scheduled,
  ],
  ["relayr_queue_dedup_ids", "Dedup ids the queue remembers within its window", (q) => q.dedup_ids],
  ["relayr_queue_bytes", "Payload bytes held by the queue", (q) => q.bytes],
  ["relayr_queue_consumers", "Consumers subscribed to the queue", (q) => q.consumers],
];

const QUEUE_COUNTERS: Gauge<QueueStats>[] = [
  ["relayr_queue_published_total", "Messages accepted into the queue", (q) => q.published],
  [
    "relayr_queue_delivered_total",
    "Deliveries to consumers, redeliveries included",
    (q) => q.delivered,
  ],
  ["relayr_queue_acked_total", "Messages settled by consumers", (q) => q.acked],
  ["relayr_queue_redelivered_total", "Messages given back for redelivery", (q) => q.redelivered],
  [
    "relayr_queue_dead_lettered_total",
    "Messages moved to the dead-letter queue",
    (q) => q.dead_lettered,
  ],
  ["relayr_queue_expired_total", "Messages whose TTL ran out", (q) => q.expired],
  [
    "relayr_queue_dropped_total",
    "Messages dropped by the drop-oldest overflow policy",
    (q) => q.dropped,
  ],
  [
    "relayr_queue_rejected_total",
    "Publishes refused because the queue was full",
    (q) => q.rejected,
  ],
  [
    "relayr_queue_duplicates_total",
    "Publishes answered as duplicates of a dedup_id within the window",
    (q) => q.duplicates,
  ],
  ["relayr_queue_purged_total", "Messages removed by an operator's purge", (q) => q.purged],
];

/** Series of declared queues only: their settings. */
const DECLARED_QUEUE_GAUGES: Gauge<QueueStats>[] = [
  [
    "relayr_queue_max_messages",
    "Message limit of a declared queue",
    (q) => q.settings.max_messages,
  ],
  ["relayr_queue_max_bytes", "Payload byte limit of a declared queue", (q) => q.settings.max_bytes],
  [
    "relayr_queue_max_deliveries",
    "Deliveries before a declared queue dead-letters a message",
    (q) => q.settings.max_deliveries,
  ],
  [
    "relayr_queue_ttl_seconds",
    "Default message TTL of a declared queue (0: none)",
    (q) => q.settings.ttl_ms / 1000,
  ],
  [
    "relayr_queue_ack_timeout_seconds",
    "Default ack timeout of a declared queue's consumers",
    (q) => q.settings.ack_timeout_ms / 1000,
  ],
  [
    "relayr_queue_dedup_window_seconds",
    "Deduplication window of a declared queue (0: off)",
    (q) => q.settings.dedup_window_ms / 1000,
  ],
];

const TOPIC_GAUGES: Gauge<TopicStats>[] = [
  ["relayr_topic_subscribers", "Subscriptions bound to the topic", (t) => t.subscribers],
  [
    "relayr_topic_retained",
    "Messages the topic holds, for lagging subscribers and within retention",
    (t) => t.retained,
  ],
  [
    "relayr_topic_retained_bytes",
    "Payload bytes of the messages the topic holds",
    (t) => t.retained_bytes,
  ],
  [
    "relayr_topic_lag_messages",
    "Messages the most lagging subscriber is behind",
    (t) => t.max_lag_msgs,
  ],
  ["relayr_topic_lag_bytes", "Bytes the most lagging subscriber is behind", (t) => t.max_lag_bytes],
];

const TOPIC_COUNTERS: Gauge<TopicStats>[] = [
  ["relayr_topic_published_total", "Messages published to the topic", (t) => t.published],
  ["relayr_topic_delivered_total", "Deliveries to subscribers", (t) => t.delivered],
  [
    "relayr_topic_dropped_total",
    "Messages skipped by drop-oldest slow subscribers",
    (t) => t.dropped,
  ],
  [
    "relayr_topic_slow_consumers_total",
    "Subscribers found too far behind",
    (t) => t.slow_consumers,
  ],
];

type DeclaredTopicStats = TopicStats & { retention: RetentionStats };

/** Series of declared topics only (a topic that is not declared has no retention or durables). */
const DECLARED_GAUGES: Gauge<DeclaredTopicStats>[] = [
  [
    "relayr_topic_retention_max_messages",
    "Retention limit of a declared topic in messages",
    (t) => t.retention.messages,
  ],
  [
    "relayr_topic_retention_max_bytes",
    "Retention limit of a declared topic in payload bytes",
    (t) => t.retention.bytes,
  ],
  [
    "relayr_topic_retention_max_age_seconds",
    "Retention age limit of a declared topic (0: none)",
    (t) => t.retention.age_ms / 1000,
  ],
  ["relayr_topic_durables", "Durable subscriptions of a declared topic", (t) => t.durables.length],
  [
    "relayr_topic_durables_connected",
    "Durable subscriptions of a declared topic that a subscription uses now",
    (t) => t.durables.reduce((n, d) => n + (d.connected ? 1 : 0), 0),
  ],
  [
    "relayr_topic_durables_backlog_messages",
    "Retained messages after the position of the declared topic's most lagging durable",
    (t) => t.durables.reduce((n, d) => Math.max(n, d.backlog_msgs), 0),
  ],
];

const DECLARED_COUNTERS: Gauge<DeclaredTopicStats>[] = [
  [
    "relayr_topic_retention_dropped_total",
    "Messages a declared topic dropped by its retention limits",
    (t) => t.retention_dropped,
  ],
];

/** Renders the exposition text. */
export function renderMetrics(
  server: Server,
  grpc?: () => GrpcStats,
  cluster?: ClusterNode,
): string {
  const s = server.serverStats();
  const e = new Exposition();
  serverFamilies(e, s);
  if (grpc !== undefined) grpcFamilies(e, grpc());
  destinationFamilies(e, server);
  bindingFamilies(e, server);
  if (s.auth !== null) authFamilies(e, s.auth);
  if (s.authorization !== null) authzFamilies(e, s.authorization);
  if (s.udp !== null) udpFamilies(e, s.udp);
  processFamilies(e, s);
  if (cluster !== undefined) clusterFamilies(e, cluster);
  return e.text();
}

/** `relayr_cluster_*`: only with `--cluster-etcd`, so a single node's scrape is as before. */
function clusterFamilies(e: Exposition, cluster: ClusterNode): void {
  const c = cluster.stats({ offset: 0, limit: 0 });
  e.single(
    "relayr_cluster_members",
    "gauge",
    "Live cluster nodes as seen in etcd",
    c.members.length,
  );
  e.single(
    "relayr_cluster_etcd_reachable",
    "gauge",
    "1 while this node reaches etcd (else leadership changes are paused)",
    c.etcd_reachable ? 1 : 0,
  );
  e.single("relayr_cluster_leaders", "gauge", "Queues with a leader", c.leaders_total);
  e.single("relayr_cluster_leading", "gauge", "Queues this node leads", c.leading);
  e.single(
    "relayr_cluster_elections_won_total",
    "counter",
    "Queue leader elections this node won",
    c.elections_won,
  );
  e.single(
    "relayr_cluster_leader_changes_total",
    "counter",
    "Queue leaders elected in the cluster, as this node saw them",
    c.leader_changes,
  );
  e.single(
    "relayr_cluster_etcd_errors_total",
    "counter",
    "etcd requests that failed",
    c.etcd_errors,
  );
  e.single(
    "relayr_cluster_links_up",
    "gauge",
    "Peers linked both ways (topics flow to and from them)",
    c.links.filter((l) => l.in && l.out).length,
  );
  e.single(
    "relayr_cluster_forwarded_messages_total",
    "counter",
    "Topic messages forwarded to peers, one per interested peer",
    c.forwarded_msgs,
  );
  e.single(
    "relayr_cluster_received_messages_total",
    "counter",
    "Topic messages peers forwarded to this node",
    c.received_msgs,
  );
  e.single(
    "relayr_cluster_forwarded_commands_total",
    "counter",
    "Queue commands (PUB, SUB, ACK, NACK, UNSUB, DECLARE) forwarded to the queue's leader on another node",
    c.forwarded_commands,
  );
  e.single(
    "relayr_cluster_auth_failures_total",
    "counter",
    "Connections on the cluster port whose authentication handshake failed",
    c.auth_failures,
  );
  e.single(
    "relayr_cluster_tls_failures_total",
    "counter",
    "Connections on the cluster port whose TLS handshake failed (link TLS)",
    c.tls_failures,
  );
  e.single(
    "relayr_cluster_inbound_refused_total",
    "counter",
    "Connections on the cluster port closed on arrival: too many others had not sent their first line",
    c.inbound_refused,
  );
  e.single(
    "relayr_cluster_first_line_refused_total",
    "counter",
    "Connections on the cluster port refused for their first bytes: not a cluster line (a TLS handshake from a node with link TLS, say)",
    c.first_line_refused,
  );
  e.single(
    "relayr_cluster_lease_losses_total",
    "counter",
    "Times this node found its lease expired and registered again",
    c.lease_losses,
  );
  const r = c.replication;
  if (r === undefined) return;
  e.single(
    "relayr_cluster_repl_elections_total",
    "counter",
    "Queue leaderships this node took (recoveries started)",
    r.elections,
  );
  e.single(
    "relayr_cluster_repl_recoveries_total",
    "counter",
    "Queue recoveries finished: served again from a majority's most complete copy",
    r.recoveries,
  );
  e.single(
    "relayr_cluster_repl_commit_timeouts_total",
    "counter",
    "Commit batches no majority confirmed within CLUSTER_COMMIT_MS_MAX (answered UNAVAILABLE)",
    r.commit_timeouts,
  );
  e.single(
    "relayr_cluster_repl_fenced_total",
    "counter",
    "Records refused from a deposed leader, and leaderships given up when a replica refused",
    r.fenced,
  );
  const led = r.queues.filter((q) => q.role === "leader");
  e.family(
    "relayr_cluster_repl_epoch",
    "gauge",
    "Leader epoch of each queue this node leads",
    led.map((q) => [{ queue: q.queue }, q.epoch]),
  );
  e.family(
    "relayr_cluster_repl_replicas",
    "gauge",
    "Replica set size of each queue this node leads (itself included)",
    led.map((q) => [{ queue: q.queue }, q.replicas.length]),
  );
  e.family(
    "relayr_cluster_repl_lag_batches",
    "gauge",
    "Commit batches a follower has not acknowledged yet, per queue this node leads",
    led.flatMap((q) => q.lag.map((l) => [{ queue: q.queue, node: l.node }, l.batches])),
  );
}

function serverFamilies(e: Exposition, s: ServerStats): void {
  e.family("relayr_info", "gauge", "Relayr build and runtime (value is 1)", [[{
    version: s.version,
    runtime: s.runtime,
    runtime_version: s.runtime_version,
    store: s.store,
    server_id: s.server_id,
  }, 1]]);
  e.single("relayr_ready", "gauge", "1 when the server accepts connections", s.ready ? 1 : 0);
  e.single("relayr_uptime_seconds", "gauge", "Seconds since the broker started", s.uptime_s);
  e.single(
    "process_start_time_seconds",
    "gauge",
    "Start time of the broker since the Unix epoch in seconds",
    Date.parse(s.started_at) / 1000,
  );
  e.single("relayr_messages_in_total", "counter", "PUB frames received from clients", s.in_msgs);
  e.single("relayr_bytes_in_total", "counter", "Payload bytes of PUB frames received", s.in_bytes);
  e.single("relayr_messages_out_total", "counter", "MSG frames sent to clients", s.out_msgs);
  e.single("relayr_bytes_out_total", "counter", "Payload bytes of MSG frames sent", s.out_bytes);
  e.single(
    "relayr_messages_published_total",
    "counter",
    "Messages accepted by the broker",
    s.published_msgs,
  );
  e.single(
    "relayr_bytes_published_total",
    "counter",
    "Payload bytes of messages accepted by the broker",
    s.published_bytes,
  );
  e.single(
    "relayr_messages_rejected_total",
    "counter",
    "Publishes refused because a queue was full",
    s.rejected_msgs,
  );
  e.single(
    "relayr_messages_unrouted_total",
    "counter",
    "Topic messages published with no matching subscription",
    s.unrouted_msgs,
  );
  e.single("relayr_connections", "gauge", "Open client connections", s.connections);
  e.single(
    "relayr_connections_accepted_total",
    "counter",
    "Client connections accepted",
    s.total_connections,
  );
  e.single(
    "relayr_tls_handshake_failures_total",
    "counter",
    "TLS handshakes that failed or timed out (bad or missing client certificate, plain clients)",
    s.tls_handshake_failures,
  );
  e.family(
    "relayr_connections_closed_total",
    "counter",
    "Client connections closed, by reason",
    Object.entries(s.closed_by_reason).map(([reason, n]): Sample => [{ reason }, n]),
  );
  e.single(
    "relayr_slow_consumers_total",
    "counter",
    "Connections closed as slow consumers",
    s.slow_consumers,
  );
  e.histogram("relayr_delivery_latency_seconds", "Time from publish to first delivery", {
    buckets: s.latency.buckets,
    sum: s.latency.sum_s,
    count: s.latency.count,
  });
  e.single("relayr_queues", "gauge", "Queues the broker holds", s.queues);
  e.single("relayr_topics", "gauge", "Topics with at least one subscriber", s.topics);
  e.single(
    "relayr_topics_declared",
    "gauge",
    "Topics declared with retention, with or without subscribers",
    s.declared_topics,
  );
  e.single(
    "relayr_durables",
    "gauge",
    "Durable subscriptions of declared topics, connected or not",
    s.durables,
  );
  e.single("relayr_bindings", "gauge", "Topic-to-queue bindings (BIND)", s.bindings);
  e.single(
    "relayr_routed_total",
    "counter",
    "Copies of topic messages enqueued through bindings",
    s.routed_msgs,
  );
  e.single(
    "relayr_queues_declared",
    "gauge",
    "Queues declared with settings",
    s.declared_queues,
  );
  e.single(
    "relayr_scheduled_messages",
    "gauge",
    "Messages published with delay or deliver_at, not yet due (queues and topics)",
    s.scheduled_msgs,
  );
  e.single(
    "relayr_duplicates_total",
    "counter",
    "Publishes answered as duplicates of a dedup_id within the window",
    s.duplicate_msgs,
  );
}

/** Per-binding counters (`BIND`), for at most `METRICS_DESTINATIONS_MAX` bindings. */
function bindingFamilies(e: Exposition, server: Server): void {
  const list = server.broker.bindingStats({ offset: 0, limit: METRICS_DESTINATIONS_MAX }).list;
  const labels = list.map((b) =>
    new LabelSet({
      pattern: b.pattern.slice("topic:".length),
      queue: b.queue.slice("queue:".length),
    })
  );
  e.family(
    "relayr_binding_routed_total",
    "counter",
    "Copies a binding enqueued",
    list.map((b, i): Sample => [labels[i], b.routed]),
  );
  e.family(
    "relayr_binding_rejected_total",
    "counter",
    "Publishes a binding refused: its queue was full under reject",
    list.map((b, i): Sample => [labels[i], b.rejected]),
  );
}

/** Per-destination series, for at most `METRICS_DESTINATIONS_MAX` queues and as many topics. */
function destinationFamilies(e: Exposition, server: Server): void {
  const queues = server.broker.queueStats({ offset: 0, limit: METRICS_DESTINATIONS_MAX });
  const topics = server.broker.topicStats({ offset: 0, limit: METRICS_DESTINATIONS_MAX });
  e.family(
    "relayr_metrics_destinations_omitted",
    "gauge",
    `Queues and topics left out of the per-destination series (over ${METRICS_DESTINATIONS_MAX} each)`,
    [
      [{ kind: "queue" }, queues.total - queues.list.length],
      [{ kind: "topic" }, topics.total - topics.list.length],
    ],
  );
  // Each destination's labels are rendered once for all of its families.
  const ql = queues.list.map((q) => new LabelSet({ queue: q.name.slice("queue:".length) }));
  for (const [name, help, f] of QUEUE_GAUGES) {
    e.family(name, "gauge", help, queues.list.map((q, i): Sample => [ql[i], f(q)]));
  }
  for (const [name, help, f] of QUEUE_COUNTERS) {
    e.family(name, "counter", help, queues.list.map((q, i): Sample => [ql[i], f(q)]));
  }
  const declaredQueues = queues.list.flatMap((q, i): [LabelSet, QueueStats][] =>
    q.declared ? [[ql[i], q]] : []
  );
  for (const [name, help, f] of DECLARED_QUEUE_GAUGES) {
    e.family(name, "gauge", help, declaredQueues.map(([l, q]): Sample => [l, f(q)]));
  }
  const tl = topics.list.map((t) => new LabelSet({ topic: t.name.slice("topic:".length) }));
  for (const [name, help, f] of TOPIC_GAUGES) {
    e.family(name, "gauge", help, topics.list.map((t, i): Sample => [tl[i], f(t)]));
  }
  for (const [name, help, f] of TOPIC_COUNTERS) {
    e.family(name, "counter", help, topics.list.map((t, i): Sample => [tl[i], f(t)]));
  }
  // Retention and durable series only for declared topics, with the labels rendered above.
  const declared: [LabelSet, DeclaredTopicStats][] = [];
  topics.list.forEach((t, i) => {
    if (t.retention !== null) declared.push([tl[i], t as DeclaredTopicStats]);
  });
  const declaredSamples = (f: (t: DeclaredTopicStats) => number) =>
    declared.map(([l, t]): Sample => [l, f(t)]);
  for (const [name, help, f] of DECLARED_GAUGES) e.family(name, "gauge", help, declaredSamples(f));
  for (const [name, help, f] of DECLARED_COUNTERS) {
    e.family(name, "counter", help, declaredSamples(f));
  }
}

/** Authentication series, with auth on only. */
function authFamilies(e: Exposition, a: AuthStats): void {
  e.single("relayr_auth_successes_total", "counter", "Successful logins", a.successes);
  e.single(
    "relayr_auth_failures_total",
    "counter",
    "Failed logins (CONNECT and HTTP), each answered after a growing delay",
    a.failures,
  );
  e.single(
    "relayr_auth_revoked_total",
    "counter",
    "Connections closed because a reload removed their user or credential",
    a.revoked,
  );
  e.single(
    "relayr_auth_lockouts_total",
    "counter",
    "Logins refused unchecked: their address had over a minute of failed logins waiting",
    a.lockouts,
  );
  e.single("relayr_auth_users", "gauge", "Users in the users file", a.users);
  e.single(
    "relayr_auth_failed_addresses",
    "gauge",
    "Remote addresses whose failed logins are remembered (bounded)",
    a.failed_addresses,
  );
  e.single(
    "relayr_auth_failed_addresses_evicted_total",
    "counter",
    "Addresses forgotten to keep the failed-login map in bounds",
    a.failed_addresses_evicted,
  );
}

/** Authorization series, with auth on only. */
function authzFamilies(e: Exposition, a: AuthzCounters): void {
  e.single(
    "relayr_permission_denied_total",
    "counter",
    "Commands answered ERR PERMISSION_DENIED",
    a.permission_denied,
  );
  e.single(
    "relayr_publish_paused_total",
    "counter",
    "Times a connection stopped reading for its user's publish_rate",
    a.publish_paused,
  );
  e.single(
    "relayr_publish_paused_seconds_total",
    "counter",
    "Time connections spent paused for their user's publish_rate",
    a.publish_paused_ms / 1000,
  );
}

/** UDP ingest series, with `--udp-port` only. */
function udpFamilies(e: Exposition, u: UdpStats): void {
  e.single("relayr_udp_datagrams_total", "counter", "UDP datagrams received", u.datagrams);
  e.single(
    "relayr_udp_published_total",
    "counter",
    "Messages published from UDP datagrams",
    u.published,
  );
  e.single(
    "relayr_udp_bad_total",
    "counter",
    "UDP datagrams dropped whole for a bad or cut frame",
    u.bad,
  );
  e.single(
    "relayr_udp_unauthorized_total",
    "counter",
    "UDP datagrams dropped for a missing or wrong AUTH line",
    u.unauthorized,
  );
  e.single(
    "relayr_udp_refused_total",
    "counter",
    "UDP messages the broker refused (full queue, failing store)",
    u.refused,
  );
  if (u.forwarded === undefined) return; // cluster mode only
  e.single(
    "relayr_udp_forwarded_total",
    "counter",
    "UDP messages sent on to their queue's leader on another node",
    u.forwarded,
  );
  e.single(
    "relayr_udp_forward_dropped_total",
    "counter",
    "UDP queue messages not stored at their leader (none reachable, too many waiting, its ERR)",
    u.forward_dropped ?? 0,
  );
}

function processFamilies(e: Exposition, s: ServerStats): void {
  e.single("process_resident_memory_bytes", "gauge", "Resident set size in bytes", s.mem.rss);
  e.single("relayr_heap_used_bytes", "gauge", "JavaScript heap in use in bytes", s.mem.heap_used);
  e.single(
    "relayr_heap_total_bytes",
    "gauge",
    "JavaScript heap reserved in bytes",
    s.mem.heap_total,
  );
  e.single(
    "relayr_external_memory_bytes",
    "gauge",
    "Memory the JavaScript engine holds outside its heap (ArrayBuffers) in bytes",
    s.mem.external,
  );
  if (s.mem.array_buffers !== null) {
    e.single(
      "relayr_array_buffers_bytes",
      "gauge",
      "ArrayBuffer backing stores in bytes",
      s.mem.array_buffers,
    );
  }
  if (s.event_loop_lag_ms !== null) {
    e.single(
      "relayr_event_loop_lag_seconds",
      "gauge",
      "Event-loop lag of the last probe",
      s.event_loop_lag_ms.last / 1000,
    );
    e.single(
      "relayr_event_loop_lag_max_seconds",
      "gauge",
      `Largest event-loop lag over the last ${LOOP_LAG_WINDOW_MS / 1000} seconds`,
      s.event_loop_lag_ms.max / 1000,
    );
  }
}
