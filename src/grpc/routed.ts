/**
 * The gRPC listener in a cluster: its calls on queues (and its publishes to
 * declared topics) go to their leader through the cluster's router
 * (src/cluster/forward.ts, behind the server's `Routing` seam), exactly as a
 * TCP client's commands do, after the same checks on this node
 * (authentication, permissions, limits: deny wins here, before anything is
 * forwarded or claimed).
 *
 * - **Publishes** (Publish, Request, PublishStream) share one routed
 *   connection of the listener (`PublishRoute`, src/server/, which the UDP
 *   ingest's forwarding uses too): one upstream proxy
 *   connection per leader node, each publish's answer going back to its
 *   call or its stream's batch by the slot it was held in (`AnswerSlots`),
 *   no promise per message.
 * - **A Subscribe stream** on a queue is its own routed connection
 *   (`routeSubscriber`), as a TCP connection is: its subscription is made at
 *   the leader, deliveries come back on the stream, its acks and nacks go to
 *   the leader with the leader's ids, and when the leader goes it is re-made
 *   at the next one under the same sub id.
 *
 * @module
 */
import type { Broker, ReplyWait } from "../broker/mod.ts";
import type { ErrorCode } from "../protocol/mod.ts";
import {
  type Answers,
  AnswerSlots,
  type QueueRouter,
  replyOf,
  type Routing,
} from "../server/mod.ts";
import type { GrpcErrorCode } from "./errors.ts";
import type { GrpcSubscriber } from "./subscriber.ts";

/** A unary publish's wait for its leader's answer: the call's one promise. */
export class UnaryAnswer implements Answers {
  readonly promise: Promise<number>;
  #resolve!: (id: number) => void;
  #reject!: (e: unknown) => void;
  readonly #refusal: (code: GrpcErrorCode, text: string) => unknown;

  constructor(refusal: (code: GrpcErrorCode, text: string) => unknown) {
    this.#refusal = refusal;
    this.promise = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
  }

  answer(_i: number, code: ErrorCode | undefined, text: string): void {
    if (code === undefined) this.#resolve(idOf(text));
    else this.#reject(this.#refusal(code, text));
  }
}

/** The id in an `OK msg_id:<id>[ duplicate:true]` reply's text. */
export function idOf(text: string): number {
  const sp = text.indexOf(" ", 7);
  return Number(text.slice(7, sp < 0 ? text.length : sp));
}

/**
 * A Subscribe stream's own routed connection (its client is the stream):
 * `opened` hears the leader's answer to the subscription (OK: the stream
 * tells its sub_id; an ERR ends it with that status).
 */
export function routeSubscriber(
  routing: Routing,
  s: GrpcSubscriber,
  broker: Broker,
  opened: Answers,
): QueueRouter {
  return routing.open({
    id: s.id,
    client: s,
    broker,
    replies: new AnswerSlots(opened),
    inflight: s.inflight,
    subs: s.subs,
    isClosed: () => s.isClosed,
    // Authorized (consume) and within the user's limits before it is routed.
    mayClaim: () => true,
    lost: (_sid, why) => s.lost(why),
  }, undefined);
}

/**
 * The reply of the acks and nacks a Subscribe stream sends to a leader: an
 * `ERR` (an id the leader no longer has in flight, its connection gone) is
 * told in the stream as an `error` response, as for a local unknown id; an
 * OK says nothing. One per stream, no state: nothing per message.
 */
export class SettleReply implements ReplyWait {
  readonly #s: { refused(code: GrpcErrorCode, message: string): void };

  constructor(s: { refused(code: GrpcErrorCode, message: string): void }) {
    this.#s = s;
  }

  answer(err: Uint8Array | undefined): void {
    if (err === undefined) return;
    const r = replyOf(err);
    this.#s.refused(r.code ?? "UNAVAILABLE", r.text);
  }
}
