/**
 * The connection lifecycle of a client: one {@linkcode Link} at a time, the
 * handshake, keep-alive PINGs, and reconnecting with jittered exponential
 * back-off when the link drops.
 *
 * Who owns what: the connection owns the current link, the broker's `INFO`
 * and the reconnect loop; each link owns its pending replies and batched
 * acks and fails them when it closes. What must happen on a new link
 * (subscriptions renewed, buffered publishes sent) and on a drop belongs to
 * the client, which this file reaches through {@linkcode ConnectionHost}.
 *
 * @module
 */
import { PAYLOAD_BYTES_MAX } from "../config/limits.ts";
import type { Conn } from "../runtime/mod.ts";
import { type ClientCredentials, connectFields } from "./auth.ts";
import type { Dialer } from "./dialer.ts";
import {
  AuthError,
  AuthTimeoutError,
  type BrokerProtocolError,
  ConnectError,
  ConnectionClosedError,
  ConnectionLostError,
  StaleConnectionError,
  TimeoutError,
} from "./errors.ts";
import { handleFrames } from "./dispatch.ts";
import { CLIENT_PINGS_OUTSTANDING_MAX, CLOSE_FLUSH_TIMEOUT_MS } from "./limits.ts";
import { Link, Reply } from "./link.ts";
import type { StatusHub } from "./status.ts";
import type { SubState } from "./subscription.ts";
import { withTimeout } from "./timeout.ts";
import { Wire } from "./wire.ts";

/** What the broker says about itself in `INFO`. */
export interface ServerInfo {
  /** Unique id of the broker process. */
  server_id?: string;
  /** Relayr version of the broker. */
  version?: string;
  /** Runtime the broker runs on, e.g. `deno 2.9.6`. */
  runtime?: string;
  /** Largest payload (headers + body) the broker accepts, in bytes. */
  max_payload?: number;
  /** Protocol version (1). */
  proto?: number;
  /** Fields of newer brokers. */
  [key: string]: unknown;
}

/** The connection settings of `ConnectOptions`, defaults applied. */
export interface ConnectionOptions {
  clientId: string;
  name: string | undefined;
  reconnect: boolean;
  maxReconnectAttempts: number;
  reconnectDelayMs: number;
  reconnectDelayMaxMs: number;
  connectTimeoutMs: number;
  pingIntervalMs: number;
  /** What to authenticate with (none: anonymous). */
  credentials: ClientCredentials;
}

/** What the connection needs from its client. */
export interface ConnectionHost {
  /** The subscription a `MSG` is for, if it still exists. */
  sub(sid: string): SubState | undefined;
  /** A new link, before anything else is written to it: renew subscriptions, then send what was buffered. */
  attached(link: Link): void;
  /** The link that was up has dropped and the client goes on: subscriptions drop what the broker gives back. */
  dropped(link: Link): void;
  /** Closes the client for good (no reconnect, gave up, first connect failed), with `error` as the reason. */
  shutdown(error: Error | undefined): Promise<void>;
}

/** One connection at a time to one broker, reconnected when it drops. */
export class Connection {
  #dialer: Dialer;
  #opts: ConnectionOptions;
  #status: StatusHub;
  #host: ConnectionHost;
  #link: Link | null = null;
  #gen = 0;
  #info: ServerInfo | undefined;
  #maxPayload = PAYLOAD_BYTES_MAX;
  #reconnecting = false;
  #reconnects = 0;
  #closed = false;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  /** An auth error that ended a reconnect attempt: retrying cannot help. */
  #refused: AuthError | undefined;

  /**
   * @param dialer where sockets come from (TCP or WebSocket)
   * @param opts connection settings
   * @param status where connection events go
   * @param host the client
   */
  constructor(
    dialer: Dialer,
    opts: ConnectionOptions,
    status: StatusHub,
    host: ConnectionHost,
  ) {
    this.#dialer = dialer;
    this.#opts = opts;
    this.#status = status;
    this.#host = host;
  }

  /** `host:port` of the broker, or its WebSocket URL. */
  get server(): string {
    return this.#dialer.server;
  }

  /** The link that is up, or null while (re)connecting or once closed. */
  get link(): Link | null {
    return this.#link;
  }

  /** What the broker said in `INFO` on the latest connection. */
  get info(): ServerInfo | undefined {
    return this.#info;
  }

