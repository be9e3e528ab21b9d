/**
 * The client: one connection at a time to one broker, with automatic
 * reconnect, subscriptions renewed after it, and publishes buffered (up to a
 * bound) while it is down.
 *
 * Who owns what: the current {@linkcode Link} owns the pending replies and
 * batched acks of its connection, and fails them when it closes; the client
 * owns the subscriptions (they outlive connections), the reconnect buffer and
 * the request inbox.
 *
 * @module
 */
import { PAYLOAD_BYTES_MAX } from "../config/limits.ts";
import { type Conn, loadRuntime, type Runtime } from "../runtime/mod.ts";
import { type Address, parseAddress } from "./address.ts";
import {
  type AckMode,
  checkSubscribe,
  declareLine,
  type DeclareOptions,
  encodePub,
  nackLine,
  type PublishOptions,
  subLine,
  type SubWireOptions,
  toBytes,
  unsubLine,
} from "./commands.ts";
import {
  type BrokerProtocolError,
  BufferFullError,
  ConnectError,
  ConnectionClosedError,
  ConnectionLostError,
  DrainingError,
  DuplicateSubIdError,
  StaleConnectionError,
  TimeoutError,
  UnknownSubIdError,
} from "./errors.ts";
import { handleFrames } from "./dispatch.ts";
import * as L from "./limits.ts";
import { Link, NO_WAIT, type Pending, Reply } from "./link.ts";
import type { Message, MessageContext } from "./message.ts";
import { OutBuf } from "./outbound.ts";
import { Inbox } from "./request.ts";
import { type StatusEvent, StatusHub, type StatusListener } from "./status.ts";
import { type Subscription, type SubscriptionHost, SubState } from "./subscription.ts";
import { Wire } from "./wire.ts";

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /** The runtime seam to get sockets from; default: the one we run on (Deno or Bun). */
  runtime?: Runtime;
  /** Shown in the broker's stats. */
  name?: string;
  /** Shown in the broker's stats and logs; default a random id. */
  clientId?: string;
  /** Reconnect when the connection drops (default true). */
  reconnect?: boolean;
  /** Attempts before giving up and closing (default 120; `Infinity` for ever). */
  maxReconnectAttempts?: number;
  /** First reconnect delay, doubled per attempt, jittered (default 100). */
  reconnectDelayMs?: number;
  /** Longest reconnect delay (default 2000). */
  reconnectDelayMaxMs?: number;
  /** Publish bytes kept while reconnecting (default 8 MiB); more fail with `BufferFullError`. */
  reconnectBufferBytes?: number;
  /** Time one connect plus handshake may take (default 5000). */
  connectTimeoutMs?: number;
  /** Keep-alive PING interval (default 30000); two unanswered PINGs drop the connection. */
  pingIntervalMs?: number;
  /** Default timeout of `request()` (default 5000). */
  requestTimeoutMs?: number;
  /** Longest time `drain()` waits for in-flight messages (default 30000). */
  drainTimeoutMs?: number;
  /** Receives every status event. */
  onStatus?: StatusListener;
}

/** Options of {@linkcode Client.subscribe}. */
export interface SubscribeOptions extends SubWireOptions {
  /** Messages buffered before the subscription drops and reports `slow_consumer` (default 65536). */
  maxPendingMessages?: number;
  /** Payload bytes buffered before it drops and reports `slow_consumer` (default 64 MiB). */
  maxPendingBytes?: number;
  /** Handle messages in a callback instead of iterating (no buffer; errors go to the status stream). */
  callback?: (msg: Message) => void | Promise<void>;
}

/** Options of {@linkcode Client.request}. */
export interface RequestOptions extends Omit<PublishOptions, "replyTo" | "correlationId"> {
  /** How long to wait for the reply (default: the client's `requestTimeoutMs`). */
  timeoutMs?: number;
}

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

