/**
 * A Subscribe stream as the broker sees it: a `Client` with one
 * subscription. Messages the broker sends in one tick are encoded into one
 * `SubscribeResponse` (codec.ts) and written to the stream once, in a
 * microtask after the broker's dispatch; the stream's write back-pressure
 * (grpc-js refuses more once its buffer is full, until `drain`) and the
 * pending-bytes mark answer `wantsMore()`, so nothing buffers without bound
 * and a subscriber that stops reading falls under the slow-consumer policy,
 * as a TCP connection does. One close path, `close(reason)`; every end of the
 * stream (client cancel, error, unsubscribe, slow consumer, shutdown) goes
 * through it, and the subscription's unacked messages go back.
 *
 * @module
 */
import type { ServerDuplexStream } from "@grpc/grpc-js";
import {
  type Broker,
  type Client,
  type Delivery,
  InFlight,
  type Subscription,
} from "../broker/mod.ts";
import { GRPC_BATCH_BYTES_MAX, PENDING_BYTES_HIGH, PENDING_BYTES_MAX } from "../config/mod.ts";
import { CloseReason } from "../server/mod.ts";
import type { Message } from "../storage/mod.ts";
import { Action } from "../auth/mod.ts";
import type { Principal } from "./auth.ts";
import type { QueueRouter } from "../server/mod.ts";
import { DeliveryBatch, errorResponse, openedResponse } from "./codec.ts";
import { type GrpcError, grpcError, type GrpcErrorCode } from "./errors.ts";
import type { UserState } from "./limits.ts";
import { SettleReply } from "./routed.ts";

/** What a subscriber needs from the front end. */
export interface SubscriberHost {
  readonly broker: Broker;
  /** Called once when the stream has ended. */
  closed(s: GrpcSubscriber, reason: CloseReason, detail: string): void;
}

/** A settle request of the stream (proto `Settle`). */
export interface SettleRequest {
  ack: string[];
  nack: { msg_id: string; delay_ms: number }[];
}

/** The byte that ends the destination in a MSG head (`MSG <dest> sub_id:...`). */
const SPACE = 0x20;
/** `MSG ` */
const HEAD_PREFIX = 4;

/** One Subscribe stream. */
export class GrpcSubscriber implements Client {
  readonly id: number;
  readonly inflight: InFlight = new InFlight();
  /** Who opened it; a reload may give it new rules. */
  principal: Principal;
  /** Its user's state (limits.ts), once the subscription opened under a users-file user. */
  user: UserState | undefined = undefined;
  readonly peer: string;
  readonly openedAt: number;
  /**
   * Its subscription by sub id (one): the one made here, or one made at the
   * queue's leader (cluster), which the router may replace by another
   * (re-made at the next leader, or here when this node comes to lead).
   */
  readonly subs = new Map<string, Subscription>();
  /** Cluster mode, a queue: the stream's router (routed.ts); undefined otherwise. */
  router: QueueRouter | undefined = undefined;
  #sid: string | undefined = undefined;
  /** The reply of acks and nacks settled at a queue's leader (made on the first). */
  #remoteSettle: SettleReply | undefined = undefined;
  msgsOut = 0;
  bytesOut = 0;
  /** Settled ids (acks and nacks) the client sent. */
  settled = 0;
  #call: ServerDuplexStream<unknown, Uint8Array>;
  #host: SubscriberHost;
  #broker: Broker;
  #batch = new DeliveryBatch();
  /** Destination bytes by MSG head: one per topic the subscription is bound to. */
  #dests = new Map<Uint8Array, Uint8Array>();
  #scheduled = false;
  /** grpc-js refused the last write (its buffer is full) and `drain` has not come yet. */
  #blocked = false;
  #wantDrain = false;
  /**
   * Batches cut (full) while grpc-js refused writes, waiting for `drain`: the
   * broker may still send a little after `wantsMore()` said no (a
   * redelivery, the rest of a dispatch), never without bound: past
   * `PENDING_BYTES_MAX` the stream is closed as a slow consumer, as a TCP
   * connection whose outbound buffer overflows.
   */
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #closed = false;
  #acked: Delivery[] = [];

