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
  type Principal,
  type UserConnections,
} from "../auth/mod.ts";
import { type Broker, type Client, InFlight, type Subscription } from "../broker/mod.ts";
import { CLOSE_FLUSH_MS } from "../config/mod.ts";
import {
  type ConnectFrame,
  errFrame,
  type ErrorCode,
  type Frame,
  type MsgRun,
  Parser,
  PING,
  PONG,
  type PubFrame,
  type PubRun,
} from "../protocol/mod.ts";
import { type Clock, type Conn, readChunk, type Timer } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import { Access } from "./access.ts";
import { AuthGate } from "./auth_gate.ts";
import { closeCode, CloseReason, closeReasonOf } from "./close_reason.ts";
import { Outbound, type OutboundEvents } from "./outbound.ts";
import { Pauses } from "./pauses.ts";
import { Replies } from "./replies.ts";
import type { QueueRouter, Routing } from "./routing.ts";
import { Settlement } from "./settle.ts";
import { bind, CommandContext, declare, Subscribing } from "./commands.ts";
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
  /** Cluster mode: where queue commands go (their leader); undefined on a single node. */
  readonly routing?: Routing;
}

/** One client connection. */
export class Connection implements Client, OutboundEvents {
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
  readonly inflight: InFlight = new InFlight(this.subs);
  #conn: Conn;
  #host: ConnectionHost;
  #broker: Broker;
  #out: Outbound;
  /** Replies in command order, held behind any that wait for the store. */
  #replies: Replies;
  /** ACK/NACK, and the ids delivered without explicit acks. */
  #settle: Settlement;
  /** What the command handlers of commands.ts work with. */
  #cmd: CommandContext;
  /** SUB/UNSUB over `subs`. */
  #subscribing: Subscribing;
  /** Cluster mode: sends queue commands to their leader; undefined on a single node. */
  #router: QueueRouter | undefined = undefined;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #closed = false;
  /**
   * Reading stops over the publish rate (until the bucket has a token) or
   * after a publish to a topic with a stalled subscriber under
   * `--slow-consumer block` (until it drains, or the sweep disconnects it
   * after `--slow-consumer-block-ms`); either ends when the connection closes.
   */
  #pauses: Pauses;
  /** Until a CONNECT succeeds (auth on only); undefined once open, or with auth off. */
  #gate: AuthGate | undefined = undefined;
  #parser: Parser;
  /** Who it acts for, once authenticated; undefined: anonymous (auth off, or not yet). */
  #principal: Principal | undefined = undefined;
  /** Its user's permissions, limits and publish bucket. */
  #access: Access;
  /** A cluster node's trusted proxy connection (`proxyFrom`). */
  readonly #proxy: boolean;

