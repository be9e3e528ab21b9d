/**
 * One client connection: socket bytes flow through the framing stream into
 * `#handle`, replies and messages flow out through one coalescing writer.
 * There is one close path, `close(reason)`, and every close has a reason.
 *
 * @module
 */
import {
  Action,
  type Authenticator,
  type AuthzCounters,
  type Limits,
  newNonce,
  type Permissions,
  permissionsOf,
  type Principal,
  resolveLimits,
  ResponseGrants,
  TokenBucket,
  type UserConnections,
  type UserEntry,
} from "../auth/mod.ts";
import {
  type Broker,
  type Client,
  type Delivery,
  InFlight,
  type Subscription,
} from "../broker/mod.ts";
import { AUTH_NONCE_BYTES, CLOSE_FLUSH_MS, RECENT_UNACKED_IDS } from "../config/mod.ts";
import {
  type AckFrame,
  type BindFrame,
  type ConnectFrame,
  type DeclareFrame,
  errFrame,
  type ErrorCode,
  type Frame,
  type NackFrame,
  Parser,
  PING,
  PONG,
  type PubFrame,
  type SubFrame,
  type UnbindFrame,
} from "../protocol/mod.ts";
import type { Clock, Conn, Timer } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import { CloseReason, closeReasonOf } from "./close_reason.ts";
import { Outbound } from "./outbound.ts";
import { Replies } from "./replies.ts";
import type { ConnectionStats } from "./stats.ts";

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly broker: Broker;
  readonly clock: Clock;
  readonly payloadBytesMax: number;
  /** Open connections per user, for the users' `connections` limits. */
  readonly userConnections: UserConnections;
  /** Where refusals and rate pauses are counted. */
  readonly authz: AuthzCounters;
  /** The `INFO` JSON line. */
  info(): string;
  /** Authentication, when it is on. */
  readonly auth: Authenticator | undefined;
  /** Ms a connection has to authenticate (auth on). */
  readonly authTimeoutMs: number;
  /** Called once when the connection has closed. */
  closed(c: Connection, reason: CloseReason, detail: string): void;
}

/** One client connection. */
export class Connection implements Client {
  readonly id: number;
  readonly remoteAddr: string;
  readonly openedAt: number;
  clientId: string | undefined;
  name: string | undefined;
  msgsIn = 0;
  bytesIn = 0;
  msgsOut = 0;
  bytesOut = 0;
  /** Last time the client sent anything (epoch ms). */
  lastActivity: number;
  pingsOut = 0;
  readonly subs = new Map<string, Subscription>();
  /** Deliveries awaiting ACK, by message id (the subscriptions keep them in order). */
  readonly inflight: InFlight = new InFlight();
  #conn: Conn;
  #host: ConnectionHost;
  #broker: Broker;
  #out: Outbound;
  /** Replies in command order, held behind any that wait for the store. */
  #replies: Replies;
  /** Scratch list of the deliveries one ACK line settles, reused. */
  #acked: Delivery[] = [];
  /** Made on the first delivery without explicit acks (8 KiB: most connections never need it). */
  #recent: Float64Array | undefined = undefined;
  #recentPos = 0;
  #nextSid = 1;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #closed = false;
  /** Settles when the connection closes; made only if it ever pauses for a stalled subscriber. */
  #whenClosed: Promise<void> | undefined = undefined;
  #onClosed: (() => void) | undefined = undefined;
  /** The nonce of the INFO greeting, set until the connection authenticates (auth on only). */
  #nonce: string | undefined = undefined;
  #authTimer: Timer | undefined = undefined;
  #parser: Parser;
  /** Who it acts for, once authenticated; undefined: anonymous (auth off, or not yet). */
  #principal: Principal | undefined = undefined;
  /** Its user's compiled permissions; undefined: everything allowed (and no check at all). */
  #perms: Permissions | undefined = undefined;
  /**
   * The destination its last allowed PUB went to: the parser hands a run of
   * PUBs to one destination the same string, so they are checked by identity,
   * without even the cache's map lookup.
   */
  #pubAllowed: string | undefined = undefined;
  /** Reply-tos it may answer (`allow_responses` with publish restricted), else undefined. */
  #grants: ResponseGrants | undefined = undefined;
  #limits: Limits;
  /** Publish-rate bucket: `tokens` is Infinity when unlimited, so a PUB costs one decrement. */
  #bucket: TokenBucket;

