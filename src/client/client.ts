/**
 * The client: the public face of one connection to one broker, with
 * automatic reconnect, subscriptions renewed after it, and publishes buffered
 * (up to a bound) while it is down.
 *
 * The jobs live in their own files; this one wires them up and keeps the
 * API: `connection.ts` the connection lifecycle (handshake, keep-alive,
 * reconnect), `subscriptions.ts` the subscriptions that outlive connections,
 * `publisher.ts` the publish path and its reconnect buffer, `request.ts`
 * request/reply. Who owns what: the current `Link` owns the pending replies
 * and batched acks of its connection, and fails them when it closes; the
 * client owns the subscriptions, the reconnect buffer and the request inbox,
 * and the one close path (`#shutdown`).
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import { PublishBatch } from "./batch.ts";
import type { KeySigner } from "./auth.ts";
import { bindLine, declareLine, declareQueueLine } from "./admin_lines.ts";
import type { BindOptions, DeclareOptions, PublishOptions, QueueOptions } from "./options.ts";
import { toBytes } from "./pub_frame.ts";
import { Connection, type ServerInfo } from "./connection.ts";
import type { Dialer } from "./dialer.ts";
import { ConnectionClosedError, ConnectionLostError, DrainingError } from "./errors.ts";
import * as L from "./limits.ts";
import { NO_WAIT, type Pending, Reply } from "./link.ts";
import type { Message } from "./message.ts";
import { CONTENT_TYPES, encodeBody } from "./codec.ts";
import { Publisher } from "./publisher.ts";
import { Inbox, type RequestOptions } from "./request.ts";
import { type StatusEvent, StatusHub, type StatusListener } from "./status.ts";
import type { Subscription } from "./subscription.ts";
import { type SubscribeOptions, Subscriptions } from "./subscriptions.ts";
import { withTimeout } from "./timeout.ts";
import type { TlsOptions } from "./tls.ts";

/** Options of `connect`. */
export interface ConnectOptions {
  /** The runtime seam to get TCP sockets from; default: the one we run on (Deno or Bun). Not used for `ws://` URLs. */
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
  /**
   * Send a publish again after a reconnect when the connection was lost
   * before the broker answered it (default false). Each publish then carries
   * a dedup id (its own `dedupId`, or `<clientId>.<n>`), so a copy that did
   * reach the broker is not stored twice (within the destination's dedup
   * window). Publishes with a `dedupId` are retried either way.
   */
  retryPublishes?: boolean;
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
  /** Authenticate with the broker's `--auth-token`. */
  token?: string;
  /** User name: with `pass`, or naming the user of `keyFile` or of a client certificate. */
  user?: string;
  /** Password of `user`. */
  pass?: string;
  /** Path of an Ed25519 key file (`relayr keygen`): signs the broker's nonce, no secret is sent. */
  keyFile?: string;
  /** TLS (also turned on by a `tls://` address): CA, client certificate and key as PEM text or file paths. */
  tls?: TlsOptions;
}

/**
 * Opens a client over `dialer` (what `connect` does once it knows the
 * transport). Fails with `ConnectError` when the first connection cannot be made.
 */
export async function openClient(
  dialer: Dialer,
  options: ConnectOptions & { key?: KeySigner } = {},
): Promise<Client> {
  const client = new Client(dialer, options);
  await client.open();
  return client;
}

/** A connection to a Relayr broker. Made by `connect`. */
export class Client {
  #status = new StatusHub();
  #conn: Connection;
  #subs: Subscriptions;
  #publisher: Publisher;
  #inbox: Inbox;
  #requestTimeoutMs: number;
  #drainTimeoutMs: number;
  #draining: Promise<void> | null = null;
  #closed = false;
  #done = Promise.withResolvers<void>();

