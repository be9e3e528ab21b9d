/**
 * The publish side of the gRPC listener: the Publish and Request calls and
 * the PublishStream streams (publish_stream.ts). Each publish goes through
 * the broker as a PUB on TCP does: checked (validate.ts), authorized,
 * counted, and held to its user's `publish_rate` (limits.ts).
 *
 * @module
 */
import type { ServerDuplexStream, ServerUnaryCall } from "@grpc/grpc-js";
import { Action } from "../auth/mod.ts";
import type { DeclareFrame, PubFrame, RetentionOptions } from "../protocol/mod.ts";
import { type Answers, CloseReason, PublishRoute } from "../server/mod.ts";
import { authorize, type Principal } from "./auth.ts";
import type { CallGate } from "./calls.ts";
import { type GrpcError, grpcError, type GrpcErrorCode, GrpcRefusal } from "./errors.ts";
import type { Front, Verdict } from "./front.ts";
import type { Inbox } from "./inbox.ts";
import { untilToken, type UserState } from "./limits.ts";
import { type PublishRequest, type PublishView, viewOf } from "./publish_codec.ts";
import { type BatchAnswers, PublishStream } from "./publish_stream.ts";
import { UnaryAnswer } from "./routed.ts";
import { checkPublish, requestTimeout } from "./validate.ts";

/** A topic a publish found blocked by a stalled subscriber (`--slow-consumer block`). */
type Blocked = { unblocked(): Promise<void> };

/** The listener's publish calls and streams. */
export class Publishing {
  /** Open PublishStream streams, by call. */
  readonly streams = new Map<ServerDuplexStream<unknown, unknown>, PublishStream>();
  /** Messages published through gRPC, and their payload bytes. */
  msgsIn = 0;
  bytesIn = 0;
  #front: Front;
  #gate: CallGate;
  /** Where Requests wait for their reply. */
  #inbox: Inbox;
  /** A topic the last publish found blocked (`--slow-consumer block`), until its caller takes it. */
  #blocked: Blocked | undefined;
  /** Cluster mode: where publishes to queues led by other nodes go (routed.ts). */
  #route: PublishRoute | undefined;

  constructor(front: Front, gate: CallGate, inbox: Inbox) {
    this.#front = front;
    this.#gate = gate;
    this.#inbox = inbox;
    const routing = front.options.routing;
    this.#route = routing && new PublishRoute(routing, front.broker, front.nextId());
  }

  /** The Publish call. */
  async publish(
    p: Principal,
    r: PublishRequest,
    call: ServerUnaryCall<unknown, unknown>,
  ): Promise<{ msg_id: string }> {
    const u = await this.#token(p, call);
    const b = this.#front.broker;
    b.tick();
    const m = this.#check(p, viewOf(r), u, false);
    // A queue nobody leads is claimed first (refused ones never get here), as on TCP.
    const claim = this.#route?.ready(m);
    if (claim !== undefined) {
      await claim;
      b.tick();
    }
    // (Any destination: a declared topic's publishes go to its leader too.)
    const to = this.#route === undefined ? undefined : new UnaryAnswer(refusal);
    const id = this.#send(m, to, 0) ?? to!.promise;
    const blocked = this.#takeBlocked();
    const msgId = await id;
    if (blocked !== undefined) await blocked.unblocked();
    return { msg_id: String(msgId) };
  }

  /**
   * The Declare call's declaration of topic `dest` (authorized before): in a
   * cluster through the router, to the topic's leader, as a TCP `DECLARE`
   * goes; else by this broker.
   */
  async declare(dest: string, options: RetentionOptions): Promise<void> {
    const route = this.#route;
    const b = this.#front.broker;
    if (route === undefined) return b.declare(dest, options);
    const f: DeclareFrame = { op: "DECLARE", dest, options };
    const claim = route.ready(f);
    if (claim !== undefined) await claim;
    b.tick();
    const to = new UnaryAnswer(refusal);
    if (!route.declare(f, to, 0)) return b.declare(dest, options);
    await to.promise;
  }