  /**
   * `proxyFrom`: a trusted proxy connection from that cluster node (the
   * cluster port's `PROXY <node-id>`): no authentication, every permission
   * (the origin node checked them); it only runs what this node leads.
   */
  constructor(id: number, conn: Conn, host: ConnectionHost, proxyFrom?: string) {
    this.id = id;
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.#host = host;
    this.#broker = host.broker;
    this.openedAt = this.lastActivity = host.clock.now();
    this.#out = new Outbound(conn, this);
    this.#replies = new Replies(this.#out);
    this.#settle = new Settlement(this.inflight, this.#replies, this.#broker, this.subs);
    if (host.auth !== undefined && proxyFrom === undefined) this.#gate = this.#makeGate(host.auth);
    this.#access = new Access(host.payloadBytesMax, this.openedAt);
    this.#pauses = new Pauses(host.clock, this.#broker, host.authz);
    this.#cmd = new CommandContext(this.#broker, this.#replies, this.#access, host.authz);
    this.#subscribing = new Subscribing(this.#cmd, this, this.subs);
    this.#proxy = proxyFrom !== undefined;
    if (proxyFrom !== undefined) this.name = `proxy:${proxyFrom}`;
    if (host.routing !== undefined) {
      this.#cmd.router = this.#router = host.routing.open({
        id,
        client: this,
        broker: this.#broker,
        replies: this.#replies,
        inflight: this.inflight,
        subs: this.subs,
        isClosed: () => this.#closed,
        mayClaim: (f) =>
          f.op === "PUB"
            ? this.#access.mightPublish(f.dest)
            : f.op === "SUB"
            ? this.#access.maySubscribe(f.dest)
            : this.#access.may(Action.ADMIN, f.dest),
      }, proxyFrom);
    }
    // Runs of PUBs from `CONNECT {"verbose":false}` on (see `#runs`).
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
    const router = this.#router;
    this.#gate?.greet(this.#host.info());
    /** The last chunk, once nothing points into it: the runtime may read into it again. */
    let free: Uint8Array | undefined;
    for (;;) {
      let chunk: Uint8Array | null | undefined;
      try {
        chunk = await readChunk(conn, reader, free);
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
        this.#access.bucket.refill(now);
        // One check per batch: until the CONNECT succeeds, frames go through
        // the gate; those behind a successful one are handled as any others.
        this.#broker.takePinned();
        let awaited = false;
        let from = 0;
        if (this.#gate !== undefined) {
          from = await this.#gate.filter(frames);
          if (this.#gate.open) {
            this.#gate = undefined;
            this.#runs();
          }
          awaited = true;
        }
        for (let i = from; i < frames.length && !this.#closed; i++) {
          const f = frames[i];
          if (f.op === "PUBS") {
            if (this.#pubs(f)) continue;
            expandRuns(frames, i); // one at a time, as if read one by one
          }
          // Over its publish rate: reading stops (TCP back-pressure reaches
          // the client) until the bucket has a token again; nothing is dropped.
          if (this.#access.bucket.tokens < 1 && frames[i].op === "PUB") {
            await this.#pauses.throttle(this.#access.bucket, this);
            awaited = true;
          }
          // A queue nobody leads yet is claimed first (once per queue): the
          // frames behind it wait, so replies keep the order of the commands.
          if (router !== undefined) {
            const claim = router.ready(frames[i]);
            if (claim !== undefined) {
              await claim;
              awaited = true;
            }
          }
          if (!this.#closed) this.#handle(frames[i]);
        }
        frames.length = 0; // a connection idle after this batch keeps none of its frames
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
      if (blocked !== undefined) {
        await this.#pauses.blocked(blocked);
        this.lastActivity = this.#host.clock.now(); // not idle: held by the broker
      }
    }
    this.close(CloseReason.CLIENT_CLOSED, "");
  }

  #makeGate(auth: Authenticator): AuthGate {
    return new AuthGate({
      auth,
      clock: this.#host.clock,
      timeoutMs: this.#host.authTimeoutMs,
      replies: this.#replies,
      remoteAddr: this.remoteAddr,
      peerCertSubject: this.#conn.peerCertSubject,
      isClosed: () => this.#closed,
      handle: (f) => this.#handle(f),
      close: (reason, detail) => this.close(reason, detail),
      authenticated: (p, f) => {
        // Its permissions and limits apply from here; over its user's
        // `connections` limit the connection is closed instead (that is the reply).
        if (!this.setPrincipal(p)) return;
        this.lastActivity = this.#broker.tick(); // time went by while the credentials were checked
        this.#connect(f);
      },
    });
  }

  #info(): string {
    const info = this.#host.info();
    return this.#gate === undefined ? info : this.#gate.info(info);
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
      const max = this.#access.limitsOf(p.entry).connections;
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
    const access = this.#access;
    access.apply(this.#principal?.entry, this.#broker.now);
    const l = access.limits;
    this.#parser.payloadBytesMax = l.maxPayload;
    this.#out.pendingBytesMax = l.pendingBytes;
    const perms = access.perms;
    if (perms === undefined) return;
    for (const [sid, sub] of this.subs) {
      if (perms.maySubscribe(sub.destination)) sub.permissionsChanged();
      else {
        this.subs.delete(sid);
        sub.close(false);
      }
    }
  }

  // --- Client (the broker's view) ---

  get lagBytesMax(): number | undefined {
    return this.#principal?.entry?.limits?.pending_bytes;
  }

  mayRead(topic: string): boolean {
    return this.#access.may(Action.SUBSCRIBE, topic);
  }

  wantsMore(): boolean {
    return this.#out.wantsMore();
  }

  sendMsg(head: Uint8Array, msg: Message, delivery: number): void {
    this.msgsOut++;
    this.bytesOut += msg.len;
    this.#out.appendMsg(head, msg, delivery);
    const grants = this.#access.grants;
    if (grants !== undefined) {
      const r = msg.replyTo;
      if (r !== undefined) grants.grant(r, this.#broker.now);
    }
  }

  roomFor(bytes: number): boolean {
    return this.#out.roomFor(bytes);
  }

  sendRun(head: Uint8Array, run: MsgRun, bytes: number): void {
    this.msgsOut += run.count;
    this.bytesOut += run.payloadBytes;
    this.#out.appendRun(head, run, bytes);
    this.#settle.deliveredRun(run.firstId, run.count);
  }

  slowConsumer(detail: string): void {
    queueMicrotask(() => this.close(CloseReason.SLOW_CONSUMER, detail));
  }

  leaderChanged(detail: string): void {
    queueMicrotask(() => this.close(CloseReason.LEADER_CHANGED, detail));
  }

  /** Remembers a message delivered without explicit acks (its ACK is then a no-op). */
  delivered(id: number): void {
    this.#settle.delivered(id);
  }

  // --- frames ---

  #handle(f: Frame): void {
    switch (f.op) {
      case "PUB":
        return this.#pub(f);
      case "ACK":
        return this.#settle.ack(f);
      case "SUB":
        return this.#subscribing.sub(f, this.#principal?.entry?.user, this.#proxy);
      case "DECLARE":
        return declare(this.#cmd, f);
      case "BIND":
      case "UNBIND":
        return bind(this.#cmd, f);
      case "UNSUB":
        return this.#subscribing.unsub(f);
      case "NACK":
        return this.#settle.nack(f);
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
    this.#runs();
    this.#replies.ok();
  }

  /**
   * Whether the parser hands repeated PUBs out as runs (`#pubs`): not while
   * each PUB is answered with its id (`verbose`, the default), before the
   * gate opens, or with a router (both take frames one at a time).
   */
  #runs(): void {
    this.#parser.runs = !this.#replies.verbose && this.#gate === undefined &&
      this.#router === undefined;
  }

  #pub(f: PubFrame): void {
    // The parser checks the limit in force when it read the header; a PUB
    // read in the same chunk as the CONNECT was read under the server's, not
    // its user's: checked again here (one compare).
    const access = this.#access;
    if (f.len > access.limits.maxPayload) {
      const why = `payload of ${f.len} bytes is over ${access.limits.maxPayload}`;
      return this.close(CloseReason.PAYLOAD_TOO_LARGE, why, "PAYLOAD_TOO_LARGE");
    }
    this.msgsIn++;
    this.bytesIn += f.len;
    access.bucket.tokens--;
    if (access.perms !== undefined && !access.mayPublish(f.dest, this.#broker.now)) {
      return this.#cmd.denied(f.dest);
    }
    // A reply_to is where a service with allow_responses will publish, past
    // its own publish rules: only a destination the requester may read, or
    // any requester could make a service write into any queue or topic.
    const replyTo = f.options?.replyTo;
    if (replyTo !== undefined && !access.maySubscribe(replyTo)) {
      return this.#cmd.denied(replyTo);
    }
    if (this.#router?.pub(f) === true) return; // forwarded to the queue's leader
    let r: number | Promise<number>;
    try {
      r = this.#broker.publishDeferred(f.dest, f.buf, f.off, f.len, f.options);
    } catch (e) {
      return this.#replies.brokerError(e);
    }
    const durable = this.#broker.durable;
    if (durable !== undefined) this.#replies.publishedWhen(durable, r as number);
    else this.#replies.published(r, this.#broker.duplicate);
  }

  /**
   * A run of PUBs to one destination, published as one when nothing about
   * them needs a message at a time: no OK per message (`verbose`), within
   * the payload limit and the publish rate, its user allowed to publish there
   * by its own rules (not a reply-to grant, which a message uses up), and
   * the broker able to take them together. False: nothing done, the caller
   * handles them one by one.
   */
  #pubs(run: PubRun): boolean {
    const access = this.#access;
    const count = run.count;
    const perms = access.perms;
    if (
      this.#replies.verbose || run.lenMax > access.limits.maxPayload ||
      access.bucket.tokens < count || (perms !== undefined && !perms.may(Action.PUBLISH, run.dest))
    ) {
      return false;
    }
    if (!this.#broker.publishRun(run.dest, run.buf, run.offs, run.from, run.to)) return false;
    this.msgsIn += count;
    this.bytesIn += run.bytes;
    access.bucket.tokens -= count;
    return true;
  }

  // Its writer's events (`OutboundEvents`): the connection is its writer's
  // listener itself, so that it makes no closures for them.

  /** The socket drained: held topic messages and queue deliveries flow again. */
  onDrain(): void {
    if (this.#closed) return;
    this.#broker.tick();
    for (const sub of this.subs.values()) sub.activate();
  }

  /** The client is not reading: closed once the current handler is done. */
  onOverflow(): void {
    queueMicrotask(() =>
      this.close(
        CloseReason.SLOW_CONSUMER,
        "outbound buffer over its limit: the client is not reading",
      )
    );
  }

  /** A write failed: the socket is gone. */
  onWriteError(err: unknown): void {
    this.close(CloseReason.WRITE_ERROR, String(err));
  }

  /** Before the writer writes: the store's pending appends go first. */
  beforeWrite(): void {
    this.#broker.options.store.writePending();
  }

  /** Sends a server PING (idle check); the caller counts it. */
  ping(): void {
    this.pingsOut++;
    this.#out.trim(); // idle for a ping interval: its buffers go back, the PING gets a small one
    this.#parser.trim();
    this.inflight.trim();
    this.#out.append(PING);
  }

  /**
   * The one close path: sends the error line for reasons that have one, gives
   * unacked messages back, flushes what is pending (bounded), closes the socket.
   */
  close(reason: CloseReason, detail: string, code?: ErrorCode): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#gate?.cancel();
    if (this.#principal !== undefined) this.#host.userConnections.release(this.#principal.user);
    const errCode = code ?? closeCode(reason);
    if (errCode !== undefined) this.#out.append(errFrame(errCode, detail));
    for (const sub of this.subs.values()) sub.close(false);
    this.subs.clear();
    this.#router?.close();
    this.#pauses.closed();
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
    // Most closes have nothing left to write: no grace timer for them (a storm closes thousands).
    if (this.#out.pending !== 0) {
      let grace: Timer | undefined;
      await Promise.race([
        this.#out.idle(),
        new Promise<void>((r) => grace = this.#host.clock.after(CLOSE_FLUSH_MS, r)),
      ]);
      grace?.cancel();
    }
    this.#out.kill();
    try {
      await this.#reader?.cancel();
    } catch { /* the stream already failed */ }
    this.#conn.close();
  }
}

/**
 * Replaces every run from `frames[i]` on by its single PUBs, in one pass: a
 * run refused for a reason (rate, permissions, a full queue) mostly means
 * the batch's later runs would be too, and expanding each on its own would
 * copy the rest of the batch once per run.
 */
function expandRuns(frames: Frame[], i: number): void {
  const rest = frames.slice(i);
  frames.length = i;
  for (let k = 0; k < rest.length; k++) {
    const f = rest[k];
    if (f.op !== "PUBS") frames.push(f);
    else for (const single of f.frames()) frames.push(single);
  }
}
