/**
 * The TCP server: an accept loop that backs off on errors, one `Connection`
 * per client, timers for the broker sweep and idle PINGs, graceful shutdown,
 * the ring of recently closed connections, and the admin data of it all.
 *
 * @module
 */
import type { AuthConfig, Authenticator, Review } from "../auth/mod.ts";
import { type AuthzCounters, UserConnections } from "../auth/mod.ts";
import { AdminError, type Broker, type Page, page } from "../broker/mod.ts";
import {
  ACCEPT_BACKOFF_MS_MAX,
  ACCEPT_BACKOFF_MS_MIN,
  AUTH_TIMEOUT_MS,
  CLOSED_CONNECTIONS_KEPT,
  CONNECTIONS_MAX,
  PINGS_OUTSTANDING_MAX,
  SCHEDULE_TICK_MS,
  SHUTDOWN_FLUSH_MS,
  SWEEP_INTERVAL_MS,
  TLS_HANDSHAKE_TIMEOUT_MS,
  TLS_HANDSHAKES_PENDING_MAX,
} from "../config/mod.ts";
import {
  type Clock,
  type Conn,
  type Listener,
  type Runtime,
  sleep,
  type Timer,
  type TlsFiles,
} from "../runtime/mod.ts";
import { UdpIngest, type UdpIngestOptions } from "./udp.ts";
import { CloseReason } from "./close_reason.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { LoopLag } from "./loop_lag.ts";
import { HandshakeFailures } from "./tls_failures.ts";
import type { Routing } from "./routing.ts";
import {
  addTraffic,
  type ClosedConnection,
  type ClosedConnectionStats,
  closedStats,
  type ConnectionStats,
  type ServerStats,
  type Stats,
  type StatsOptions,
  type Traffic,
} from "./stats.ts";

/** Server settings. */
export interface ServerOptions {
  hostname: string;
  port: number;
  payloadBytesMax: number;
  pingIntervalMs: number;
  connectionsMax?: number;
  version: string;
  /** Authentication; absent: off (every connection is anonymous, as before). */
  auth?: Authenticator;
  /** Ms a connection has to authenticate (auth on). */
  authTimeoutMs?: number;
  /** TLS on the client port (PEM text); with `ca`, client certificates are required. */
  tls?: TlsFiles;
  /** Called with notable events (accept errors, closes) for logging. */
  log?: (
    level: "debug" | "info" | "warn" | "error",
    message: string,
    props?: Record<string, unknown>,
  ) => void;
}