  /** The broker's `max_payload` once known. */
  get maxPayload(): number {
    return this.#maxPayload;
  }

  /** How many times the connection came back. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Makes the first connection; on failure the client is shut down and this throws `ConnectError`. */
  async open(): Promise<void> {
    let conn;
    try {
      conn = await this.#dial();
    } catch (err) {
      await this.#host.shutdown(undefined);
      throw new ConnectError(`Cannot connect to ${this.server}: ${message(err)}`, { cause: err });
    }
    const link = this.#attach(conn);
    const timer = setTimeout(
      () => link.wire.close(new TimeoutError("broker did not answer CONNECT")),
      this.#opts.connectTimeoutMs,
    );
    try {
      await link.handshake.promise;
    } catch (err) {
      await this.#host.shutdown(undefined);
      // Refused credentials are their own error (AuthFailedError), not "cannot connect".
      if (link.fatal instanceof AuthError) throw link.fatal;
      throw new ConnectError(`Cannot connect to ${this.server}: ${message(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    this.#pingTimer = setInterval(() => this.#keepAlive(), this.#opts.pingIntervalMs);
    this.#status.emit({ type: "connected", server: this.server });
  }

  /**
   * Closes for good: no more reconnects. With `writeOut`, commands already
   * sent get their answers first (one bounded round trip) and every byte
   * written reaches the socket.
   */
  async close(writeOut: boolean): Promise<void> {
    this.#closed = true;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#sleepTimer);
    this.#wake?.();
    const link = this.#link;
    if (link === null) return;
    if (writeOut && link.ready && link.pending.length > 0) {
      // One bounded round trip, so what was sent gets its answer (and the
      // broker does not write replies into a closed socket).
      const pong = link.command("PING", Reply.PONG);
      await withTimeout(pong, CLOSE_FLUSH_TIMEOUT_MS).catch(() => {});
    }
    if (writeOut) await link.wire.settle();
    await link.wire.close();
  }

  async #dial(): Promise<Conn> {
    const ms = this.#opts.connectTimeoutMs;
    const dialing = this.#dialer.dial();
    try {
      return await withTimeout(dialing, ms, `connect timed out after ${ms} ms`);
    } catch (err) {
      // A socket that connects after we gave up is closed, not leaked.
      if (err instanceof TimeoutError) dialing.then((c) => c.close(), () => {});
      throw err;
    }
  }

  /** Starts using a new socket: handshake, then what the client renews and buffered, in that order. */
  #attach(conn: Conn): Link {
    const gen = ++this.#gen;
    const report = (err: Error) => this.#status.emit({ type: "error", error: err });
    // deno-lint-ignore prefer-const -- assigned once, after the closures that read it are made
    let link: Link;
    const wire = new Wire(conn, {
      ...handleFrames({
        link: () => link,
        sub: (sid) => this.#host.sub(sid),
        report,
        protocolError: (err: BrokerProtocolError) => link.wire.close(err),
      }),
      beforeFlush: () => link.flushAcks(),
      onClose: (_wire, error) => this.#onClose(link, error),
    });
    link = new Link(gen, wire, report);
    const key = this.#opts.credentials.key;
    if (key === undefined) {
      this.#hello(link, undefined);
      return link;
    }
    // A key signs the nonce of the INFO greeting, which only a broker that
    // requires auth sends, before anything else. A PING finds out without
    // waiting for a timeout: its PONG comes after the greeting if there is
    // one. Nobody else writes to the link until the CONNECT is out
    // (`#link` is set then), so publishes buffer meanwhile.
    link.send("PING", {
      kind: Reply.PONG,
      resolve: async () => {
        let sig: string | undefined;
        try {
          sig = link.nonce === undefined ? undefined : await key.sign(link.nonce);
        } catch (err) {
          return link.wire.close(err as Error);
        }
        // Closed meanwhile (timed out, dropped): it must never become the current link.
        if (this.#closed || link.wire.closed || link.fatal !== undefined) return;
        this.#hello(link, sig);
      },
      reject: (err) => link.handshake.reject(err),
    });
    return link;
  }

  /** CONNECT (with the credentials) and INFO, then what the client renews and buffered. */
  #hello(link: Link, sig: string | undefined): void {
    this.#link = link;
    const hello = {
      version: "1.0",
      client_id: this.#opts.clientId,
      name: this.#opts.name,
      verbose: true,
      ...connectFields(this.#opts.credentials, sig),
    };
    link.send(`CONNECT ${JSON.stringify(hello)}`, { kind: Reply.OK, resolve: null, reject: null });
    link.setConnectFields({ version: hello.version, client_id: hello.client_id, name: hello.name });
    link.send("INFO", {
      kind: Reply.INFO,
      resolve: (json) => {
        this.#setInfo(link, json);
        link.ready = true;
        link.handshake.resolve();
      },
      reject: (err) => link.handshake.reject(err),
    });
    this.#host.attached(link);
    link.wire.schedule();
  }

  #setInfo(link: Link, json: string): void {
    try {
      this.#info = JSON.parse(json) as ServerInfo;
    } catch {
      this.#info = {};
    }
    const max = this.#info.max_payload;
    if (typeof max === "number" && max > 0) {
      this.#maxPayload = max;
      link.wire.parser.maxPayloadBytes = max;
    }
  }

  #onClose(link: Link, error: Error | undefined): void {
    const current = this.#link === link;
    if (current) this.#link = null;
    const why = link.fatal ?? error;
    // Waiting commands get ConnectionLostError even after a fatal ERR: a
    // subscription must be renewed after SHUTTING_DOWN, not ended by it.
    link.failAll(
      this.#closed ? new ConnectionClosedError() : new ConnectionLostError(
        why ? `Connection lost: ${why.message}` : undefined,
        why ? { cause: why } : undefined,
      ),
    );
    // A connection that never finished its handshake was never "up":
    // open() or the reconnect loop deal with it.
    if (this.#closed || !current || !link.ready) return;
    this.#host.dropped(link);
    this.#status.emit({ type: "disconnected", server: this.server, error: link.fatal ?? error });
    if (!this.#opts.reconnect) {
      this.#host.shutdown(link.fatal ?? new ConnectionLostError());
      return;
    }
    if (!this.#reconnecting) this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    this.#reconnecting = true;
    try {
      const max = this.#opts.maxReconnectAttempts;
      for (let attempt = 1; attempt <= max && !this.#closed; attempt++) {
        const delayMs = backoff(
          attempt,
          this.#opts.reconnectDelayMs,
          this.#opts.reconnectDelayMaxMs,
        );
        this.#status.emit({ type: "reconnecting", attempt, delayMs });
        await this.#sleep(delayMs);
        if (this.#closed) return;
        if (await this.#attempt()) return;
        if (this.#refused !== undefined) {
          // Refused credentials stay refused: give up now, not after every attempt.
          return void await this.#host.shutdown(this.#refused);
        }
      }
      if (!this.#closed) {
        await this.#host.shutdown(
          new ConnectionClosedError(`Gave up reconnecting to ${this.server} after ${max} attempts`),
        );
      }
    } finally {
      this.#reconnecting = false;
    }
  }

  /** One reconnect attempt; true when the client is connected again or closed meanwhile. */
  async #attempt(): Promise<boolean> {
    let conn;
    try {
      conn = await this.#dial();
    } catch {
      return false;
    }
    if (this.#closed) {
      conn.close();
      return true;
    }
    const link = this.#attach(conn);
    try {
      await withTimeout(link.handshake.promise, this.#opts.connectTimeoutMs);
    } catch {
      await link.wire.close();
      const fatal = link.fatal;
      if (fatal instanceof AuthError && !(fatal instanceof AuthTimeoutError)) this.#refused = fatal;
      return false;
    }
    if (this.#closed || this.#link !== link) return false;
    this.#reconnects++;
    this.#status.emit({ type: "reconnected", server: this.server });
    return true;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        clearTimeout(this.#sleepTimer);
        this.#wake = undefined;
        resolve();
      };
      this.#sleepTimer = setTimeout(this.#wake, ms);
    });
  }

  #keepAlive(): void {
    const link = this.#link;
    if (link === null) return;
    if (link.pingsOut >= CLIENT_PINGS_OUTSTANDING_MAX) {
      link.wire.close(new StaleConnectionError("the broker did not answer keep-alive PINGs"));
      return;
    }
    link.pingsOut++;
    link.send("PING", {
      kind: Reply.PONG,
      resolve: () => link.pingsOut = 0,
      reject: null,
    });
  }
}

/** Jittered exponential back-off: half the exponential delay fixed, half random. */
export function backoff(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(exp / 2 + Math.random() * exp / 2);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
