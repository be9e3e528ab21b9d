/**
 * The subscribe side of the gRPC listener: the Subscribe streams (each a
 * `GrpcSubscriber`, subscriber.ts) and the Unsubscribe call. A stream's first
 * request opens its subscription, later ones settle or unsubscribe; every
 * end of the stream goes through the subscriber's one close path and is
 * counted here.
 *
 * @module
 */
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { Broker } from "../broker/mod.ts";
import type { SubFrame, SubOptions } from "../protocol/mod.ts";
import { type Answers, CloseReason, type Routing, userDurable } from "../server/mod.ts";
import { authorize, type Principal } from "./auth.ts";
import type { CallGate } from "./calls.ts";
import { codeOf, type GrpcError, grpcError, GrpcRefusal } from "./errors.ts";
import { CLIENT_ID_BASE, type Front, type Verdict } from "./front.ts";
import type { UserState } from "./limits.ts";
import { routeSubscriber } from "./routed.ts";
import { GrpcSubscriber, type SettleRequest, type SubscriberHost } from "./subscriber.ts";
import { msgId, nackDelay, type SubscribeOpen, toSubscribe } from "./validate.ts";

/** A SubscribeRequest as proto-loader decodes it (`oneofs: true` names the set field). */
interface SubscribeRequestObject {
  kind?: "open" | "settle" | "unsubscribe";
  open?: SubscribeOpen;
  settle?: SettleRequest;
  unsubscribe?: { forget: boolean };
}

/** The listener's Subscribe streams. */
export class Subscribing implements SubscriberHost {
  /** Open Subscribe streams, opened or not yet (each counts against `GRPC_STREAMS_MAX`). */
  readonly streams = new Set<GrpcSubscriber>();
  /** Opened subscriptions by sub_id (for Unsubscribe). */
  readonly bySid = new Map<string, GrpcSubscriber>();
  /** Messages and bytes sent by subscribers that have closed (live ones count their own). */
  closedMsgsOut = 0;
  closedBytesOut = 0;
  #front: Front;
  #gate: CallGate;

  constructor(front: Front, gate: CallGate) {
    this.#front = front;
    this.#gate = gate;
  }

  /** The broker the subscribers subscribe to. */
  get broker(): Broker {
    return this.#front.broker;
  }

  /** Messages and bytes sent on Subscribe streams, closed and open. */
  sent(): { msgs: number; bytes: number } {
    let msgs = this.closedMsgsOut;
    let bytes = this.closedBytesOut;
    for (const s of this.streams) {
      msgs += s.msgsOut;
      bytes += s.bytesOut;
    }
    return { msgs, bytes };
  }

  /** Closes every stream with the status `err()` (the listener is stopping); unacked messages go back. */
  closeAll(err: () => GrpcError): void {
    for (const s of [...this.streams]) {
      s.close(CloseReason.SERVER_SHUTDOWN, "the server is stopping", err());
    }
  }

  /**
   * Applies a reload's verdict to the open streams, as on TCP connections: a
   * revoked user's streams end (UNAUTHENTICATED, AUTH_REVOKED; a
   * subscription's unacked messages go back), an updated one's take the new
   * rules.
   */
  review(verdict: Verdict, why: (p: Principal) => string): void {
    for (const s of [...this.streams]) {
      const v = verdict(s.principal);
      if (v === null) {
        s.close(
          CloseReason.AUTH_REVOKED,
          why(s.principal),
          grpcError("AUTH_REVOKED", why(s.principal)),
        );
      } else if (v !== undefined) this.#rules(s, v);
    }
  }

  // --- SubscriberHost ---

