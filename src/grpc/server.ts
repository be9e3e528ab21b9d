/**
 * The gRPC front end: service relayr.v1.Broker (docs/relayr.proto) on its own
 * port, translating each call into the same broker calls a TCP connection
 * makes. Every call passes `authenticate` and every destination `authorize`
 * (auth.ts); errors become statuses with the broker's code (errors.ts).
 *
 * @module
 */
import {
  type handleBidiStreamingCall,
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  setLogger,
} from "@grpc/grpc-js";
import { Action, type Authenticator, type AuthzCounters, type Review } from "../auth/mod.ts";
import type { Broker } from "../broker/mod.ts";
import {
  GRPC_KEEPALIVE_TIMEOUT_MS,
  GRPC_RECEIVE_BYTES_MAX,
  GRPC_STREAMS_MAX,
  SHUTDOWN_FLUSH_MS,
} from "../config/mod.ts";
import { bufferView, type Timer, type TlsFiles } from "../runtime/mod.ts";
import { CloseReason, type ServerStats } from "../server/mod.ts";
import { authenticate, authorize, certSubjectOf, type Principal, principalOf } from "./auth.ts";
import { codeOf, type GrpcError, grpcError, GrpcRefusal, toGrpcError } from "./errors.ts";
import { Inbox } from "./inbox.ts";
import { untilToken, type UserState, UserStates } from "./limits.ts";
import { PublishStream } from "./publish_stream.ts";
import { type PublishRequest, type PublishView, viewOf } from "./publish_codec.ts";
import { serverServiceDefinition } from "./proto.ts";
import { GrpcSubscriber, type SettleRequest, type SubscriberHost } from "./subscriber.ts";
import type { GrpcStats } from "./stats.ts";
import {
  checkPublish,
  type DeclareRequest,
  msgId,
  nackDelay,
  requestTimeout,
  type SubscribeOpen,
  toDeclare,
  toSubscribe,
} from "./validate.ts";

/** Settings of the gRPC listener. */
export interface GrpcOptions {
  hostname: string;
  port: number;
  payloadBytesMax: number;
  /** The broker's authenticator (the TCP server's); undefined: authentication is off. */
  auth?: Authenticator;
  /** The TCP port's certificate (`--tls-cert`, `--tls-key`, `--tls-ca`): the gRPC port serves it too. */
  tls?: TlsFiles;
  /** The server's authorization counters (`relayr_permission_denied_total` counts gRPC refusals too). */
  authz?: AuthzCounters;
  /**
   * HTTP/2 PING interval (`--ping-interval`): a client that answers none
   * within `GRPC_KEEPALIVE_TIMEOUT_MS` loses its connection, and its
   * Subscribe streams give their unacked messages back, as a stale TCP
   * connection does.
   */
  pingIntervalMs: number;
  /** The TCP server's figures, for the Stats call. */
  serverStats: () => ServerStats;
  log?: (
    level: "debug" | "info" | "warn" | "error",
    message: string,
    props?: Record<string, unknown>,
  ) => void;
}

/** The RPCs, for per-method counters. */
export const GRPC_METHODS = [
  "Publish",
  "PublishStream",
  "Subscribe",
  "Request",
  "Declare",
  "Unsubscribe",
  "Stats",
] as const;
/** One RPC name. */
export type GrpcMethod = typeof GRPC_METHODS[number];

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void;

/** Ids of the broker `Client`s of this listener start here: apart from TCP connection ids. */
const CLIENT_ID_BASE = 2 ** 40;

/** The gRPC listener. */
export class GrpcFront implements SubscriberHost {
  readonly broker: Broker;
  /** Open Subscribe streams, opened or not yet (each counts against `GRPC_STREAMS_MAX`). */
  readonly subscribeStreams = new Set<GrpcSubscriber>();
  /** Opened subscriptions by sub_id (for Unsubscribe). */
  readonly subscribers = new Map<string, GrpcSubscriber>();
  readonly publishStreams = new Map<ServerDuplexStream<unknown, unknown>, PublishStream>();
  readonly calls: Record<GrpcMethod, number> = Object.fromEntries(
    GRPC_METHODS.map((m) => [m, 0]),
  ) as Record<GrpcMethod, number>;
  readonly errors: Record<string, number> = {};
  readonly closedByReason: Partial<Record<CloseReason, number>> = {};
  msgsIn = 0;
  bytesIn = 0;
  /** Messages and bytes sent by subscribers that have closed (live ones count their own). */
  closedMsgsOut = 0;
  closedBytesOut = 0;
  #options: GrpcOptions;
  #server: Server;
  #inbox: Inbox;
  #port = 0;
  #nextId = CLIENT_ID_BASE;
  #stopping = false;
  /** A topic the last publish found blocked (`--slow-consumer block`), until its caller takes it. */
  #blocked: { unblocked(): Promise<void> } | undefined;
  /** Per-user limits, buckets and grants (limits.ts): a user's, across the listener. */
  #users: UserStates;