  /** The Request call: a publish with the listener's inbox as its reply_to, answered by the reply. */
  async request(
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
        this.#front.broker.tick();
        const failed: Answers = {
          answer: (_i, code, text) => {
            if (code !== undefined) (w.cancel(), reject(refusal(code, text)));
          },
        };
        const id = this.#send(this.#check(p, v, u, true), failed, 0);
        this.#takeBlocked();
        if (id instanceof Promise) id.catch((e) => (w.cancel(), reject(e)));
      } catch (e) {
        w.cancel();
        reject(e);
      }
    });
  }

  /** Serves an authenticated, admitted PublishStream call (publish_stream.ts). */
  stream(call: ServerDuplexStream<unknown, unknown>, p: Principal): void {
    const front = this.#front;
    const b = front.broker;
    const ps = new PublishStream(call, {
      tick: () => b.tick(),
      userOf: (p) => front.users.of(p, b.now),
      waitToken: (u, gone, ended) => this.#waitToken(u, gone, ended),
      publishOne: (p, v, u, to, i) => this.#send(this.#check(p, v, u, false), to, i),
      takeBlocked: () => this.#takeBlocked(),
      refused: (e) => this.#gate.fail("PublishStream", e),
      ended: (call) => {
        if (!this.streams.delete(call)) return;
        front.countClose(front.stopping ? CloseReason.SERVER_SHUTDOWN : CloseReason.CLIENT_CLOSED);
      },
    }, p);
    this.streams.set(call, ps);
  }

  /**
   * Ends every stream with the status `err()` (the listener is stopping);
   * the proxy connections to leaders close (a publish still waiting on one
   * is answered UNAVAILABLE: its outcome is unknown).
   */
  failAll(err: () => GrpcError): void {
    for (const ps of this.streams.values()) ps.fail(err());
    this.#route?.close();
  }

  /** Applies a reload's verdict to the open streams: a revoked user's end (AUTH_REVOKED). */
  review(verdict: Verdict, why: (p: Principal) => string): void {
    for (const [call, ps] of [...this.streams]) {
      const v = verdict(ps.principal);
      if (v === null) {
        this.streams.delete(call);
        this.#front.countClose(CloseReason.AUTH_REVOKED);
        ps.fail(grpcError("AUTH_REVOKED", why(ps.principal)));
      } else if (v !== undefined) ps.principal = v;
    }
  }

  /**
   * A publish checked, authorized and counted, as a PUB on TCP (throws
   * `GrpcRefusal`): on this node, before anything is forwarded or claimed.
   */
  #check(p: Principal, v: PublishView, u: UserState | undefined, inbox: boolean): PubFrame {
    const front = this.#front;
    const m = checkPublish(v, u?.limits.maxPayload ?? front.options.payloadBytesMax);
    const perms = p.perms;
    if (perms !== undefined && !perms.may(Action.PUBLISH, m.dest)) {
      // allow_responses: a reply to a request this user received on a Subscribe stream.
      if (u?.grants?.take(m.dest, front.broker.now) !== true) authorize(p, "publish", m.dest);
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
    return m;
  }

  /**
   * A checked publish through the broker, or (cluster mode, `to` given) to
   * the leader of its queue or declared topic when another node leads it:
   * undefined then, and `to.answer(i, ...)` gets the outcome. A queue nobody
   * leads yet is published here: the store holds it while this node claims
   * the queue (a declared topic is refused then: `PublishRoute.pubNow`). A
   * publish that found a topic blocked by a stalled subscriber
   * (`--slow-consumer block`) hands back the wait: the broker's flag is
   * always taken here, so that it never leaks to a TCP connection.
   */
  #send(
    m: PubFrame,
    to: Answers | BatchAnswers | undefined,
    i: number,
  ): number | Promise<number> | undefined {
    const front = this.#front;
    const route = this.#route;
    if (to !== undefined && route !== undefined && route.pubNow(m, to, i)) return undefined;
    const b = front.broker;
    try {
      if (to === undefined || !("stored" in to)) {
        return b.publishFrom(m.dest, m.buf, m.off, m.len, m.options);
      }
      // A stream's publish that waits for its store: the batch waits once per store promise
      // (one per queue per tick), not once per message.
      const r = b.publishDeferred(m.dest, m.buf, m.off, m.len, m.options);
      const durable = b.durable;
      if (durable === undefined || typeof r !== "number") return r;
      to.stored(i, r, durable);
      return undefined;
    } finally {
      const blocked = front.broker.takeBlocked();
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
    const b = this.#front.broker;
    const u = this.#front.users.of(p, b.tick());
    if (u === undefined || !u.bucket.limited) return u;
    u.bucket.refill(b.now);
    if (u.bucket.tokens >= 1) return u;
    await this.#waitToken(u, () => call.cancelled, new Promise((r) => call.once("cancelled", r)));
    if (call.cancelled) throw new GrpcRefusal("TIMEOUT", "the call ended waiting for publish_rate");
    return u;
  }

  #waitToken(u: UserState, gone: () => boolean, ended: Promise<void>): Promise<void> {
    const front = this.#front;
    const b = front.broker;
    return untilToken(
      u.bucket,
      b.clock,
      () => b.tick(),
      () => gone() || front.stopping,
      ended,
      front.options.authz,
    );
  }

  #takeBlocked(): Blocked | undefined {
    const b = this.#blocked;
    this.#blocked = undefined;
    return b;
  }
}

/** A leader's `ERR` (or a refusal on the way) as the call's error. */
function refusal(code: GrpcErrorCode, text: string): GrpcRefusal {
  return new GrpcRefusal(code, text);
}