/** The broker's TCP front. */
export class Server implements ConnectionHost {
  readonly broker: Broker;
  readonly clock: Clock;
  readonly payloadBytesMax: number;
  readonly auth: Authenticator | undefined;
  readonly authTimeoutMs: number;
  readonly userConnections = new UserConnections();
  readonly authz: AuthzCounters = { permission_denied: 0, publish_paused: 0, publish_paused_ms: 0 };
  readonly serverId = crypto.randomUUID();
  readonly connections = new Map<number, Connection>();
  readonly closedConnections: ClosedConnection[] = [];
  readonly closedByReason: Record<CloseReason, number> = Object.fromEntries(
    Object.values(CloseReason).map((r) => [r, 0]),
  ) as Record<CloseReason, number>;
  totalConnections = 0;
  /** Traffic of connections that have closed (live ones keep their own counters). */
  readonly closedTraffic: Traffic = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0 };
  /** The UDP ingest, with `--udp-port` (`startUdp`). */
  udp: UdpIngest | undefined;
  /** Cluster mode: where connections send queue commands (set once the node joined). */
  routing: Routing | undefined = undefined;
  #runtime: Runtime;
  #options: ServerOptions;
  #listener: Listener | undefined;
  #acceptDone: Promise<void> | undefined;
  #running = new Set<Promise<void>>();
  #timers: Timer[] = [];
  #lag = new LoopLag();
  #nextId = 1;
  #stopping = false;
  #tlsFailures: HandshakeFailures;
  /** The one timer of scheduled messages, armed for the earliest due time the broker asked for. */
  #dueTimer: Timer | undefined;
  #lastDueFire = 0;

  constructor(runtime: Runtime, broker: Broker, options: ServerOptions) {
    this.#runtime = runtime;
    this.broker = broker;
    this.clock = broker.clock;
    this.#options = options;
    this.payloadBytesMax = options.payloadBytesMax;
    this.auth = options.auth;
    this.authTimeoutMs = options.authTimeoutMs ?? AUTH_TIMEOUT_MS;
    this.#tlsFailures = new HandshakeFailures(this.clock, (l, m, p) => options.log?.(l, m, p));
  }

  /** TLS handshakes that failed or timed out (bad or missing client certificate, plain clients). */
  get tlsHandshakeFailures(): number {
    return this.#tlsFailures.total;
  }

  /** The bound port. */
  get port(): number {
    return this.#listener?.port ?? 0;
  }

  /** Whether the server accepts connections (for /readyz). */
  get ready(): boolean {
    return this.#listener !== undefined && !this.#stopping;
  }

  /** Binds and starts accepting. */
  async start(): Promise<void> {
    const { hostname, port, tls } = this.#options;
    this.#listener = tls === undefined
      ? this.#runtime.listen({ hostname, port })
      : await this.#runtime.listenTls({
        hostname,
        port,
        tls: {
          ...tls,
          handshakeTimeoutMs: TLS_HANDSHAKE_TIMEOUT_MS,
          handshakesPendingMax: TLS_HANDSHAKES_PENDING_MAX,
          onHandshakeFailure: (addr, reason) => this.#tlsFailures.record(addr, reason),
        },
      });
    this.#acceptDone = this.#acceptLoop(this.#listener);
    this.#timers.push(this.clock.every(SWEEP_INTERVAL_MS, () => this.broker.sweep()));
    this.broker.onDue = (at) => this.#armDue(at);
    this.broker.fireDue(); // recovered scheduled messages: the overdue fire now, the next is armed
    const pingCheckMs = Math.max(10, Math.min(this.#options.pingIntervalMs / 2, 5000));
    this.#timers.push(this.clock.every(pingCheckMs, () => this.#pingIdle()));
    this.#lag.start();
  }

  /** New TLS connections get `files`; open ones keep theirs. Throws when the listener cannot. */
  async reloadTls(files: TlsFiles): Promise<void> {
    if (this.#listener?.reloadTls === undefined) throw new TypeError("TLS is not on");
    await this.#listener.reloadTls(files);
  }

  /**
   * (Re)arms the due-time timer for `at`; the broker asks only when `at` is
   * earlier than what it asked for before. Never sooner than
   * `SCHEDULE_TICK_MS` after the last firing, so a stream of scheduled
   * messages wakes the loop at most that often.
   */
  #armDue(at: number): void {
    if (this.#stopping) return;
    this.#dueTimer?.cancel();
    const now = this.clock.now();
    const ms = Math.max(0, at - now, this.#lastDueFire + SCHEDULE_TICK_MS - now);
    this.#dueTimer = this.clock.after(Math.ceil(ms), () => {
      this.#dueTimer = undefined;
      this.#lastDueFire = this.clock.now();
      this.broker.fireDue();
    });
  }

  info(): string {
    return JSON.stringify({
      server_id: this.serverId,
      version: this.#options.version,
      runtime: `${this.#runtime.name} ${this.#runtime.version}`,
      max_payload: this.payloadBytesMax,
      proto: 1,
      ...(this.auth === undefined ? {} : { auth_required: true }),
    });
  }

  closed(c: Connection, reason: CloseReason, detail: string): void {
    this.connections.delete(c.id);
    this.closedByReason[reason]++;
    addTraffic(this.closedTraffic, c);
    const ring = this.closedConnections;
    ring.push({
      id: c.id,
      clientId: c.clientId,
      name: c.name,
      user: c.principal?.user,
      remoteAddr: c.remoteAddr,
      reason,
      detail,
      openedAt: c.openedAt,
      closedAt: this.clock.now(),
      msgsIn: c.msgsIn,
      msgsOut: c.msgsOut,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
    });
    if (ring.length > CLOSED_CONNECTIONS_KEPT) ring.shift();
    const level = reason === CloseReason.INTERNAL_ERROR
      ? "error"
      : reason === CloseReason.CLIENT_CLOSED || reason === CloseReason.SERVER_SHUTDOWN
      ? "debug"
      : "info";
    this.#options.log?.(level, "connection {id} from {addr} closed: {reason} {detail}", {
      id: c.id,
      addr: c.remoteAddr,
      reason,
      detail,
    });
  }

  /**
   * Puts a reloaded token and users in force (auth on) without dropping
   * connections: one whose user was removed or whose credential changed is
   * closed with `ERR AUTH_REVOKED`; one whose entry changed gets the new
   * entry at once. Returns how many of each.
   */
  reloadAuth(config: AuthConfig): { revoked: number; updated: number; review?: Review } {
    const auth = this.auth;
    if (auth === undefined) return { revoked: 0, updated: 0 };
    const review = auth.reload(config);
    let revoked = 0, updated = 0;
    for (const c of [...this.connections.values()]) {
      const p = c.principal;
      if (p === undefined) continue;
      const next = review(p);
      if (next === null) {
        revoked++;
        c.close(
          CloseReason.AUTH_REVOKED,
          `user ${JSON.stringify(p.user)} was removed or its credential changed`,
        );
      } else if (next !== p) {
        updated++;
        c.setPrincipal(next);
      }
    }
    auth.revoked += revoked;
    return { revoked, updated, review }; // the other front ends (gRPC) review theirs with it
  }

  /**
   * Graceful stop: no new connections, every client gets `ERR SHUTTING_DOWN`
   * after what was pending for it, sockets close, bounded by `SHUTDOWN_FLUSH_MS`.
   */
  /** Starts the UDP ingest (`--udp-port`); rejects when the port cannot be bound. */
  async startUdp(options: Omit<UdpIngestOptions, "payloadBytesMax">): Promise<void> {
    const udp = new UdpIngest(this.broker, {
      ...options,
      payloadBytesMax: this.payloadBytesMax,
      routing: this.routing,
    });
    await udp.start();
    this.udp = udp;
  }

  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#listener?.close();
    await this.udp?.close();
    await this.#acceptDone;
    for (const t of this.#timers) t.cancel();
    this.broker.onDue = undefined;
    this.#dueTimer?.cancel();
    this.#lag.stop();
    this.auth?.close();
    for (const c of [...this.connections.values()]) {
      c.close(CloseReason.SERVER_SHUTDOWN, "the server is stopping");
    }
    let timer: Timer | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise<void>((r) => timer = this.clock.after(SHUTDOWN_FLUSH_MS, r)),
    ]);
    timer?.cancel();
  }

  /**
   * Closes connection `id` as an operator asked (`ERR ADMIN_CLOSED` to the
   * client, its unacked messages go back to their queues); `AdminError`
   * NOT_FOUND when no such connection is open.
   */
  closeConnection(id: number): void {
    const c = this.connections.get(id);
    if (c === undefined) throw new AdminError("NOT_FOUND", `no open connection ${id}`);
    c.close(CloseReason.ADMIN_CLOSED, "closed by an operator");
  }

  /** Server-wide figures, the broker's among them. */
  serverStats(): ServerStats {
    const traffic = { ...this.closedTraffic };
    for (const c of this.connections.values()) addTraffic(traffic, c);
    const now = this.clock.now();
    const mem = this.#runtime.memory();
    const lag = this.#lag.read();
    const { started_at_ms, ...broker } = this.broker.stats();
    return {
      server_id: this.serverId,
      version: this.#options.version,
      runtime: this.#runtime.name,
      runtime_version: this.#runtime.version,
      store: this.broker.options.store.kind,
      port: this.port,
      ready: this.ready,
      started_at: new Date(started_at_ms).toISOString(),
      now: new Date(now).toISOString(),
      uptime_s: (now - started_at_ms) / 1000,
      connections: this.connections.size,
      total_connections: this.totalConnections,
      tls_handshake_failures: this.tlsHandshakeFailures,
      in_msgs: traffic.msgsIn,
      in_bytes: traffic.bytesIn,
      out_msgs: traffic.msgsOut,
      out_bytes: traffic.bytesOut,
      published_msgs: broker.published_msgs,
      published_bytes: broker.published_bytes,
      rejected_msgs: broker.rejected_msgs,
      unrouted_msgs: broker.unrouted_msgs,
      slow_consumers: this.closedByReason.SLOW_CONSUMER,
      closed_by_reason: { ...this.closedByReason },
      queues: broker.queues,
      topics: broker.topics,
      declared_topics: broker.declared_topics,
      durables: broker.durables,
      bindings: broker.bindings,
      routed_msgs: broker.routed_msgs,
      declared_queues: broker.declared_queues,
      scheduled_msgs: broker.scheduled_msgs,
      duplicate_msgs: broker.duplicate_msgs,
      mem: {
        rss: mem.rss,
        heap_used: mem.heapUsed,
        heap_total: mem.heapTotal,
        external: mem.external,
        array_buffers: mem.arrayBuffers,
      },
      event_loop_lag_ms: this.#lag.running ? { last: lag.lastMs, max: lag.maxMs } : null,
      latency: broker.latency,
      auth: this.auth?.stats() ?? null,
      udp: this.udp?.stats() ?? null,
      authorization: this.auth === undefined ? null : { ...this.authz },
    };
  }

  /** Open connections by id, a page of them. */
  connectionStats(o: Pick<StatsOptions, "offset" | "limit" | "subs">): Page<ConnectionStats> {
    const all = [...this.connections.values()].sort((a, b) => a.id - b.id);
    const now = this.clock.now();
    return page(all, o, (c) => c.stats(now, o.subs));
  }

  /** The last `n` closed connections, newest first. */
  closedStats(n: number): ClosedConnectionStats[] {
    const ring = this.closedConnections;
    const out: ClosedConnectionStats[] = [];
    for (let i = ring.length - 1; i >= 0 && out.length < n; i--) out.push(closedStats(ring[i]));
    return out;
  }

  /** Everything, for `/api/stats`. */
  stats(o: StatsOptions): Stats {
    return {
      server: this.serverStats(),
      connections: this.connectionStats(o),
      queues: this.broker.queueStats(o),
      topics: this.broker.topicStats(o),
      bindings: this.broker.bindingStats(o),
      closed_connections: this.closedStats(o.closed),
    };
  }

  async #acceptLoop(listener: Listener): Promise<void> {
    let backoff = ACCEPT_BACKOFF_MS_MIN;
    for (;;) {
      let conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        this.#options.log?.("warn", "accept failed: {err}; retrying in {ms} ms", {
          err: String(err),
          ms: backoff,
        });
        await sleep(this.clock, backoff);
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MS_MAX);
        continue;
      }
      if (conn === undefined) return;
      backoff = ACCEPT_BACKOFF_MS_MIN;
      this.adopt(conn);
    }
  }

  /**
   * Serves a connection from any transport (TCP from the accept loop, a
   * WebSocket from the HTTP server): one `Connection` type, so framing,
   * limits, errors and close reasons are the same on every transport.
   */
  adopt(conn: Conn): void {
    this.#serve(conn, undefined);
  }

  /**
   * Serves a cluster peer's proxy connection (`PROXY <node-id>` on the
   * cluster port) as a trusted client: no authentication and every
   * permission, since its node checked them for its own client; it runs
   * only the queue commands this node leads (docs/CLUSTERING.md).
   */
  adoptProxy(conn: Conn, fromNode: string): void {
    this.#serve(conn, fromNode);
  }

  #serve(conn: Conn, proxyFrom: string | undefined): void {
    if (this.#stopping) return conn.close();
    this.totalConnections++;
    const c = new Connection(this.#nextId++, conn, this, proxyFrom);
    if (this.connections.size >= (this.#options.connectionsMax ?? CONNECTIONS_MAX)) {
      c.close(CloseReason.TOO_MANY_CONNECTIONS, "the server is at its connection limit");
      return;
    }
    this.connections.set(c.id, c);
    const running = c.run();
    this.#running.add(running);
    running.finally(() => this.#running.delete(running));
  }

  /** PINGs clients idle for a ping interval; closes those that missed too many. */
  #pingIdle(): void {
    const now = this.clock.now();
    const interval = this.#options.pingIntervalMs;
    for (const c of this.connections.values()) {
      if (now - c.lastActivity < interval) continue;
      if (c.pingsOut >= PINGS_OUTSTANDING_MAX) {
        c.close(CloseReason.STALE_CONNECTION, `no answer to ${c.pingsOut} PINGs`);
        continue;
      }
      c.ping();
      c.lastActivity = now;
    }
  }
}