  constructor(broker: Broker, options: GrpcOptions) {
    this.broker = broker;
    this.#options = options;
    this.#users = new UserStates(options.payloadBytesMax);
    // grpc-js writes its own diagnostics to stderr (a failed bind as a second
    // line beside ours): they go to our log, at debug, instead. Process-wide,
    // as grpc-js's logger is.
    const debug = (...args: unknown[]) =>
      options.log?.("debug", "grpc-js: {text}", { text: args.join(" ") });
    setLogger({ error: debug, info: debug, debug });
    this.#inbox = new Inbox(this.#nextId++, broker);
    this.#server = new Server({
      "grpc.max_receive_message_length": GRPC_RECEIVE_BYTES_MAX,
      "grpc.keepalive_time_ms": options.pingIntervalMs,
      "grpc.keepalive_timeout_ms": GRPC_KEEPALIVE_TIMEOUT_MS,
    });
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /** Binds and serves; rejects when the port cannot be bound. */
  async start(): Promise<void> {
    this.#server.addService(serverServiceDefinition(), {
      Publish: this.#unary("Publish", this.#publish),
      PublishStream: ((call) => this.#publishStream(call)) as handleBidiStreamingCall<
        unknown,
        unknown
      >,
      Subscribe: ((call) => this.#subscribe(call)) as handleBidiStreamingCall<unknown, unknown>,
      Request: this.#unary("Request", this.#request),
      Declare: this.#unary("Declare", this.#declare),
      Unsubscribe: this.#unary("Unsubscribe", this.#unsubscribe),
      Stats: this.#unary("Stats", this.#stats),
    });
    const { hostname, port } = this.#options;
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(
        `${hostname}:${port}`,
        credentials(this.#options.tls),
        (err, bound) => err === null ? resolve(bound) : reject(bindError(err)),
      );
    });
    this.#inbox.open();
  }

  /**
   * Graceful stop: Subscribe streams end with UNAVAILABLE (SHUTTING_DOWN),
   * their unacked messages going back; waiting Requests fail; calls in
   * progress get up to `SHUTDOWN_FLUSH_MS`, then the server is forced shut.
   */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const s of [...this.subscribeStreams]) {
      s.close(CloseReason.SERVER_SHUTDOWN, "the server is stopping", shuttingDown());
    }
    for (const ps of this.publishStreams.values()) ps.fail(shuttingDown());
    this.#inbox.close(new GrpcRefusal("SHUTTING_DOWN", "the server is stopping"));
    let timer: Timer | undefined;
    await Promise.race([
      new Promise<void>((r) => this.#server.tryShutdown(() => r())),
      new Promise<void>((r) => timer = this.broker.clock.after(SHUTDOWN_FLUSH_MS, r)),
    ]);
    timer?.cancel();
    this.#server.forceShutdown();
  }

  /** Figures for /api/stats and /metrics. */
  stats(): GrpcStats {
    let msgsOut = this.closedMsgsOut;
    let bytesOut = this.closedBytesOut;
    for (const s of this.subscribeStreams) {
      msgsOut += s.msgsOut;
      bytesOut += s.bytesOut;
    }
    return {
      port: this.#port,
      subscribe_streams: this.subscribeStreams.size,
      publish_streams: this.publishStreams.size,
      requests_waiting: this.#inbox.size,
      calls: { ...this.calls },
      errors: { ...this.errors },
      closed_by_reason: { ...this.closedByReason },
      in_msgs: this.msgsIn,
      in_bytes: this.bytesIn,
      out_msgs: msgsOut,
      out_bytes: bytesOut,
    };
  }

  /**
   * A reload's verdict on the open streams, as on TCP connections: a revoked
   * user's streams end (UNAUTHENTICATED, AUTH_REVOKED; a subscription's
   * unacked messages go back), an updated one's take the new rules.
   */
  review(review: Review): void {
    const verdict = (p: Principal): Principal | null | undefined => {
      if (p.of === undefined) return undefined;
      const next = review(p.of);
      return next === null ? null : next === p.of ? undefined : principalOf(next);
    };
    const why = (p: Principal) =>
      `user ${JSON.stringify(p.user)} was removed or its credential changed`;
    for (const s of [...this.subscribeStreams]) {
      const v = verdict(s.principal);
      if (v === null) {
        s.close(
          CloseReason.AUTH_REVOKED,
          why(s.principal),
          grpcError("AUTH_REVOKED", why(s.principal)),
        );
      } else if (v !== undefined) this.#rules(s, v);
    }
    for (const [call, ps] of [...this.publishStreams]) {
      const v = verdict(ps.principal);
      if (v === null) {
        this.publishStreams.delete(call);
        this.closedByReason.AUTH_REVOKED = (this.closedByReason.AUTH_REVOKED ?? 0) + 1;
        ps.fail(grpcError("AUTH_REVOKED", why(ps.principal)));
      } else if (v !== undefined) ps.principal = v;
    }
    this.#users.retain((p) => review(p) !== null);
  }

  /**
   * New rules for an open Subscribe stream, as a TCP connection takes them:
   * a subscription they no longer allow ends (PERMISSION_DENIED), a
   * wildcard one re-decides its topics.
   */
  #rules(s: GrpcSubscriber, p: Principal): void {
    s.principal = p;
    const sub = s.sub;
    if (sub === undefined) return;
    if (p.perms === undefined || p.perms.maySubscribe(sub.destination)) {
      return sub.permissionsChanged();
    }
    const why = `user ${JSON.stringify(p.user)} may no longer read ${sub.destination}`;
    s.close(CloseReason.CLIENT_CLOSED, why, grpcError("PERMISSION_DENIED", why));
  }

  // --- SubscriberHost ---

  closed(s: GrpcSubscriber, reason: CloseReason, detail: string): void {
    this.subscribeStreams.delete(s);
    if (s.sub !== undefined) this.subscribers.delete(s.sub.sid);
    if (s.user !== undefined) s.user.subscriptions--;
    this.closedByReason[reason] = (this.closedByReason[reason] ?? 0) + 1;
    this.closedMsgsOut += s.msgsOut;
    this.closedBytesOut += s.bytesOut;
    const level = reason === CloseReason.CLIENT_CLOSED || reason === CloseReason.SERVER_SHUTDOWN
      ? "debug"
      : "info";
    this.#options.log?.(level, "gRPC subscribe stream {id} from {peer} closed: {reason} {detail}", {
      id: s.id,
      peer: s.peer,
      reason,
      detail,
    });
  }

  // --- calls ---

  /** A unary handler: counts the call, authenticates it, maps a throw to its status. */
  #unary<Req, Res>(
    method: GrpcMethod,
    handle: (p: Principal, req: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
  ): Unary<Req, Res> {
    const run = (p: Principal, call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      let out: Res | Promise<Res>;
      try {
        out = handle.call(this, p, call.request, call);
      } catch (e) {
        return cb(this.#fail(method, e));
      }
      if (out instanceof Promise) out.then((r) => cb(null, r), (e) => cb(this.#fail(method, e)));
      else cb(null, out);
    };
    return (call, cb) => {
      this.calls[method]++;
      const p = authenticate(
        this.#options.auth,
        call.metadata,
        call.getPeer(),
        this.#certSubject(call),
      );
      if (!(p instanceof Promise)) return run(p, call, cb);
      p.then((p) => run(p, call, cb), (e) => cb(this.#fail(method, e)));
    };
  }

  /** The verified client certificate's subject of a call (mTLS only). */
  #certSubject(call: { getAuthContext(): object }): string | undefined {
    return this.#options.tls?.ca === undefined ? undefined : certSubjectOf(call.getAuthContext());
  }

  /** Counts and logs a failed call; its status for grpc-js. */
  #fail(method: GrpcMethod, e: unknown): GrpcError {
    const code = codeOf(e) ?? "INTERNAL";
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    if (code === "PERMISSION_DENIED" && this.#options.authz) {
      this.#options.authz.permission_denied++;
    }
    if (code === "INTERNAL") {
      this.#options.log?.("error", "gRPC {method} failed: {err}", {
        method,
        err: (e as Error)?.stack ?? String(e),
      });
    }
    return toGrpcError(e);
  }

  /**
   * One publish through the broker, as a PUB on TCP: checked, authorized,
   * counted. A publish that found a topic blocked by a stalled subscriber
   * (`--slow-consumer block`) hands back the wait: the broker's flag is
   * always taken here, so that it never leaks to a TCP connection.
   */
  #publishOne(
    p: Principal,
    v: PublishView,
    u: UserState | undefined,
    inbox = false,
  ): number | Promise<number> {
    const m = checkPublish(v, u?.limits.maxPayload ?? this.#options.payloadBytesMax);
    const perms = p.perms;
    if (perms !== undefined && !perms.may(Action.PUBLISH, m.dest)) {
      // allow_responses: a reply to a request this user received on a Subscribe stream.
      if (u?.grants?.take(m.dest, this.broker.now) !== true) authorize(p, "publish", m.dest);
    }
    // As on TCP: a reply_to is where a service with allow_responses will
    // publish past its own rules, so only a destination the requester may
    // read (a Request's own inbox is the listener's, not the caller's).
    const replyTo = m.options?.replyTo;
    if (!inbox && replyTo !== undefined && perms !== undefined && !perms.maySubscribe(replyTo)) {
      authorize(p, "subscribe", replyTo);
    }
    if (u !== undefined) u.bucket.tokens--;
    this.msgsIn++;
    this.bytesIn += m.len;
    try {
      return this.broker.publishFrom(m.dest, m.buf, m.off, m.len, m.options);
    } finally {
      const blocked = this.broker.takeBlocked();
      if (blocked !== undefined) this.#blocked = blocked;
    }
  }

  /**
   * The caller's user state, once its `publish_rate` bucket holds a token:
   * a unary call over the rate waits (one timer per wait), as a TCP
   * connection stops reading, bounded by the call's deadline.
   */
  async #token(
    p: Principal,
    call: ServerUnaryCall<unknown, unknown>,
  ): Promise<UserState | undefined> {
    const u = this.#users.of(p, this.broker.tick());
    if (u === undefined || !u.bucket.limited) return u;
    u.bucket.refill(this.broker.now);
    if (u.bucket.tokens >= 1) return u;
    await this.#waitToken(u, () => call.cancelled, new Promise((r) => call.once("cancelled", r)));
    if (call.cancelled) throw new GrpcRefusal("TIMEOUT", "the call ended waiting for publish_rate");
    return u;
  }

  #waitToken(u: UserState, gone: () => boolean, ended: Promise<void>): Promise<void> {
    const b = this.broker;
    return untilToken(
      u.bucket,
      b.clock,
      () => b.tick(),
      () => gone() || this.#stopping,
      ended,
      this.#options.authz,
    );
  }

  #takeBlocked(): { unblocked(): Promise<void> } | undefined {
    const b = this.#blocked;
    this.#blocked = undefined;
    return b;
  }

  async #publish(
    p: Principal,
    r: PublishRequest,
    call: ServerUnaryCall<unknown, unknown>,
  ): Promise<{ msg_id: string }> {
    const u = await this.#token(p, call);
    this.broker.tick();
    const id = this.#publishOne(p, viewOf(r), u);
    const blocked = this.#takeBlocked();
    const msgId = await id;
    if (blocked !== undefined) await blocked.unblocked();
    return { msg_id: String(msgId) };
  }

  /** A stream of publish batches (publish_stream.ts), counted among the listener's streams. */
  #publishStream(call: ServerDuplexStream<unknown, unknown>): void {
    this.calls.PublishStream++;
    this.#authenticated(call, "PublishStream", (p) => this.#publishStreamAs(call, p));
  }

  /**
   * Runs `start` with the stream's principal once authenticated; until then
   * the stream is paused (its requests wait in grpc-js, bounded by HTTP/2
   * flow control). A refusal ends the stream with its status.
   */
  #authenticated(
    call: ServerDuplexStream<unknown, unknown>,
    method: GrpcMethod,
    start: (p: Principal) => void,
  ): void {
    const go = (p: Principal) => {
      if (call.cancelled || call.destroyed) return;
      try {
        this.#admitStream();
      } catch (e) {
        call.emit("error", this.#fail(method, e));
        return;
      }
      start(p);
    };
    const p = authenticate(
      this.#options.auth,
      call.metadata,
      call.getPeer(),
      this.#certSubject(call),
    );
    if (!(p instanceof Promise)) return go(p);
    call.pause();
    p.then((p) => {
      go(p);
      call.resume();
    }, (e) => {
      if (!call.cancelled && !call.destroyed) call.emit("error", this.#fail(method, e));
    });
  }

  #publishStreamAs(call: ServerDuplexStream<unknown, unknown>, p: Principal): void {
    const ps = new PublishStream(call, {
      tick: () => this.broker.tick(),
      userOf: (p) => this.#users.of(p, this.broker.now),
      waitToken: (u, gone, ended) => this.#waitToken(u, gone, ended),
      publishOne: (p, v, u) => this.#publishOne(p, v, u),
      takeBlocked: () => this.#takeBlocked(),
      refused: (e) => this.#fail("PublishStream", e),
      ended: (call) => {
        if (!this.publishStreams.delete(call)) return;
        const r = this.#stopping ? CloseReason.SERVER_SHUTDOWN : CloseReason.CLIENT_CLOSED;
        this.closedByReason[r] = (this.closedByReason[r] ?? 0) + 1;
      },
    }, p);
    this.publishStreams.set(call, ps);
  }

  #admitStream(): void {
    if (this.#stopping) throw new GrpcRefusal("SHUTTING_DOWN", "the server is stopping");
    if (this.subscribeStreams.size + this.publishStreams.size >= GRPC_STREAMS_MAX) {
      throw new GrpcRefusal("LIMIT", `at most ${GRPC_STREAMS_MAX} gRPC streams`);
    }
  }

  /**
   * A Subscribe stream: the first request opens the subscription, later ones
   * settle or unsubscribe. Any end of the call closes it (cancelled: its
   * unacked messages are redelivered, as after a TCP disconnect).
   */
  #subscribe(call: ServerDuplexStream<unknown, unknown>): void {
    this.calls.Subscribe++;
    this.#authenticated(call, "Subscribe", (p) => this.#subscribeAs(call, p));
  }

  #subscribeAs(call: ServerDuplexStream<unknown, unknown>, p: Principal): void {
    const s = new GrpcSubscriber(
      this.#nextId++,
      call as ServerDuplexStream<unknown, Uint8Array>,
      this,
      p,
    );
    this.subscribeStreams.add(s);
    call.on("data", (req: SubscribeRequestObject) => {
      if (s.isClosed) return;
      try {
        this.#onSubscribeRequest(s, s.principal, req);
      } catch (e) {
        // Refused at open: the stream ends with the status. Refused later (a
        // bad settle, a forget on a subscription that is not durable): told in
        // the stream, which goes on, as an ERR on TCP. A bug ends it.
        const err = this.#fail("Subscribe", e);
        const code = codeOf(e);
        if (s.sub !== undefined && code !== undefined) s.refused(code, err.details);
        else s.close(CloseReason.CLIENT_CLOSED, err.details, err);
      }
    });
    call.on("end", () => s.close(CloseReason.CLIENT_CLOSED, "the client half-closed"));
    call.on("cancelled", () => s.close(CloseReason.CLIENT_CLOSED, "cancelled"));
    call.on("error", (e: Error) => s.close(CloseReason.WRITE_ERROR, String(e?.message ?? e)));
    call.on("close", () => s.close(CloseReason.CLIENT_CLOSED, "the stream closed"));
  }

  #onSubscribeRequest(s: GrpcSubscriber, p: Principal, req: SubscribeRequestObject): void {
    switch (req.kind) {
      case "open": {
        if (s.sub !== undefined) {
          throw new GrpcRefusal("BAD_ARGUMENT", "the stream is open already");
        }
        const sid = `g${s.id - CLIENT_ID_BASE}`;
        const { dest, options } = toSubscribe(req.open!, sid);
        authorize(p, dest.startsWith("queue:") ? "consume" : "subscribe", dest);
        const u = this.#users.of(p, this.broker.tick());
        if (u !== undefined && u.subscriptions >= u.limits.subscriptions) {
          throw new GrpcRefusal(
            "LIMIT",
            `at most ${u.limits.subscriptions} subscriptions per user over gRPC`,
          );
        }
        const sub = this.broker.subscribe(s, dest, sid, options);
        if (u !== undefined) {
          u.subscriptions++;
          s.user = u;
        }
        this.subscribers.set(sid, s);
        s.start(sub);
        return;
      }
      case "settle": {
        if (s.sub === undefined) throw new GrpcRefusal("BAD_ARGUMENT", "open the stream first");
        const st = req.settle!;
        for (const a of st.ack) msgId(a);
        for (const n of st.nack) {
          msgId(n.msg_id);
          nackDelay(n.delay_ms);
        }
        s.settle(st);
        return;
      }
      case "unsubscribe": {
        if (s.sub === undefined) throw new GrpcRefusal("BAD_ARGUMENT", "open the stream first");
        this.#end(s, p, req.unsubscribe!.forget);
        return;
      }
      default:
        throw new GrpcRefusal(
          "BAD_ARGUMENT",
          "a SubscribeRequest must set open, settle or unsubscribe",
        );
    }
  }

  /** Ends a subscription on the client's word (Unsubscribe in or out of its stream). */
  #end(s: GrpcSubscriber, p: Principal, forget: boolean): void {
    if (forget) {
      if (!s.sub!.durable) {
        throw new GrpcRefusal("BAD_ARGUMENT", `${s.sub!.sid} is not durable: no forget`);
      }
      authorize(p, "admin", s.sub!.destination);
    }
    s.close(
      CloseReason.CLIENT_CLOSED,
      forget ? "unsubscribed (forget)" : "unsubscribed",
      undefined,
      forget,
    );
  }

  #unsubscribe(p: Principal, r: { sub_id: string; forget: boolean }): Record<string, never> {
    const s = this.subscribers.get(r.sub_id);
    if (s === undefined || s.principal.user !== p.user) {
      throw new GrpcRefusal("UNKNOWN_SUB_ID", `no subscription ${JSON.stringify(r.sub_id)}`);
    }
    this.#end(s, p, r.forget);
    return {};
  }

  async #request(
    p: Principal,
    r: { message: PublishRequest | null; timeout_ms: number },
    call: ServerUnaryCall<unknown, unknown>,
  ): Promise<{ reply: unknown }> {
    if (r.message === null) throw new GrpcRefusal("BAD_ARGUMENT", "Request needs a message");
    const u = await this.#token(p, call);
    const deadline = call.getDeadline();
    const left = deadline instanceof Date
      ? deadline.getTime() - Date.now()
      : Number.isFinite(deadline)
      ? Number(deadline) - Date.now()
      : Infinity;
    const timeoutMs = requestTimeout(r.timeout_ms, left);
    return new Promise((resolve, reject) => {
      const w = this.#inbox.wait(timeoutMs, (err, reply) => err ? reject(err) : resolve({ reply }));
      call.once("cancelled", w.cancel);
      try {
        const v = viewOf(r.message!);
        v.replyTo = w.replyTo;
        v.correlationId = w.correlationId;
        this.broker.tick();
        const id = this.#publishOne(p, v, u, true);
        this.#takeBlocked();
        if (id instanceof Promise) id.catch((e) => (w.cancel(), reject(e)));
      } catch (e) {
        w.cancel();
        reject(e);
      }
    });
  }

  async #declare(p: Principal, r: DeclareRequest): Promise<Record<string, never>> {
    const { dest, options } = toDeclare(r);
    authorize(p, "admin", dest);
    this.broker.tick();
    await this.broker.declare(dest, options);
    return {};
  }

  #stats(_p: Principal): Record<string, unknown> {
    const s = this.#options.serverStats();
    return {
      server_id: s.server_id,
      version: s.version,
      published_msgs: s.published_msgs,
      connections: s.connections,
      grpc_streams: this.subscribeStreams.size + this.publishStreams.size,
      queues: s.queues,
      topics: s.topics,
      json: JSON.stringify({ ...s, grpc: this.stats() }),
    };
  }
}