type Buffered = { bytes: Uint8Array; pending: Pending };
type Required_ = Required<Omit<ConnectOptions, "runtime" | "onStatus" | "name">>;

/**
 * Connects to a broker. Fails with `ConnectError` when the first connection
 * cannot be made; later drops are reconnected on their own.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./mod.ts";
 * const client = await connect("localhost:9092");
 * const id = await client.publish("queue:orders", '{"order_id":"12345"}');
 * console.log("accepted as", id);
 * await client.close();
 * ```
 */
export async function connect(
  address: string = L.DEFAULT_SERVER,
  options: ConnectOptions = {},
): Promise<Client> {
  const runtime = options.runtime ?? await loadRuntime();
  const client = new Client(parseAddress(address), runtime, options);
  await client.open();
  return client;
}

/** A connection to a Relayr broker. Made by {@linkcode connect}. */
export class Client {
  #address: Address;
  #runtime: Runtime;
  #opts: Required_;
  #name: string | undefined;
  #status = new StatusHub();
  #link: Link | null = null;
  #gen = 0;
  #subs = new Map<string, SubState>();
  #nextSid = 1;
  #buffered: Buffered[] = [];
  #bufferedBytes = 0;
  #scratch = new OutBuf();
  #info: ServerInfo | undefined;
  #maxPayload = PAYLOAD_BYTES_MAX;
  #inbox: Inbox;
  #reconnecting = false;
  #reconnects = 0;
  #draining: Promise<void> | null = null;
  #closed = false;
  #done = Promise.withResolvers<void>();
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  /** Use {@linkcode connect}; a client made directly must be `open()`ed. */
  constructor(address: Address, runtime: Runtime, options: ConnectOptions = {}) {
    this.#address = address;
    this.#runtime = runtime;
    this.#name = options.name;
    this.#opts = {
      clientId: options.clientId ?? `relayr-${crypto.randomUUID().slice(0, 8)}`,
      reconnect: options.reconnect ?? true,
      maxReconnectAttempts: options.maxReconnectAttempts ?? L.RECONNECT_ATTEMPTS_MAX,
      reconnectDelayMs: options.reconnectDelayMs ?? L.RECONNECT_DELAY_MS,
      reconnectDelayMaxMs: options.reconnectDelayMaxMs ?? L.RECONNECT_DELAY_MS_MAX,
      reconnectBufferBytes: options.reconnectBufferBytes ?? L.RECONNECT_BUFFER_BYTES_MAX,
      connectTimeoutMs: options.connectTimeoutMs ?? L.CONNECT_TIMEOUT_MS,
      pingIntervalMs: options.pingIntervalMs ?? L.CLIENT_PING_INTERVAL_MS,
      requestTimeoutMs: options.requestTimeoutMs ?? L.REQUEST_TIMEOUT_MS,
      drainTimeoutMs: options.drainTimeoutMs ?? L.DRAIN_TIMEOUT_MS,
    };
    if (options.onStatus) this.#status.on(options.onStatus);
    this.#inbox = new Inbox({
      subscribe: (dest, callback) => this.subscribe(dest, { callback, ack: "none" }),
      publish: (dest, body, opts) => this.publish(dest, body, opts),
    });
    this.#done.promise.catch(() => {});
  }

  /** `host:port` of the broker. */
  get server(): string {
    return `${this.#address.hostname}:${this.#address.port}`;
  }

  /** What the broker said in `INFO` on the latest connection. */
  get info(): ServerInfo | undefined {
    return this.#info;
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.#link !== null && !this.#closed;
  }

  /** True once closed for good. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many times the client has reconnected. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Resolves when the client has closed for good. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Makes the first connection; `connect()` calls it. */
  async open(): Promise<void> {
    let conn;
    try {
      conn = await this.#dial();
    } catch (err) {
      await this.#shutdown(undefined, false);
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
      await this.#shutdown(undefined, false);
      throw new ConnectError(`Cannot connect to ${this.server}: ${message(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    this.#pingTimer = setInterval(() => this.#keepAlive(), this.#opts.pingIntervalMs);
    this.#status.emit({ type: "connected", server: this.server });
  }

  /** Adds a status listener; returns its remover. */
  onStatus(listener: StatusListener): () => void {
    return this.#status.on(listener);
  }

  /**
   * Status events from now on, ending after `closed`.
   *
   * @example
   * ```ts ignore
   * for await (const event of client.status()) console.log(event.type);
   * ```
   */
  status(): AsyncIterable<StatusEvent> {
    return this.#status.iterate();
  }

  /**
   * Publishes a message; resolves with the broker's msg id once it answers
   * `OK`, rejects with its typed error (e.g. `QueueFullError`). While
   * reconnecting the message is buffered and sent after the reconnect.
   *
   * @example
   * ```ts ignore
   * const id = await client.publish("queue:orders", '{"order_id":"12345"}', {
   *   priority: 5,
   *   headers: { "Trace-Id": "abc" },
   * });
   * ```
   */
  publish(
    dest: string,
    body: Uint8Array | string,
    options?: PublishOptions,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#publish(dest, body, options, {
        kind: Reply.OK,
        resolve: (arg) => resolve(arg.startsWith("msg_id:") ? arg.slice(7) : arg),
        reject,
      });
    });
  }

  /**
   * Publishes without waiting for the broker's answer. A broker error (e.g.
   * `QUEUE_FULL`) arrives later as a status `error` event. Throws at once on
   * invalid arguments or a full buffer.
   *
   * @example
   * ```ts ignore
   * for (let i = 0; i < 1000; i++) client.publishNoWait("topic:ticks", `${i}`);
   * await client.flush(); // every publish above has reached the broker
   * ```
   */
  publishNoWait(dest: string, body: Uint8Array | string, options?: PublishOptions): void {
    this.#publish(dest, body, options, NO_WAIT, true);
  }

  /**
   * Publishes `JSON.stringify(value)` with content type `application/json`.
   *
   * @example
   * ```ts ignore
   * await client.publishJson("topic:events", { event: "order_placed" });
   * ```
   */
  publishJson(dest: string, value: unknown, options?: PublishOptions): Promise<string> {
    return this.publish(dest, JSON.stringify(value), {
      contentType: "application/json",
      ...options,
    });
  }

  #publish(
    dest: string,
    body: Uint8Array | string,
    opts: PublishOptions | undefined,
    pending: Pending,
    throwErrors = false,
  ): void {
    try {
      if (this.#closed) throw new ConnectionClosedError();
      const bytes = toBytes(body);
      const link = this.#link;
      if (link !== null) {
        if (link.wire.out.length > L.OUTBOUND_BYTES_MAX) {
          throw new BufferFullError(
            `Outbound buffer holds over ${L.OUTBOUND_BYTES_MAX} bytes; wait for earlier publishes`,
          );
        }
        encodePub(link.wire.out, dest, bytes, opts, this.#maxPayload);
        link.pending.push(pending);
        link.wire.schedule();
        return;
      }
      encodePub(this.#scratch, dest, bytes, opts, this.#maxPayload);
      const frame = this.#scratch.take();
      const copy = frame.slice();
      this.#scratch.release(frame);
      if (this.#bufferedBytes + copy.length > this.#opts.reconnectBufferBytes) {
        throw new BufferFullError(
          `Reconnect buffer is full (${this.#opts.reconnectBufferBytes} bytes); publish to ${dest} rejected`,
        );
      }
      this.#buffered.push({ bytes: copy, pending });
      this.#bufferedBytes += copy.length;
    } catch (err) {
      if (throwErrors) throw err;
      pending.reject?.(err as Error);
    }
  }

  /**
   * Subscribes; resolves once the broker answered `OK`. Iterate the result
   * with `for await`.
   *
   * On a declared topic, `start` replays retained messages first and
   * `durable` names a subscription whose position the broker keeps (it has
   * explicit acks; a later subscription with the name resumes where this one
   * left off, unacked messages again). After a reconnect the client renews
   * the subscription without `start`: a durable resumes at its stored
   * position, and a plain replay goes on with new messages instead of
   * replaying its history again (it has no stored position; see
   * docs/CLIENT.md). Errors: `NotDeclaredError` (the topic is not declared),
   * `DurableInUseError` (another subscription uses the durable).
   *
   * @example
   * ```ts ignore
   * const sub = await client.subscribe("queue:orders", { prefetch: 10 });
   * for await (const msg of sub) {
   *   console.log(msg.json());
   *   await msg.ack();
   * }
   * ```
   *
   * @example Durable subscription of a declared topic
   * ```ts ignore
   * await client.declare("topic:orders", { retainMessages: 100_000 });
   * const sub = await client.subscribe("topic:orders", { durable: "billing", start: "first" });
   * for await (const msg of sub) {
   *   console.log(msg.text());
   *   await msg.ack(); // moves the durable's stored position
   * }
   * ```
   */
  async subscribe(dest: string, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) throw new ConnectionClosedError();
    if (this.#draining) throw new DrainingError();
    const ack: AckMode = checkSubscribe(dest, options);
    const sid = options.subId ?? this.#freeSid();
    if (this.#subs.has(sid)) throw new DuplicateSubIdError(`sub_id ${sid} is in use`);
    const state = new SubState({
      dest,
      sid,
      ack,
      line: subLine(dest, sid, ack, options),
      resumeLine: subLine(dest, sid, ack, options, true),
      durable: options.durable,
      maxMessages: options.maxPendingMessages ?? L.SUB_BUFFER_MESSAGES_MAX,
      maxBytes: options.maxPendingBytes ?? L.SUB_BUFFER_BYTES_MAX,
      callback: options.callback,
      host: this.#subHost,
    });
    state.ctx = this.#messageContext(state);
    this.#subs.set(sid, state);
    if (this.#link !== null) this.#sendSub(this.#link, state);
    try {
      await state.confirmed.promise;
    } catch (err) {
      if (this.#subs.get(sid) === state) this.#subs.delete(sid);
      state.abort();
      throw err;
    }
    return state.sub;
  }

  #freeSid(): string {
    for (;;) {
      const sid = `s${this.#nextSid++}`;
      if (!this.#subs.has(sid)) return sid;
    }
  }

  /**
   * Declares a topic with retention (`DECLARE`): the broker keeps its
   * messages, subscribers or not, within the limits (at least one), which is
   * what replay (`start`) and durable subscriptions read from. Resolves on the
   * broker's `OK` (once the declaration is stored); declaring again replaces
   * all three limits (one not given goes back to the broker's default).
   * Arguments are checked first (`BadDestinationError`, `BadArgumentError`);
   * while the client is reconnecting it rejects with `ConnectionLostError`
   * (declaring is idempotent: retry).
   *
   * @example
   * ```ts ignore
   * await client.declare("topic:orders", { retainMessages: 100_000, retainAgeMs: 86_400_000 });
   * ```
   */
  declare(topic: string, options: DeclareOptions): Promise<void> {
    let line: string;
    try {
      if (this.#closed) throw new ConnectionClosedError();
      line = declareLine(topic, options);
    } catch (err) {
      return Promise.reject(err);
    }
    const link = this.#link;
    if (link === null) {
      return Promise.reject(
        new ConnectionLostError(`Not connected; the client is reconnecting (DECLARE ${topic})`),
      );
    }
    return link.command(line).then(() => {});
  }

  /**
   * Publishes a request and resolves with the first reply (a responder
   * answers with `msg.respond()`), or rejects with `TimeoutError`.
   *
   * @example
   * ```ts ignore
   * const reply = await client.request("queue:prices", "AAPL", { timeoutMs: 2000 });
   * console.log(reply.text());
   * ```
   */
  request(
    dest: string,
    body: Uint8Array | string,
    options: RequestOptions = {},
  ): Promise<Message> {
    const { timeoutMs, ...opts } = options;
    if (this.#closed) return Promise.reject(new ConnectionClosedError());
    return this.#inbox.request(dest, body, opts, timeoutMs ?? this.#opts.requestTimeoutMs);
  }

  /**
   * Round trip to the broker (`PING`/`PONG`): resolves once everything sent
   * before it has been processed.
   *
   * @example
   * ```ts ignore
   * client.publishNoWait("topic:a", "x");
   * await client.flush();
   * ```
   */
  async flush(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closed) throw new ConnectionClosedError();
    const link = this.#link;
    if (link === null) throw new ConnectionLostError("Not connected; the client is reconnecting");
    const timeoutMs = options.timeoutMs ?? this.#opts.requestTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        link.command("PING", Reply.PONG),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new TimeoutError(`flush timed out after ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Closes gracefully: stops every subscription from taking new messages,
   * lets the loops process and ack what they have, unsubscribes, waits for
   * outstanding requests and publishes, then closes. Bounded by
   * `drainTimeoutMs`.
   *
   * @example
   * ```ts ignore
   * await client.drain();
   * ```
   */
  drain(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#draining ??= this.#drainAll();
    return this.#draining;
  }

  async #drainAll(): Promise<void> {
    const inboxSub = await this.#inbox.subscription?.catch(() => null);
    const subs = [...this.#subs.values()].filter((s) => s.sub !== inboxSub);
    const work = (async () => {
      await Promise.allSettled(subs.map((s) => this.#drainSub(s)));
      await this.#inbox.idle();
      if (inboxSub) await inboxSub.unsubscribe().catch(() => {});
      if (this.#link !== null) await this.flush().catch(() => {});
    })();
    await withTimeout(work, this.#opts.drainTimeoutMs);
    await this.#shutdown(undefined, true);
  }

  async #drainSub(s: SubState): Promise<void> {
    // Explicit acks: take nothing new (the broker requeues what we never ack),
    // wait until every message taken is settled, then unsubscribe. No acks:
    // unsubscribe first; what arrived before the broker's OK is still handed out.
    if (s.ack === "explicit") {
      s.draining = true;
      await s.whenIdle();
    }
    await this.#unsubscribe(s).catch(() => {});
    s.end();
    await s.whenIdle();
  }

  /**
   * Closes: commands already sent get their answers (one PING round trip,
   * at most 2 s), then the socket closes. Buffered messages of explicit-ack
   * subscriptions are dropped (the broker redelivers them), the loops end,
   * anything still waiting rejects with `ConnectionClosedError`.
   */
  close(): Promise<void> {
    return this.#shutdown(undefined, true);
  }

  async #shutdown(error: Error | undefined, writeOut: boolean): Promise<void> {
    if (this.#closed) return this.#done.promise;
    this.#closed = true;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#sleepTimer);
    this.#wake?.();
    const closedErr = error ?? new ConnectionClosedError();
    const link = this.#link;
    if (link !== null) {
      if (writeOut && link.ready && link.pending.length > 0) {
        // One bounded round trip, so what was sent gets its answer (and the
        // broker does not write replies into a closed socket).
        const pong = link.command("PING", Reply.PONG);
        await withTimeout(pong, L.CLOSE_FLUSH_TIMEOUT_MS).catch(() => {});
      }
      if (writeOut) await link.wire.settle();
      await link.wire.close();
    }
    for (const b of this.#buffered) b.pending.reject?.(closedErr);
    this.#buffered = [];
    this.#bufferedBytes = 0;
    for (const s of this.#subs.values()) {
      s.confirmed.reject(closedErr);
      if (s.ack === "explicit") s.abort();
      else s.end();
    }
    this.#subs.clear();
    this.#inbox.failAll(closedErr);
    this.#status.emit({ type: "closed", error });
    this.#done.resolve();
  }

  // ---- connections -------------------------------------------------------

  async #dial() {
    const { hostname, port } = this.#address;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const dialing = this.#runtime.connect({ hostname, port });
    try {
      return await Promise.race([
        dialing,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            dialing.then((c) => c.close(), () => {});
            reject(new TimeoutError(`connect timed out after ${this.#opts.connectTimeoutMs} ms`));
          }, this.#opts.connectTimeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts using a new socket: handshake, subscriptions, buffered publishes, in that order. */
  #attach(conn: Conn): Link {
    const gen = ++this.#gen;
    // deno-lint-ignore prefer-const -- assigned once, after the closures that read it are made
    let link: Link;
    const wire = new Wire(conn, {
      ...handleFrames({
        link: () => link,
        sub: (sid) => this.#subs.get(sid),
        report: (err) => this.#status.emit({ type: "error", error: err }),
        protocolError: (err: BrokerProtocolError) => link.wire.close(err),
      }),
      beforeFlush: () => link.flushAcks(),
      onClose: (_wire, error) => this.#onClose(link, error),
    });
    link = new Link(gen, wire, (err) => this.#status.emit({ type: "error", error: err }));
    this.#link = link;
    const hello = {
      version: "1.0",
      client_id: this.#opts.clientId,
      name: this.#name,
      verbose: true,
    };
    link.send(`CONNECT ${JSON.stringify(hello)}`, { kind: Reply.OK, resolve: null, reject: null });
    link.send("INFO", {
      kind: Reply.INFO,
      resolve: (json) => {
        this.#setInfo(link, json);
        link.ready = true;
        link.handshake.resolve();
      },
      reject: (err) => link.handshake.reject(err),
    });
    for (const [sid, s] of this.#subs) {
      if (s.ended) this.#subs.delete(sid);
      else this.#sendSub(link, s);
    }
    for (const b of this.#buffered) {
      link.wire.out.writeBytes(b.bytes);
      link.pending.push(b.pending);
    }
    this.#buffered = [];
    this.#bufferedBytes = 0;
    link.wire.schedule();
    return link;
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
    for (const [sid, s] of this.#subs) {
      s.purge(link.gen + 1); // the broker gives unacked messages back; they will be redelivered
      if (s.draining) {
        s.abort();
        this.#subs.delete(sid);
      }
    }
    this.#status.emit({ type: "disconnected", server: this.server, error: link.fatal ?? error });
    if (!this.#opts.reconnect) {
      this.#shutdown(link.fatal ?? new ConnectionLostError(), false);
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
        let conn;
        try {
          conn = await this.#dial();
        } catch {
          continue;
        }
        if (this.#closed) {
          conn.close();
          return;
        }
        const link = this.#attach(conn);
        try {
          await withTimeout(link.handshake.promise, this.#opts.connectTimeoutMs);
        } catch {
          await link.wire.close();
          continue;
        }
        if (this.#closed || this.#link !== link) continue;
        this.#reconnects++;
        this.#status.emit({ type: "reconnected", server: this.server });
        return;
      }
      if (!this.#closed) {
        await this.#shutdown(
          new ConnectionClosedError(
            `Gave up reconnecting to ${this.server} after ${max} attempts`,
          ),
          false,
        );
      }
    } finally {
      this.#reconnecting = false;
    }
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
    if (link.pingsOut >= L.CLIENT_PINGS_OUTSTANDING_MAX) {
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

  // ---- subscriptions and settling ---------------------------------------

  #sendSub(link: Link, s: SubState): void {
    // Once confirmed, renewals leave `start` out: a durable resumes at its
    // stored position; a plain replay must not replay its history again.
    link.send(s.subscribed ? s.resumeLine : s.line, {
      kind: Reply.OK,
      resolve: () => {
        s.subscribed = true;
        s.confirmed.resolve();
      },
      reject: (err) => {
        if (err instanceof ConnectionLostError) return; // renewed on the next connection
        if (this.#subs.get(s.sid) === s) this.#subs.delete(s.sid);
        if (!s.subscribed) {
          s.confirmed.reject(err); // subscribe() rejects
          return;
        }
        // A renewal after a reconnect that the broker refused: the loop ends with its error.
        s.end(err);
        this.#status.emit({ type: "error", error: err });
      },
    });
  }

  #unsubscribe(s: SubState, forget = false): Promise<void> {
    const link = this.#link;
    if (this.#subs.get(s.sid) !== s) {
      if (!forget) return Promise.resolve();
      return Promise.reject(
        new UnknownSubIdError(
          `subscription ${s.sid} has already ended; subscribe with durable ${s.durable} again to forget it`,
        ),
      );
    }
    if (link === null) {
      this.#subs.delete(s.sid);
      if (!forget) return Promise.resolve();
      return Promise.reject(
        new ConnectionLostError(
          `Not connected; durable ${s.durable} was not forgotten (subscribe with it again to forget it)`,
        ),
      );
    }
    return link.command(unsubLine(s.sid, forget)).then(
      () => {
        if (this.#subs.get(s.sid) === s) this.#subs.delete(s.sid);
      },
      (err) => {
        if (this.#subs.get(s.sid) === s) this.#subs.delete(s.sid);
        if (
          forget ||
          !(err instanceof ConnectionLostError || err instanceof ConnectionClosedError)
        ) {
          throw err;
        }
      },
    );
  }

  #subHost: SubscriptionHost = {
    unsubscribe: (s, forget) => this.#unsubscribe(s, forget),
    drain: async (s) => {
      if (s.ended) return;
      try {
        await withTimeout(this.#drainSub(s), this.#opts.drainTimeoutMs);
      } catch (err) {
        s.abort();
        await this.#unsubscribe(s).catch(() => {});
        throw err;
      }
    },
    slowConsumer: (s) =>
      this.#status.emit({ type: "slow_consumer", subId: s.sid, dest: s.dest, dropped: s.dropped }),
    error: (err) => this.#status.emit({ type: "error", error: err }),
  };

  #messageContext(s: SubState): MessageContext {
    return {
      explicit: s.ack === "explicit",
      ack: (msg, confirm) => {
        if (s.ack !== "explicit") return Promise.resolve();
        const link = this.#usableFor(s, msg);
        if (link === null) return this.#staleSettle(msg, confirm);
        return link.ack(msg.id, confirm);
      },
      nack: (msg, delayMs, confirm) => {
        if (s.ack !== "explicit") return Promise.resolve();
        let line: string;
        try {
          line = nackLine(msg.id, delayMs);
        } catch (err) {
          return Promise.reject(err);
        }
        const link = this.#usableFor(s, msg);
        if (link === null) return this.#staleSettle(msg, confirm);
        if (confirm) return link.command(line).then(() => {});
        link.send(line, {
          kind: Reply.OK,
          resolve: null,
          reject: (err) => this.#status.emit({ type: "error", error: err }),
        });
        return Promise.resolve();
      },
      publish: (dest, body, opts) => this.publish(dest, body, opts),
    };
  }

  /** The link to settle `msg` on, counting the settle; null when the connection that delivered it is gone. */
  #usableFor(s: SubState, msg: Message): Link | null {
    const link = this.#link;
    if (link === null || link.gen !== msg.generation) return null;
    s.settled();
    return link;
  }

  #staleSettle(msg: Message, confirm: boolean): Promise<void> {
    if (!confirm) return Promise.resolve();
    return Promise.reject(
      new ConnectionLostError(
        `Message ${msg.id} was delivered on a connection that is gone; the broker redelivers it`,
      ),
    );
  }
}

/** Jittered exponential back-off: half the exponential delay fixed, half random. */
export function backoff(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(exp / 2 + Math.random() * exp / 2);
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