  /**
   * Use `connect`; a client made directly must be `open()`ed (and is given
   * its key file's signer as `key`, which `connect` reads).
   */
  constructor(dialer: Dialer, options: ConnectOptions & { key?: KeySigner } = {}) {
    this.#requestTimeoutMs = options.requestTimeoutMs ?? L.REQUEST_TIMEOUT_MS;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? L.DRAIN_TIMEOUT_MS;
    if (options.onStatus) this.#status.on(options.onStatus);
    const clientId = options.clientId ?? `relayr-${crypto.randomUUID().slice(0, 8)}`;
    this.#conn = new Connection(
      dialer,
      {
        clientId,
        name: options.name,
        reconnect: options.reconnect ?? true,
        maxReconnectAttempts: options.maxReconnectAttempts ?? L.RECONNECT_ATTEMPTS_MAX,
        reconnectDelayMs: options.reconnectDelayMs ?? L.RECONNECT_DELAY_MS,
        reconnectDelayMaxMs: options.reconnectDelayMaxMs ?? L.RECONNECT_DELAY_MS_MAX,
        connectTimeoutMs: options.connectTimeoutMs ?? L.CONNECT_TIMEOUT_MS,
        pingIntervalMs: options.pingIntervalMs ?? L.CLIENT_PING_INTERVAL_MS,
        credentials: {
          token: options.token,
          user: options.user,
          pass: options.pass,
          key: options.key,
        },
      },
      this.#status,
      {
        sub: (sid) => this.#subs.get(sid),
        attached: (link) => {
          this.#subs.renew(link);
          this.#publisher.sendTo(link);
        },
        dropped: (link) => this.#subs.dropped(link),
        shutdown: (error) => this.#shutdown(error, false),
      },
    );
    this.#subs = new Subscriptions({
      link: () => this.#conn.link,
      publish: (dest, body, opts) => this.publish(dest, body, opts),
      status: this.#status,
      drainTimeoutMs: this.#drainTimeoutMs,
    });
    this.#publisher = new Publisher(
      this.#conn,
      options.reconnectBufferBytes ?? L.RECONNECT_BUFFER_BYTES_MAX,
      options.retryPublishes ? `${clientId}.${crypto.randomUUID().slice(0, 8)}` : undefined,
    );
    this.#inbox = new Inbox({
      subscribe: (dest, callback) => this.subscribe(dest, { callback, ack: "none" }),
      publish: (dest, body, opts) => this.publish(dest, body, opts),
    });
    this.#done.promise.catch(() => {});
  }

  /** `host:port` of the broker. */
  get server(): string {
    return this.#conn.server;
  }

  /** What the broker said in `INFO` on the latest connection. */
  get info(): ServerInfo | undefined {
    return this.#conn.info;
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.#conn.link !== null && !this.#closed;
  }

  /** True once closed for good. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many times the client has reconnected. */
  get reconnects(): number {
    return this.#conn.reconnects;
  }

  /** Resolves when the client has closed for good. */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Makes the first connection; `connect()` calls it. */
  open(): Promise<void> {
    return this.#conn.open();
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
    body: Uint8Array | string | unknown,
    options?: PublishOptions,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#publish(dest, body, options, {
        kind: Reply.OK,
        // `msg_id:<id>`, or `msg_id:<first id> duplicate:true` for a dedup id seen before.
        resolve: (arg) => resolve(arg.startsWith("msg_id:") ? arg.slice(7).split(" ", 1)[0] : arg),
        reject,
      });
    });
  }

  /**
   * Publishes without waiting for the broker's answer: the fast path, no
   * promise, nothing allocated per message, and after a few in a row the
   * broker stops sending an `OK` per message (a quiet run, see
   * docs/CLIENT.md). A broker error (e.g. `QUEUE_FULL`) arrives later as a
   * status `error` event; every error of the publishes before a `flush()` has
   * been reported when it resolves. Throws at once on invalid arguments, a
   * closed client, or a full buffer (`BufferFullError`: the outbound buffer
   * holds over 64 MiB, or the reconnect buffer is full; await `flush()` and
   * go on).
   *
   * @example
   * ```ts ignore
   * for (let i = 0; i < 1000; i++) client.publishNoWait("topic:ticks", `${i}`);
   * await client.flush(); // every publish above has reached the broker
   * ```
   */
  publishNoWait(dest: string, body: Uint8Array | string | unknown, options?: PublishOptions): void {
    this.#publish(dest, body, options, NO_WAIT, true);
  }

  /**
   * A batch of publishes settled with one promise: `batch.publish()` queues
   * a message with no promise of its own, `await batch.done()` resolves once
   * the broker answered all of them, with the count accepted, the last id,
   * and each failure by its index. The broker's answer to each message is
   * still read (unlike `publishNoWait`), so errors are matched exactly.
   *
   * @example
   * ```ts ignore
   * const batch = client.batch();
   * for (const order of orders) batch.publish("queue:orders", JSON.stringify(order));
   * const { accepted, errors } = await batch.done();
   * ```
   */
  batch(): PublishBatch {
    return new PublishBatch((dest, body, opts, pending) =>
      this.#publish(dest, body, opts, pending, true)
    );
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
    body: unknown,
    opts: PublishOptions | undefined,
    pending: Pending,
    throwErrors = false,
  ): void {
    try {
      if (this.#closed) throw new ConnectionClosedError();
      let bytes: Uint8Array;
      if (opts?.codec === undefined) bytes = toBytes(body as Uint8Array | string);
      else {
        bytes = encodeBody(body, opts.codec);
        if (opts.contentType === undefined) {
          opts = { ...opts, contentType: CONTENT_TYPES[opts.codec] };
        }
      }
      this.#publisher.publish(dest, bytes, opts, pending);
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
    return await this.#subs.subscribe(dest, options);
  }

  /**
   * Declares a queue with settings over the broker's defaults (`DECLARE
   * queue:`); resolves once stored. Idempotent: the same settings again
   * resolve, other settings reject with `DeclareConflictError`. While the
   * client is reconnecting it rejects with `ConnectionLostError` (retry).
   *
   * @example
   * ```ts ignore
   * await client.declareQueue("queue:jobs", { maxMessages: 10_000, overflow: "drop_oldest", dlq: null });
   * ```
   */
  declareQueue(queue: string, options: QueueOptions = {}): Promise<void> {
    return this.#idempotent(() => declareQueueLine(queue, options), `DECLARE ${queue}`);
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
    return this.#idempotent(() => declareLine(topic, options), `DECLARE ${topic}`);
  }

  /**
   * Binds topics matching `pattern` to `queue` (`BIND`): every message
   * published to such a topic is also enqueued there, once per binding; with
   * `filter`, only those the selector takes. Resolves on the broker's `OK`,
   * once the binding is stored; binding the same pair again replaces its
   * filter. A publish to a bound topic whose queue is full (under `reject`)
   * fails with `QueueFullError` and is enqueued nowhere. Arguments are
   * checked first (`BadDestinationError`, `BadFilterError`); while the client
   * is reconnecting it rejects with `ConnectionLostError` (binding is
   * idempotent: retry).
   *
   * @example
   * ```ts ignore
   * await client.bind("topic:orders.>", "queue:audit");
   * await client.bind("topic:orders.*", "queue:big", { filter: "amount > 1000" });
   * ```
   */
  bind(pattern: string, queue: string, options: BindOptions = {}): Promise<void> {
    return this.#idempotent(() => bindLine(pattern, queue, options), `BIND ${pattern} ${queue}`);
  }

  /**
   * Removes the binding of `pattern` to `queue` (`UNBIND`); resolves on the
   * broker's `OK` (also when there was none). Errors as `bind`.
   *
   * @example
   * ```ts ignore
   * await client.unbind("topic:orders.>", "queue:audit");
   * ```
   */
  unbind(pattern: string, queue: string): Promise<void> {
    return this.#idempotent(
      () => bindLine(pattern, queue, {}, true),
      `UNBIND ${pattern} ${queue}`,
    );
  }

  /** Sends an idempotent command built by `line` (which validates), resolving on its `OK`. */
  #idempotent(line: () => string, what: string): Promise<void> {
    let text: string;
    try {
      if (this.#closed) throw new ConnectionClosedError();
      text = line();
    } catch (err) {
      return Promise.reject(err);
    }
    const link = this.#conn.link;
    if (link === null) {
      return Promise.reject(
        new ConnectionLostError(`Not connected; the client is reconnecting (${what})`),
      );
    }
    return link.command(text).then(() => {});
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
    return this.#inbox.request(dest, body, opts, timeoutMs ?? this.#requestTimeoutMs);
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
    const link = this.#conn.link;
    if (link === null) throw new ConnectionLostError("Not connected; the client is reconnecting");
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
    await withTimeout(
      link.command("PING", Reply.PONG),
      timeoutMs,
      `flush timed out after ${timeoutMs} ms`,
    );
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
    const inboxSub = await this.#inbox.subscription?.catch(() => null) ?? null;
    const work = (async () => {
      await this.#subs.drainAll(inboxSub);
      await this.#inbox.idle();
      if (inboxSub) await inboxSub.unsubscribe().catch(() => {});
      if (this.#conn.link !== null) await this.flush().catch(() => {});
    })();
    await withTimeout(work, this.#drainTimeoutMs);
    await this.#shutdown(undefined, true);
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

  /** The one close path: however the client ends, everything waiting hears it once. */
  async #shutdown(error: Error | undefined, writeOut: boolean): Promise<void> {
    if (this.#closed) return this.#done.promise;
    this.#closed = true;
    const closedErr = error ?? new ConnectionClosedError();
    await this.#conn.close(writeOut);
    this.#publisher.failAll(closedErr);
    this.#subs.closeAll(closedErr);
    this.#inbox.failAll(closedErr);
    this.#status.emit({ type: "closed", error });
    this.#done.resolve();
  }
}