  constructor(
    id: number,
    call: ServerDuplexStream<unknown, Uint8Array>,
    host: SubscriberHost,
    principal: Principal,
  ) {
    this.id = id;
    this.#call = call;
    this.#host = host;
    this.#broker = host.broker;
    this.principal = principal;
    this.peer = call.getPeer();
    this.openedAt = host.broker.clock.now();
  }

  /** Whether the stream has ended. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Its subscription, once opened (or while its leader makes it). */
  get sub(): Subscription | undefined {
    return this.#sid === undefined ? undefined : this.subs.get(this.#sid);
  }

  /** Its sub id, once asked for. */
  get sid(): string | undefined {
    return this.#sid;
  }

  /** Starts deliveries of `sub` after telling the client its `sub_id`. */
  start(sub: Subscription): void {
    this.attach(sub);
    this.opened();
  }

  /** Takes `sub` as its subscription (one being made at the queue's leader waits for `opened`). */
  attach(sub: Subscription): void {
    this.#sid = sub.sid;
    this.subs.set(sub.sid, sub);
  }

  /** The subscription is made: the client is told its `sub_id`, deliveries flow. */
  opened(): void {
    if (this.#closed || this.#sid === undefined) return;
    this.#call.write(openedResponse(this.#sid));
    this.sub?.activate();
  }

  // --- Client (the broker's view) ---

  wantsMore(): boolean {
    if (!this.#blocked && this.#batch.length < PENDING_BYTES_HIGH) return true;
    this.#wantDrain = true;
    return false;
  }

  sendMsg(head: Uint8Array, msg: Message, delivery: number): void {
    if (this.#closed) return;
    let dest = this.#dests.get(head);
    if (dest === undefined) {
      dest = head.subarray(HEAD_PREFIX, head.indexOf(SPACE, HEAD_PREFIX));
      this.#dests.set(head, dest);
    }
    this.msgsOut++;
    this.bytesOut += msg.len;
    // allow_responses: the user may answer this message once, from any of its gRPC calls.
    const grants = this.user?.grants;
    if (grants !== undefined && msg.replyTo !== undefined) {
      grants.grant(msg.replyTo, this.#broker.now);
    }
    this.#batch.add(dest, msg, delivery);
    if (this.#batch.length >= GRPC_BATCH_BYTES_MAX) this.#cut();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  slowConsumer(detail: string): void {
    queueMicrotask(() =>
      this.close(CloseReason.SLOW_CONSUMER, detail, grpcError("SLOW_CONSUMER", detail))
    );
  }

  /**
   * (cluster) This node stopped leading the queue: the stream ends with
   * UNAVAILABLE (`LEADER_CHANGED`), as a TCP connection closes, so that the
   * client subscribes again and reaches the new leader.
   */
  leaderChanged(detail: string): void {
    queueMicrotask(() =>
      this.close(CloseReason.LEADER_CHANGED, detail, grpcError("LEADER_CHANGED", detail))
    );
  }

  /** (cluster) Its subscription's leader went and no next one was reachable in time: it ends. */
  lost(why: string): void {
    this.close(CloseReason.LEADER_CHANGED, why, grpcError("UNAVAILABLE", why));
  }

  /** Asked once per topic a wildcard subscription binds to (the user's subscribe rules). */
  mayRead(topic: string): boolean {
    return this.principal.perms?.may(Action.SUBSCRIBE, topic) ?? true;
  }

  /** The user's `pending_bytes` limit, if any, also bounds the lag of its topic subscription. */
  get lagBytesMax(): number | undefined {
    return this.principal.of?.entry?.limits?.pending_bytes;
  }

  /** Acks of `ack: none` deliveries are ignored on gRPC (see `settle`), so nothing is remembered. */
  delivered(_id: number): void {}

  // --- the stream ---

  /** Writes the batch the broker filled in this tick as one stream message (held while blocked). */
  #flush = (): void => {
    this.#scheduled = false;
    if (this.#closed || this.#blocked || this.#batch.count === 0) return;
    if (this.#write(this.#batch.take()) && this.#wantDrain) queueMicrotask(this.#drained);
  };

  /** A full batch: written now, or held until the stream drains. */
  #cut(): void {
    if (!this.#blocked) return this.#flush();
    const b = this.#batch.take();
    this.#held.push(b);
    this.#heldBytes += b.length;
    if (this.#heldBytes > PENDING_BYTES_MAX) {
      this.slowConsumer(
        `over ${PENDING_BYTES_MAX} bytes waiting for the stream: the client is not reading`,
      );
    }
  }

  /** One stream write; false (and a `drain` awaited) when grpc-js wants no more for now. */
  #write(bytes: Uint8Array): boolean {
    if (this.#call.write(bytes)) return true;
    this.#blocked = true;
    this.#call.once("drain", this.#drained);
    return false;
  }

  /** The stream took its buffered batches: held ones go out, then held deliveries flow again. */
  #drained = (): void => {
    this.#blocked = false;
    if (this.#closed) return;
    while (this.#held.length > 0) {
      const b = this.#held.shift()!;
      this.#heldBytes -= b.length;
      if (!this.#write(b)) return;
    }
    if (this.#batch.count > 0 && !this.#write(this.#batch.take())) return;
    if (!this.#wantDrain) return;
    this.#wantDrain = false;
    this.#broker.tick();
    this.sub?.activate();
  };

  /**
   * Acks and nacks. Ids not in flight on this stream are reported in one
   * `error` response (UNKNOWN_MSG_ID) and the others settled, as an ACK line
   * on TCP; a subscription without explicit acks ignores acks.
   */
  settle(s: SettleRequest): void {
    if (this.#closed || this.sub === undefined) return;
    this.#broker.tick();
    let unknown: string[] | undefined;
    const acked = this.#acked;
    for (const text of s.ack) {
      const d = this.inflight.take(Number(text));
      if (d !== undefined) acked.push(d);
      else if (this.sub.explicit) (unknown ??= []).push(text);
    }
    this.settled += s.ack.length + s.nack.length;
    for (let i = 0; i < acked.length; i++) {
      const d = acked[i];
      // Settled at the queue's leader: its ERR, if any, is told in the stream.
      if (d.sub.remote) d.sub.ack(d, this.#remoteSettle ??= new SettleReply(this));
      else d.sub.ack(d);
    }
    acked.length = 0;
    for (const n of s.nack) {
      const d = this.inflight.take(Number(n.msg_id));
      if (d === undefined) (unknown ??= []).push(n.msg_id);
      else if (d.sub.remote) {
        d.sub.nack(d, n.delay_ms, this.#remoteSettle ??= new SettleReply(this));
      } else d.sub.nack(d, n.delay_ms);
    }
    if (unknown !== undefined) {
      this.#call.write(errorResponse(
        "UNKNOWN_MSG_ID",
        `msg_id:${unknown.join(" msg_id:")} not in flight on this stream`,
      ));
    }
  }

  /** A refused request of an open stream, told in it (an `error` response); the stream goes on. */
  refused(code: GrpcErrorCode, message: string): void {
    if (!this.#closed) this.#call.write(errorResponse(code, message));
  }

  /**
   * The one close path: ends the subscription (unacked messages go back;
   * `forget` deletes a durable), then ends the stream with OK or with the
   * status `err`. A cancelled call has nobody to answer.
   */
  close(reason: CloseReason, detail: string, err?: GrpcError, forget = false): void {
    if (this.#closed) return;
    this.#closed = true;
    this.sub?.close(forget);
    this.subs.clear();
    this.router?.close();
    this.#host.closed(this, reason, detail);
    const call = this.#call;
    if (call.cancelled || call.destroyed) return;
    if (err === undefined) {
      this.#flushLast();
      call.end();
    } else call.emit("error", err);
  }

  /** On a clean end, what was already encoded still goes out before the status (bounded, see `#held`). */
  #flushLast(): void {
    for (const b of this.#held.splice(0)) this.#call.write(b);
    this.#heldBytes = 0;
    if (this.#batch.count > 0) this.#call.write(this.#batch.take());
  }
}
