/**
 * The gRPC listener in a cluster: its calls on queues (and its publishes to
 * declared topics) go to their leader through the cluster's router
 * (src/cluster/forward.ts, behind the server's `Routing` seam), exactly as a
 * TCP client's commands do, after the same checks on this node
 * (authentication, permissions, limits: deny wins here, before anything is
 * forwarded or claimed).
 *
 * - **Publishes** (Publish, Request, PublishStream) share one routed
 *   connection of the listener (`PublishRoute`): one upstream proxy
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
import { type Broker, InFlight, type ReplyWait } from "../broker/mod.ts";
import type { DeclareFrame, ErrorCode, PubFrame } from "../protocol/mod.ts";
import {
  type Answers,
  AnswerSlots,
  PublishingClient,
  type QueueRouter,
  replyOf,
  type Routing,
} from "../server/mod.ts";
import type { GrpcErrorCode } from "./errors.ts";
import type { GrpcSubscriber } from "./subscriber.ts";

/** `q`, the first byte of a `queue:` destination. */
const Q = 0x71;

/** The listener's publishes to queues led by other nodes (see the module comment). */
export class PublishRoute {
  #router: QueueRouter;
  #slots: AnswerSlots;
  #closed = false;

  constructor(routing: Routing, broker: Broker, id: number) {
    const slots = this.#slots = new AnswerSlots(NOBODY);
    this.#router = routing.open({
      id,
      client: new PublishingClient(id),
      broker,
      replies: slots,
      inflight: new InFlight(),
      subs: new Map(),
      isClosed: () => this.#closed,
      // Each call was authorized before it comes here: a refused one never does.
      mayClaim: () => true,
    }, undefined);
  }

  /**
   * Called before a publish is routed: a promise while this node claims a
   * queue or a declared topic nobody leads, or recovers a declared topic it
   * has just come to lead (a unary call waits for it, as a TCP connection's
   * reading does), else undefined.
   */
  ready(m: PubFrame | DeclareFrame): Promise<void> | undefined {
    return this.#router.ready(m);
  }

  /**
   * A topic's Declare, as a TCP `DECLARE topic:...` goes: to the topic's
   * leader (claimed first by `ready` when nobody leads it), declared there
   * and replicated; `to.answer(i, ...)` gets the outcome. False: declare it
   * here (no declared topics in this cluster's routing).
   */
  declare(f: DeclareFrame, to: Answers, i: number): boolean {
    return this.#hand(f, to, i);
  }

  /**
   * Sends `m` to its leader when another node leads its queue or declared
   * topic: true, and `to.answer(i, ...)` gets the leader's answer (or the
   * refusal, maybe at once); false: publish it here (a plain topic, one this
   * node serves, a queue this node leads).
   */
  pub(m: PubFrame, to: Answers, i: number): boolean {
    return this.#hand(m, to, i);
  }

  /** Hands `f` to the router with `to.answer(i, ...)` as where its answer goes. */
  #hand(f: PubFrame | DeclareFrame, to: Answers, i: number): boolean {
    if (this.#closed) {
      // The listener is stopping: no new proxy connection for a call that slipped in.
      to.answer(i, "SHUTTING_DOWN", "the server is stopping");
      return true;
    }
    const slots = this.#slots;
    slots.to = to;
    slots.i = i;
    const routed = f.op === "PUB" ? this.#router.pub(f) : this.#router.declare(f);
    slots.to = NOBODY;
    return routed;
  }

  /**
   * `pub` without waiting (a stream's message, a Request): a queue nobody
   * leads yet is published here (false: its store holds it while this node
   * claims the queue); a declared topic in that state is routed all the
   * same, and so refused `UNAVAILABLE` (retry) rather than published here
   * as a plain topic, which its log would never hold.
   */
  pubNow(m: PubFrame, to: Answers, i: number): boolean {
    if (this.ready(m) !== undefined && m.dest.charCodeAt(0) === Q) return false;
    return this.pub(m, to, i);
  }

  /** The listener stopped: its upstreams close (what waits on them is answered `UNAVAILABLE`). */
  close(): void {
    this.#closed = true;
    this.#router.close();
  }
}

/** Where an answer goes when no command is being handed over (never: each is set first). */
const NOBODY: Answers = { answer() {} };

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
