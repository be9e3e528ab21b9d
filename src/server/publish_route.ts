/**
 * The publishes of a listener without connections of its own (gRPC's unary
 * calls and streams, the UDP ingest) to queues and declared topics another
 * node leads: one routed connection of the listener (the router of
 * src/cluster/forward.ts, behind the `Routing` seam: one upstream proxy
 * connection per leader node), each publish's answer going back to whoever
 * handed it over by the slot it was held in (`AnswerSlots`), no promise per
 * message. Exactly the path a TCP client's commands take, after the same
 * checks on this node.
 *
 * @module
 */
import { type Broker, InFlight } from "../broker/mod.ts";
import type { DeclareFrame, PubFrame } from "../protocol/mod.ts";
import { type Answers, AnswerSlots, PublishingClient } from "./answers.ts";
import type { QueueRouter, Routing } from "./routing.ts";

/** `q`, the first byte of a `queue:` destination. */
const Q = 0x71;

/** A listener's publishes (and topic declarations) to destinations other nodes lead (see the module comment). */
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
      // Each command was authorized before it comes here: a refused one never does.
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