  closed(s: GrpcSubscriber, reason: CloseReason, detail: string): void {
    this.streams.delete(s);
    if (s.sid !== undefined) this.bySid.delete(s.sid);
    if (s.user !== undefined) s.user.subscriptions--;
    this.#front.countClose(reason);
    this.closedMsgsOut += s.msgsOut;
    this.closedBytesOut += s.bytesOut;
    const level = reason === CloseReason.CLIENT_CLOSED || reason === CloseReason.SERVER_SHUTDOWN
      ? "debug"
      : "info";
    this.#front.options.log?.(
      level,
      "gRPC subscribe stream {id} from {peer} closed: {reason} {detail}",
      { id: s.id, peer: s.peer, reason, detail },
    );
  }

  // --- calls ---

  /**
   * Serves an authenticated, admitted Subscribe stream. Any end of the call
   * closes it (cancelled: its unacked messages are redelivered, as after a
   * TCP disconnect).
   */
  stream(call: ServerDuplexStream<unknown, unknown>, p: Principal): void {
    const s = new GrpcSubscriber(
      this.#front.nextId(),
      call as ServerDuplexStream<unknown, Uint8Array>,
      this,
      p,
    );
    this.streams.add(s);
    call.on("data", (req: SubscribeRequestObject) => {
      if (s.isClosed) return;
      try {
        this.#onRequest(s, s.principal, req);
      } catch (e) {
        // Refused at open: the stream ends with the status. Refused later (a
        // bad settle, a forget on a subscription that is not durable): told in
        // the stream, which goes on, as an ERR on TCP. A bug ends it.
        const err = this.#gate.fail("Subscribe", e);
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

  /** The Unsubscribe call: ends one of the caller's own subscriptions. */
  unsubscribe(p: Principal, r: { sub_id: string; forget: boolean }): Record<string, never> {
    const s = this.bySid.get(r.sub_id);
    if (s === undefined || s.principal.user !== p.user) {
      throw new GrpcRefusal("UNKNOWN_SUB_ID", `no subscription ${JSON.stringify(r.sub_id)}`);
    }
    this.#end(s, p, r.forget);
    return {};
  }

  #onRequest(s: GrpcSubscriber, p: Principal, req: SubscribeRequestObject): void {
    switch (req.kind) {
      case "open":
        return this.#open(s, p, req.open!);
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

  /** A stream's first request: its subscription, within the user's limit. */
  #open(s: GrpcSubscriber, p: Principal, open: SubscribeOpen): void {
    if (s.sid !== undefined || s.router !== undefined) {
      throw new GrpcRefusal("BAD_ARGUMENT", "the stream is open already");
    }
    const sid = `g${s.id - CLIENT_ID_BASE}`;
    const { dest, options } = toSubscribe(open, sid);
    authorize(p, dest.startsWith("queue:") ? "consume" : "subscribe", dest);
    // A durable is its user's, as on TCP (docs/PROTOCOL.md): a users-file user's is kept as
    // `<user>/<name>`, so no other user's stream can take it over, or its backlog.
    const user = p.of?.entry?.user;
    if (user !== undefined && options.durable !== undefined) {
      options.durable = userDurable(user, options.durable);
    }
    const u = this.#front.users.of(p, this.broker.tick());
    if (u !== undefined && u.subscriptions >= u.limits.subscriptions) {
      throw new GrpcRefusal(
        "LIMIT",
        `at most ${u.limits.subscriptions} subscriptions per user over gRPC`,
      );
    }
    const routing = this.#front.options.routing;
    // A queue, and a topic's replay or durable (a declared topic's is served by its leader).
    const led = dest.startsWith("queue:") || options.start !== undefined ||
      options.durable !== undefined;
    if (routing !== undefined && led) {
      return this.#openRouted(s, u, { op: "SUB", dest, options }, routing);
    }
    const sub = this.broker.subscribe(s, dest, sid, options);
    this.#opening(s, u, sid);
    s.start(sub);
  }

  /** Counts a subscription being opened against its user's limit, and by sub id. */
  #opening(s: GrpcSubscriber, u: UserState | undefined, sid: string): void {
    if (u !== undefined) {
      u.subscriptions++;
      s.user = u;
    }
    this.bySid.set(sid, s);
  }

  /**
   * Cluster mode, a queue or a topic's replay or durable: the stream is a
   * routed connection of its own (routed.ts). A queue or declared topic
   * nobody leads is claimed first (the subscription is made once the claim
   * is decided, as on TCP); then it is made at the leader, or here when this
   * node leads it (and for a topic nobody declared, as on one broker).
   */
  #openRouted(s: GrpcSubscriber, u: UserState | undefined, f: SubFrame, routing: Routing): void {
    const opened: Answers = {
      answer: (_i, code, text) => {
        if (s.isClosed) return; // cancelled while the leader made it: nothing to tell
        if (code === undefined) return s.opened();
        const err = this.#gate.fail("Subscribe", new GrpcRefusal(code, text));
        s.close(CloseReason.CLIENT_CLOSED, text, err);
      },
    };
    const router = s.router = routeSubscriber(routing, s, this.broker, opened);
    const claim = router.ready(f);
    if (claim === undefined) return this.#subscribeRouted(s, u, f.dest, f.options);
    claim.then(() => {
      if (s.isClosed) return;
      this.broker.tick();
      try {
        this.#subscribeRouted(s, u, f.dest, f.options);
      } catch (e) {
        const err = this.#gate.fail("Subscribe", e);
        s.close(CloseReason.CLIENT_CLOSED, err.details, err);
      }
    });
  }

  #subscribeRouted(
    s: GrpcSubscriber,
    u: UserState | undefined,
    dest: string,
    options: SubOptions,
  ): void {
    const sid = options.sid!;
    const remote = s.router!.sub(dest, sid, options, false);
    if (remote === null) return; // refused: its answer ended the stream
    this.#opening(s, u, sid);
    if (remote === undefined) return s.start(this.broker.subscribe(s, dest, sid, options));
    s.attach(remote); // opened once the leader answers
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
}