/** A SubscribeRequest as proto-loader decodes it (`oneofs: true` names the set field). */
interface SubscribeRequestObject {
  kind?: "open" | "settle" | "unsubscribe";
  open?: SubscribeOpen;
  settle?: SettleRequest;
  unsubscribe?: { forget: boolean };
}

/**
 * The listener's credentials: with `--tls-cert` the same certificate as the
 * TCP port (and with `--tls-ca` a client certificate required, mTLS);
 * plaintext h2c otherwise.
 */
function credentials(tls: TlsFiles | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const pem = (text: string) => bufferView(encoder.encode(text)) as Buffer;
  return ServerCredentials.createSsl(
    tls.ca === undefined ? null : pem(tls.ca),
    [{ private_key: pem(tls.key), cert_chain: pem(tls.cert) }],
    tls.ca !== undefined,
  );
}

const encoder = new TextEncoder();

/**
 * grpc-js reports a failed bind as one message ("No address added out of
 * total 1 resolved ... EADDRINUSE ..."): the code is lifted out of it so that
 * the start-up error names the reason as for the other ports.
 */
function bindError(err: Error): Error {
  const code = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(err.message)?.[1];
  return code === undefined ? err : Object.assign(new Error(err.message), { code });
}

function shuttingDown(): GrpcError {
  return toGrpcError(new GrpcRefusal("SHUTTING_DOWN", "the server is stopping"));
}
