/**
 * The TCP server: an accept loop that backs off on errors, one `Connection`
 * per client, timers for the broker sweep and idle PINGs, graceful shutdown,
 * and the ring of recently closed connections.
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import {
  ACCEPT_BACKOFF_MS_MAX,
  CLOSED_CONNECTIONS_KEPT,
  CONNECTIONS_MAX,
  PINGS_OUTSTANDING_MAX,
  SHUTDOWN_FLUSH_MS,
  SWEEP_INTERVAL_MS,
} from "../config/limits.ts";
import { errFrame } from "../protocol/mod.ts";
import type { Listener, Runtime } from "../runtime/mod.ts";
import { CloseReason } from "./close_reason.ts";
import { Connection, type ConnectionHost } from "./connection.ts";

/** Server settings. */
export interface ServerOptions {
  hostname: string;
  port: number;
  payloadBytesMax: number;
  pingIntervalMs: number;
  connectionsMax?: number;
  version: string;
  /** Called with notable events (accept errors, closes) for logging. */
  log?: (
    level: "debug" | "info" | "warn" | "error",
    message: string,
    props?: Record<string, unknown>,
  ) => void;
}

/** A closed connection as the admin API shows it. */
export interface ClosedConnection {
  id: number;
  clientId: string | undefined;
  name: string | undefined;
  remoteAddr: string;
  reason: CloseReason;
  detail: string;
  openedAt: number;
  closedAt: number;
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
}

/** The broker's TCP front. */
export class Server implements ConnectionHost {
  readonly broker: Broker;
  readonly payloadBytesMax: number;
  readonly serverId = crypto.randomUUID();
  readonly connections = new Map<number, Connection>();
  readonly closedConnections: ClosedConnection[] = [];
  readonly closedByReason: Record<CloseReason, number> = Object.fromEntries(
    Object.values(CloseReason).map((r) => [r, 0]),
  ) as Record<CloseReason, number>;
  totalConnections = 0;
  /** Traffic of connections that have closed (live ones keep their own counters). */
  readonly closedTraffic = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0 };
  #runtime: Runtime;
  #options: ServerOptions;
  #listener: Listener | undefined;
  #acceptDone: Promise<void> | undefined;
  #running = new Set<Promise<void>>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #nextId = 1;
  #stopping = false;

  constructor(runtime: Runtime, broker: Broker, options: ServerOptions) {
    this.#runtime = runtime;
    this.broker = broker;
    this.#options = options;
    this.payloadBytesMax = options.payloadBytesMax;
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
  start(): void {
    this.#listener = this.#runtime.listen({
      hostname: this.#options.hostname,
      port: this.#options.port,
    });
    this.#acceptDone = this.#acceptLoop(this.#listener);
    this.#timers.push(setInterval(() => this.broker.sweep(), SWEEP_INTERVAL_MS));
    const pingCheckMs = Math.max(10, Math.min(this.#options.pingIntervalMs / 2, 5000));
    this.#timers.push(setInterval(() => this.#pingIdle(), pingCheckMs));
  }

  info(): string {
    return JSON.stringify({
      server_id: this.serverId,
      version: this.#options.version,
      runtime: `${this.#runtime.name} ${this.#runtime.version}`,
      max_payload: this.payloadBytesMax,
      proto: 1,
    });
  }

  closed(c: Connection, reason: CloseReason, detail: string): void {
    this.connections.delete(c.id);
    this.closedByReason[reason]++;
    const t = this.closedTraffic;
    t.msgsIn += c.msgsIn;
    t.bytesIn += c.bytesIn;
    t.msgsOut += c.msgsOut;
    t.bytesOut += c.bytesOut;
    const ring = this.closedConnections;
    ring.push({
      id: c.id,
      clientId: c.clientId,
      name: c.name,
      remoteAddr: c.remoteAddr,
      reason,
      detail,
      openedAt: c.openedAt,
      closedAt: Date.now(),
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
   * Graceful stop: no new connections, every client gets `ERR SHUTTING_DOWN`
   * after what was pending for it, sockets close, bounded by `SHUTDOWN_FLUSH_MS`.
   */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#listener?.close();
    await this.#acceptDone;
    for (const t of this.#timers) clearInterval(t);
    for (const c of [...this.connections.values()]) {
      c.close(CloseReason.SERVER_SHUTDOWN, "the server is stopping");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise<void>((r) => timer = setTimeout(r, SHUTDOWN_FLUSH_MS)),
    ]);
    clearTimeout(timer);
  }

  async #acceptLoop(listener: Listener): Promise<void> {
    let backoff = 5;
    for (;;) {
      let conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        this.#options.log?.("warn", "accept failed: {err}; retrying in {ms} ms", {
          err: String(err),
          ms: backoff,
        });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MS_MAX);
        continue;
      }
      if (conn === undefined) return;
      backoff = 5;
      this.totalConnections++;
      if (this.connections.size >= (this.#options.connectionsMax ?? CONNECTIONS_MAX)) {
        this.closedByReason[CloseReason.TOO_MANY_CONNECTIONS]++;
        conn.write(errFrame("TOO_MANY_CONNECTIONS", "the server is at its connection limit"))
          .catch(() => {}).finally(() => conn.close());
        continue;
      }
      const c = new Connection(this.#nextId++, conn, this);
      this.connections.set(c.id, c);
      const running = c.run();
      this.#running.add(running);
      running.finally(() => this.#running.delete(running));
    }
  }

  /** PINGs clients idle for a ping interval; closes those that missed too many. */
  #pingIdle(): void {
    const now = Date.now();
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