  constructor(id: number, conn: Conn, host: ConnectionHost) {
    this.id = id;
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.#host = host;
    this.#broker = host.broker;
    this.openedAt = this.lastActivity = host.clock.now();
    this.#out = new Outbound(conn, {
      onDrain: () => this.#resume(),
      onOverflow: () => {
        queueMicrotask(() =>
          this.close(
            CloseReason.SLOW_CONSUMER,
            "outbound buffer over its limit: the client is not reading",
          )
        );
      },
      onWriteError: (err) => this.close(CloseReason.WRITE_ERROR, String(err)),
      beforeWrite: () => this.#broker.options.store.writePending(),
    });
    this.#replies = new Replies(this.#out);
    if (host.auth !== undefined) this.#nonce = newNonce(AUTH_NONCE_BYTES);
    this.#limits = this.#limitsOf(undefined);
    this.#bucket = new TokenBucket(0, 0, this.openedAt);
    this.#parser = new Parser({ payloadBytesMax: host.payloadBytesMax });
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Outbound bytes waiting for the socket. */
  get pendingBytes(): number {
    return this.#out.pending;
  }

  /** Reads and handles frames until the client goes or the connection is closed. */
  async run(): Promise<void> {
    // The parser is called straight from the read loop: piping the socket
    // through a TransformStream around the same parser cost
    // a stream hop, and its promises, per chunk.
    // A runtime's own `read()`, where it has one, skips the web stream's hop
    // (and its promises) per chunk as well.
    const parser = this.#parser;
    const conn = this.#conn;
    const reader = conn.read === undefined ? this.#reader = conn.readable.getReader() : undefined;
    const frames: Frame[] = [];
    if (this.#nonce !== undefined) this.#greet();
    /** The last chunk, once nothing points into it: the runtime may read into it again. */
    let free: Uint8Array | undefined;
    for (;;) {
      let chunk: Uint8Array | null | undefined;
      try {
        chunk = reader === undefined ? await conn.read!(free) : (await reader.read()).value;
      } catch (err) {
        return this.close(CloseReason.READ_ERROR, String(err));
      }
      if (chunk == null || this.#closed) break;
      free = undefined;
      if (parser.dead) continue; // a fatal framing error closes the connection: drain, ignore
      try {
        frames.length = 0;
        parser.push(chunk, frames); // keeps copies of a frame split across chunks, no views
        if (frames.length === 0) {
          free = chunk;
          continue;
        }
        const now = this.lastActivity = this.#broker.tick();
        this.pingsOut = 0;
        this.#bucket.refill(now);
        // One check per batch: until the CONNECT succeeds, frames go through
        // the gate; those behind a successful one are handled as any others.
        this.#broker.takePinned();
        let awaited = false;
        let from = 0;
        if (this.#nonce !== undefined) {
          from = await this.#beforeAuth(frames);
          awaited = true;
        }
        for (let i = from; i < frames.length && !this.#closed; i++) {
          // Over its publish rate: reading stops (TCP back-pressure reaches
          // the client) until the bucket has a token again; nothing is dropped.
          if (this.#bucket.tokens < 1 && frames[i].op === "PUB") {
            await this.#throttle();
            awaited = true;
          }
          if (!this.#closed) this.#handle(frames[i]);
        }
        // Nothing published from the chunk points into it (a queue delivery
        // in flight would): read into it again. After an await, other
        // connections' publishes have muddled the broker's answer.
        if (!this.#broker.takePinned() && !awaited) free = chunk;
      } catch (err) {
        // A bug, not bad input: bad input never throws. Close this connection
        // loudly (its messages go back to their queues) and keep serving the rest.
        return this.close(CloseReason.INTERNAL_ERROR, (err as Error)?.stack ?? String(err));
      }
      const blocked = this.#broker.takeBlocked();
      if (blocked !== undefined) await this.#pause(blocked);
    }
    this.close(CloseReason.CLIENT_CLOSED, "");
  }

  /**
   * Auth on: the INFO greeting with the nonce a key user signs, and the
   * deadline to authenticate by.
   */
  #greet(): void {
    this.#replies.ascii(`INFO ${this.#info()}\r\n`);
    const ms = this.#host.authTimeoutMs;
    this.#authTimer = this.#host.clock.after(ms, () => {
      this.close(CloseReason.AUTH_TIMEOUT, `no successful CONNECT within ${ms} ms`);
    });
  }

  /**
   * The frames of a connection that has not authenticated: only CONNECT,
   * PING, PONG and INFO (and the parser's errors) are handled, anything else
   * gets `ERR AUTH_REQUIRED`. A CONNECT is awaited before the next frame, and
   * nothing more is read meanwhile (the read loop waits on this), so no frame
   * is handled before the verdict, and a failed attempt's delay holds the
   * connection's reading too. Returns where the frames behind a successful
   * CONNECT start (the batch's length when none succeeded).
   */
  async #beforeAuth(frames: Frame[]): Promise<number> {
    for (let i = 0; i < frames.length && !this.#closed; i++) {
      const f = frames[i];
      if (this.#nonce === undefined) return i; // authenticated: the rest under its user's limits
      if (f.op === "CONNECT") await this.#authenticate(f);
      else if (f.op === "PING" || f.op === "PONG" || f.op === "INFO" || f.op === "ERR") {
        this.#handle(f);
      } else this.#replies.error("AUTH_REQUIRED", "authenticate with CONNECT first");
    }
    return frames.length;
  }

  async #authenticate(f: ConnectFrame): Promise<void> {
    // The attempt is being judged: its answer is the verdict, however long the failure delay.
    this.#authTimer?.cancel();
    const p = await this.#host.auth!.authenticate(f.options.auth ?? {}, {
      nonce: this.#nonce!,
      remoteAddr: this.remoteAddr,
      peerCertSubject: this.#conn.peerCertSubject,
    });
    if (this.#closed) return;
    if (p === undefined) return this.close(CloseReason.AUTH_FAILED, "authentication failed");
    this.#nonce = undefined;
    // Its permissions and limits apply from here; over its user's
    // `connections` limit the connection is closed instead (that is the reply).
    if (!this.setPrincipal(p)) return;
    this.lastActivity = this.#broker.tick(); // time went by while the credentials were checked
    this.#connect(f);
  }

  #info(): string {
    const info = this.#host.info();
    return this.#nonce === undefined ? info : `${info.slice(0, -1)},"nonce":"${this.#nonce}"}`;
  }

  /**
   * `--slow-consumer block`: this batch published to a topic with a stalled
   * subscriber, so reading stops (TCP back-pressure reaches the publisher)
   * until the subscriber drains to half its limits, or the broker's sweep
   * disconnects it after `--slow-consumer-block-ms`, or this connection closes.
   */
  async #pause(topic: { unblocked(): Promise<void> }): Promise<void> {
    this.#whenClosed ??= new Promise<void>((r) => this.#onClosed = r);
    await Promise.race([topic.unblocked(), this.#whenClosed]);
    this.lastActivity = this.#host.clock.now(); // not idle: held by the broker
  }

  /** Waits, reading the clock once per wait, until the publish bucket holds a token or the connection closes. */
  async #throttle(): Promise<void> {
    const bucket = this.#bucket;
    const clock = this.#host.clock;
    this.#whenClosed ??= new Promise<void>((r) => this.#onClosed = r);
    const counters = this.#host.authz;
    counters.publish_paused++;
    const from = this.#broker.now;
    for (let ms = bucket.waitMs(); ms > 0 && !this.#closed; ms = bucket.waitMs()) {
      let timer: Timer | undefined;
      await Promise.race([new Promise<void>((r) => timer = clock.after(ms, r)), this.#whenClosed]);
      timer?.cancel();
      bucket.refill(this.lastActivity = this.#broker.tick());
    }
    counters.publish_paused_ms += this.#broker.now - from;
  }

  // --- principal (set by authentication) ---

  /** Who it acts for; undefined while anonymous. */
  get principal(): Principal | undefined {
    return this.#principal;
  }

  /**
   * Makes the connection act for `p` (a successful `CONNECT`, or a reload
   * that replaced the user's entry) and applies its permissions and limits
   * at once. False when the user is at its `connections` limit (the
   * connection is then closed with `TOO_MANY_CONNECTIONS`, which is the
   * reply to the CONNECT: send no OK) or the connection has already closed.
   */
  setPrincipal(p: Principal): boolean {
    if (this.#closed) return false; // authentication may finish after the client went
    const prev = this.#principal;
    if (prev?.user !== p.user) {
      const max = this.#limitsOf(p.entry).connections;
      if (!this.#host.userConnections.acquire(p.user, max)) {
        this.close(
          CloseReason.TOO_MANY_CONNECTIONS,
          `user ${JSON.stringify(p.user)} is at its limit of ${max} connections`,
        );
        return false;
      }
      if (prev !== undefined) this.#host.userConnections.release(prev.user);
    }
    this.#principal = p;
    this.principalChanged();
    return true;
  }

  /**
   * Re-reads the principal's permissions and limits. Subscriptions the new
   * permissions no longer allow are ended (without a line on the wire: an
   * unasked ERR would be taken as the reply to the client's next command);
   * wildcard subscriptions re-decide their topics.
   */
  principalChanged(): void {
    const entry = this.#principal?.entry;
    const perms = entry === undefined ? undefined : permissionsOf(entry);
    this.#perms = perms;
    this.#pubAllowed = undefined;
    this.#grants = perms?.allowResponses && !perms.publishOpen
      ? this.#grants ?? new ResponseGrants()
      : undefined;
    const l = this.#limits = this.#limitsOf(entry);
    this.#parser.payloadBytesMax = l.maxPayload;
    this.#out.pendingBytesMax = l.pendingBytes;
    this.#bucket = new TokenBucket(l.publishRate, l.publishBurst, this.#broker.now);
    if (perms === undefined) return;
    for (const [sid, sub] of this.subs) {
      if (perms.maySubscribe(sub.destination)) sub.permissionsChanged();
      else {
        this.subs.delete(sid);
        sub.close(false);
      }
    }
  }

  /** A user's limits (undefined: anonymous) against this server's defaults. */
  #limitsOf(entry: UserEntry | undefined): Limits {
    return resolveLimits(entry?.limits, { maxPayload: this.#host.payloadBytesMax });
  }

  // --- Client (the broker's view) ---

  get lagBytesMax(): number | undefined {
    return this.#principal?.entry?.limits?.pending_bytes;
  }

  mayRead(topic: string): boolean {
    return this.#perms === undefined || this.#perms.may(Action.SUBSCRIBE, topic);
  }

  wantsMore(): boolean {
    return this.#out.wantsMore();
  }

  sendMsg(head: Uint8Array, msg: Message, delivery: number): void {
    this.msgsOut++;
    this.bytesOut += msg.len;
    this.#out.appendMsg(head, msg, delivery);
    if (this.#grants !== undefined) {
      const r = msg.replyTo;
      if (r !== undefined) this.#grants.grant(r, this.#broker.now);
    }
  }

  slowConsumer(detail: string): void {
    queueMicrotask(() => this.close(CloseReason.SLOW_CONSUMER, detail));
  }

  /** Remembers a message delivered without explicit acks (its ACK is then a no-op). */
  delivered(id: number): void {
    (this.#recent ??= new Float64Array(RECENT_UNACKED_IDS))[this.#recentPos] = id;
    this.#recentPos = (this.#recentPos + 1) % RECENT_UNACKED_IDS;
  }

  // --- frames ---

  #handle(f: Frame): void {
    switch (f.op) {
      case "PUB":
        return this.#pub(f);
      case "ACK":
        return this.#ack(f);
      case "SUB":
        return this.#sub(f);
      case "DECLARE":
        return this.#declare(f);
      case "BIND":
      case "UNBIND":
        return this.#bind(f);
      case "UNSUB": {
        const sub = this.subs.get(f.sid);
        if (sub === undefined) {
          return this.#replies.error("UNKNOWN_SUB_ID", `no subscription ${JSON.stringify(f.sid)}`);
        }
        if (f.forget && !sub.durable) {
          return this.#replies.error(
            "BAD_ARGUMENT",
            `${JSON.stringify(f.sid)} is not durable: no forget`,
          );
        }
        if (f.forget && !this.#may(Action.ADMIN, sub.destination)) return;
        this.subs.delete(f.sid);
        sub.close(f.forget === true);
        return this.#replies.ok();
      }
      case "NACK":
        return this.#nack(f);
      case "PING":
        return this.#replies.bytes(PONG);
      case "PONG":
        return;
      case "INFO":
        return this.#replies.ascii(`INFO ${this.#info()}\r\n`);
      case "CONNECT":
        return this.#connect(f);
      case "ERR":
        this.#replies.error(f.code, f.message);
        if (f.fatal) this.close(closeReasonOf(f.code), f.message);
        return;
    }
  }

  #connect(f: ConnectFrame): void {
    this.clientId = f.options.clientId;
    this.name = f.options.name;
    this.#replies.verbose = f.options.verbose;
    this.#replies.ok();
  }

  #pub(f: PubFrame): void {
    // The parser checks the limit in force when it read the header; a PUB
    // read in the same chunk as the CONNECT was read under the server's, not
    // its user's: checked again here (one compare).
    if (f.len > this.#limits.maxPayload) {
      const why = `payload of ${f.len} bytes is over ${this.#limits.maxPayload}`;
      return this.close(CloseReason.PAYLOAD_TOO_LARGE, why, "PAYLOAD_TOO_LARGE");
    }
    this.msgsIn++;
    this.bytesIn += f.len;
    this.#bucket.tokens--;
    const perms = this.#perms;
    if (perms !== undefined && f.dest !== this.#pubAllowed) {
      if (perms.may(Action.PUBLISH, f.dest)) this.#pubAllowed = f.dest;
      else if (this.#grants?.take(f.dest, this.#broker.now) !== true) return this.#denied(f.dest);
    }
    // A reply_to is where a service with allow_responses will publish, past
    // its own publish rules: only a destination the requester may read, or
    // any requester could make a service write into any queue or topic.
    const replyTo = f.options?.replyTo;
    if (replyTo !== undefined && perms !== undefined && !perms.maySubscribe(replyTo)) {
      return this.#denied(replyTo);
    }
    let r: number | Promise<number>;
    try {
      r = this.#broker.publishFrom(f.dest, f.buf, f.off, f.len, f.options);
    } catch (e) {
      return this.#replies.brokerError(e);
    }
    this.#replies.published(r, this.#broker.duplicate);
  }

  #sub(f: SubFrame): void {
    if (this.#perms !== undefined && !this.#perms.maySubscribe(f.dest)) {
      return this.#denied(f.dest);
    }
    if (this.subs.size >= this.#limits.subscriptions) {
      return this.#replies.error(
        "LIMIT",
        `at most ${this.#limits.subscriptions} subscriptions per connection`,
      );
    }
    let sid = f.options.sid;
    const chosen = sid === undefined;
    if (sid === undefined) {
      do sid = String(this.#nextSid++); while (this.subs.has(sid));
    } else if (this.subs.has(sid)) {
      return this.#replies.error(
        "DUPLICATE_SUB_ID",
        `sub_id ${JSON.stringify(sid)} is in use on this connection`,
      );
    }
    // A durable is its user's: under a users-file user its name is kept as
    // `<user>/<name>` (a name of the wire has no `/`, so none can reach
    // another user's), or any reader of the topic could take over another
    // user's durable while it is away, and its backlog with it.
    const user = this.#principal?.entry?.user;
    const durable = f.options.durable;
    const options = user === undefined || durable === undefined
      ? f.options
      : { ...f.options, durable: `${user}/${durable}` };
    let sub: Subscription;
    try {
      sub = this.#broker.subscribe(this, f.dest, sid, options);
    } catch (e) {
      return this.#replies.brokerError(e);
    }
    this.subs.set(sid, sub);
    if (chosen) this.#replies.ascii(`OK sub_id:${sid}\r\n`);
    else this.#replies.ok();
    sub.activate();
  }

  /**
   * BIND/UNBIND: answered once the bindings record is stored, as a DECLARE is.
   * A binding is the queue's configuration (`admin` on the queue) and copies
   * every message of the topics it matches, so its user must be allowed to
   * read all of them (`subscribe` on every topic of the pattern), or it would
   * move messages the user may not read into a queue it may consume.
   */
  #bind(f: BindFrame | UnbindFrame): void {
    if (!this.#may(Action.ADMIN, f.queue)) return;
    if (this.#perms !== undefined && !this.#perms.mayAll(Action.SUBSCRIBE, f.pattern)) {
      return this.#denied(f.pattern);
    }
    let stored: Promise<void>;
    try {
      stored = f.op === "BIND"
        ? this.#broker.bind(f.pattern, f.queue, f.filter)
        : this.#broker.unbind(f.pattern, f.queue);
    } catch (e) {
      return this.#replies.brokerError(e);
    }
    this.#replies.okWhen(stored, undefined);
  }

  #declare(f: DeclareFrame): void {
    if (!this.#may(Action.ADMIN, f.dest)) return;
    let stored: Promise<void>;
    try {
      stored = f.queue === undefined
        ? this.#broker.declare(f.dest, f.options)
        : this.#broker.declareQueue(f.dest, f.queue);
    } catch (e) {
      return this.#replies.brokerError(e);
    }
    this.#replies.okWhen(stored, undefined);
  }

  /** Whether its user may do `action` to `dest`; if not, answers `ERR PERMISSION_DENIED`. */
  #may(action: Action, dest: string): boolean {
    if (this.#perms === undefined || this.#perms.may(action, dest)) return true;
    this.#denied(dest);
    return false;
  }

  #denied(dest: string): void {
    this.#host.authz.permission_denied++;
    this.#replies.error("PERMISSION_DENIED", dest);
  }

  /**
   * Replies first, then settles: a message the settlement frees up (prefetch
   * room, a NACK requeue) comes after the reply to the command that freed it.
   * Two exceptions, where the reply waits and the messages it frees may come
   * first: an ACK to a durable subscription is answered once its position is
   * stored, and under a store that `waitsForSync` (`--fsync always`) an ACK
   * or NACK is settled first, so that its REMOVE/REQUEUE records are in this
   * tick's batch, and answered once `Store.synced()` says they are on the
   * device (one promise per ACK line, shared by the tick's fsync).
   */
  #ack(f: AckFrame): void {
    const acked = this.#acked;
    let unknown: number[] | undefined;
    let durable = false;
    for (const id of f.ids) {
      const d = this.inflight.take(id);
      if (d !== undefined) {
        acked.push(d);
        if (d.sub.durable) durable = true;
      } else if (!this.#recent?.includes(id)) (unknown ??= []).push(id);
    }
    const err = unknown === undefined ? undefined : errFrame(
      "UNKNOWN_MSG_ID",
      `msg_id:${unknown.join(" msg_id:")} not in flight on this connection`,
    );
    const store = this.#broker.options.store;
    if (acked.length > 0 && store.waitsForSync) {
      for (let i = 0; i < acked.length; i++) acked[i].sub.ack(acked[i]);
      acked.length = 0;
      const synced = store.synced();
      const saved = durable ? this.#broker.stateSaved() : undefined;
      const both = saved === undefined || synced === undefined
        ? saved ?? synced
        : Promise.all([saved, synced]).then(() => {});
      return this.#replies.okAfter(both, err);
    }
    if (durable) this.#replies.okWhen(this.#broker.stateSaved(), err);
    else this.#replies.okAfter(undefined, err);
    for (let i = 0; i < acked.length; i++) acked[i].sub.ack(acked[i]);
    acked.length = 0;
  }

  #nack(f: NackFrame): void {
    const d = this.inflight.take(f.id);
    if (d === undefined) {
      const why = this.#recent?.includes(f.id) ? " (delivered without explicit acks)" : "";
      return this.#replies.error(
        "UNKNOWN_MSG_ID",
        `msg_id:${f.id} not in flight on this connection${why}`,
      );
    }
    // Under `always` the REQUEUE is waited for too: it carries the NACK delay,
    // which a restart keeps, and past max_deliveries the dead-lettering.
    const store = this.#broker.options.store;
    if (!store.waitsForSync) {
      this.#replies.ok();
      return d.sub.nack(d, f.delayMs);
    }
    d.sub.nack(d, f.delayMs);
    this.#replies.okAfter(store.synced(), undefined);
  }

  /** The socket drained: held topic messages and queue deliveries flow again. */
  #resume(): void {
    if (this.#closed) return;
    this.#broker.tick();
    for (const sub of this.subs.values()) sub.activate();
  }

  /** Sends a server PING (idle check); the caller counts it. */
  ping(): void {
    this.pingsOut++;
    this.#out.append(PING);
  }

  /**
   * The one close path: sends the error line for reasons that have one, gives
   * unacked messages back, flushes what is pending (bounded), closes the socket.
   */
  close(reason: CloseReason, detail: string, code?: ErrorCode): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#authTimer?.cancel();
    if (this.#principal !== undefined) this.#host.userConnections.release(this.#principal.user);
    const errCode = code ?? closeCode(reason);
    if (errCode !== undefined) this.#out.append(errFrame(errCode, detail));
    for (const sub of this.subs.values()) sub.close(false);
    this.subs.clear();
    this.#onClosed?.();
    this.#host.closed(this, reason, detail);
    this.#finish();
  }

  /** Its figures for the admin API; `subs`: with its subscriptions. */
  stats(now: number, subs: boolean): ConnectionStats {
    return {
      id: this.id,
      client_id: this.clientId ?? null,
      name: this.name ?? null,
      user: this.principal?.user ?? null,
      tls: this.#conn.secure === true,
      remote_addr: this.remoteAddr,
      transport: this.#conn.transport ?? "tcp",
      opened_at: new Date(this.openedAt).toISOString(),
      uptime_s: (now - this.openedAt) / 1000,
      idle_s: Math.max(0, (now - this.lastActivity) / 1000),
      pending_bytes: this.pendingBytes,
      in_msgs: this.msgsIn,
      in_bytes: this.bytesIn,
      out_msgs: this.msgsOut,
      out_bytes: this.bytesOut,
      subscriptions: subs ? [...this.subs.values()].map((s) => s.stats()) : [],
    };
  }

  async #finish(): Promise<void> {
    let grace: Timer | undefined;
    await Promise.race([
      this.#out.idle(),
      new Promise<void>((r) => grace = this.#host.clock.after(CLOSE_FLUSH_MS, r)),
    ]);
    grace?.cancel();
    this.#out.kill();
    try {
      await this.#reader?.cancel();
    } catch { /* the stream already failed */ }
    this.#conn.close();
  }
}

function closeCode(reason: CloseReason): ErrorCode | undefined {
  switch (reason) {
    case CloseReason.SLOW_CONSUMER:
      return "SLOW_CONSUMER";
    case CloseReason.STALE_CONNECTION:
      return "STALE_CONNECTION";
    case CloseReason.TOO_MANY_CONNECTIONS:
      return "TOO_MANY_CONNECTIONS";
    case CloseReason.SERVER_SHUTDOWN:
      return "SHUTTING_DOWN";
    case CloseReason.AUTH_FAILED:
    case CloseReason.AUTH_TIMEOUT:
    case CloseReason.AUTH_REVOKED:
      return reason;
    case CloseReason.ADMIN_CLOSED:
      return "ADMIN_CLOSED";
    default:
      return undefined;
  }
}
