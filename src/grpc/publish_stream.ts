/**
 * One PublishStream call: batches in (decoded by publish_codec.ts), one
 * `PublishAcks` out per batch, in order. Acks go at once when every publish
 * of the batch was accepted synchronously (memory store), else after the
 * earlier batches' acks, once their store writes settle (one wait per store
 * promise of the batch, `Waiting`) and, in a cluster, once the leaders of
 * the queues led elsewhere answered the publishes forwarded there. Reading pauses
 * (HTTP/2 back-pressure reaches the client) while the client is not taking
 * acks, while more than `GRPC_PUBLISH_ACKS_PENDING_MAX` acks are owed, and
 * while a topic it published to is blocked by a stalled subscriber, and
 * while its user's `publish_rate` bucket is empty (the rest of the batch
 * waits for the bucket to refill: one timer per pause, none per message).
 *
 * @module
 */
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { storeFailed } from "../broker/mod.ts";
import { GRPC_PUBLISH_ACKS_PENDING_MAX } from "../config/mod.ts";
import type { ErrorCode } from "../protocol/mod.ts";
import type { Answers } from "../server/mod.ts";
import type { Principal } from "./auth.ts";
import { codeOf, type GrpcError, GrpcRefusal, toGrpcError } from "./errors.ts";
import type { PublishView } from "./publish_codec.ts";
import type { UserState } from "./limits.ts";
import { idOf } from "./routed.ts";

/** What a publish stream needs from the front end. */
export interface PublishStreamHost {
  /** Reads the clock once for the batch. */
  tick(): number;
  /** The caller's user state (limits, publish bucket), if it has one. */
  userOf(p: Principal): UserState | undefined;
  /** Resolves once `u`'s bucket holds a token again, or `gone()`. */
  waitToken(u: UserState, gone: () => boolean, ended: Promise<void>): Promise<void>;
  /**
   * One checked, authorized, counted publish, taking a token of `u`'s bucket
   * (throws on refusal); undefined when its ack waits: it went to its
   * queue's leader on another node (cluster), whose answer comes to
   * `to.answer(i, ...)`, or it is stored here and waits (`to.stored`).
   */
  publishOne(
    p: Principal,
    v: PublishView,
    u: UserState | undefined,
    to: BatchAnswers,
    i: number,
  ): number | Promise<number> | undefined;
  /** The topic a publish since the last call found blocked, if any (and clears it). */
  takeBlocked(): { unblocked(): Promise<void> } | undefined;
  /** Counts a refused publish. */
  refused(e: unknown): void;
  /** Called once when the call has ended. */
  ended(call: ServerDuplexStream<unknown, unknown>): void;
}

/** One ack of `PublishAcks`. */
type Ack = { msg_id: string; error?: { code: string; message: string } };

function refusal(e: unknown): Ack {
  return { msg_id: "", error: { code: codeOf(e) ?? "INTERNAL", message: toGrpcError(e).details } };
}

/**
 * Where a batch's publishes that cannot be acked at once report: the leader's
 * answer of one forwarded to another node (`answer`), and the store's wait of
 * one stored here (`stored`).
 */
export interface BatchAnswers extends Answers {
  /**
   * Message `i` has id `id` and waits for `durable` (a replicated store's
   * majority, `--fsync always`): the messages of one tick share one promise,
   * so the batch waits once per promise, not once per message.
   */
  stored(i: number, id: number, durable: Promise<void>): void;
}

/**
 * The acks of one batch that wait (one promise per batch, made only when one
 * is still out at the batch's end): forwarded publishes for their leaders'
 * answers, local ones for their store, grouped by the store's promise.
 */
class Waiting implements BatchAnswers {
  readonly #acks: (Ack | undefined)[];
  readonly #host: PublishStreamHost;
  /** Forwarded answers still out (it may dip below 0 while a refusal is answered during `publishOne`). */
  #left = 0;
  /** The last message that `stored` took (its wait is its store's, not an answer's). */
  #lastStored = -1;
  /** Store promises still out, and the last one with the messages waiting for it. */
  #stores = 0;
  #durable: Promise<void> | undefined = undefined;
  #group: number[] = [];
  #done: (() => void) | undefined = undefined;

  constructor(acks: (Ack | undefined)[], host: PublishStreamHost) {
    this.#acks = acks;
    this.#host = host;
  }

  answer(i: number, code: ErrorCode | undefined, text: string): void {
    if (code === undefined) this.#acks[i] = { msg_id: String(idOf(text)) };
    else {
      this.#host.refused(new GrpcRefusal(code, text));
      this.#acks[i] = { msg_id: "", error: { code, message: text } };
    }
    this.#left--;
    this.#check();
  }

  stored(i: number, id: number, durable: Promise<void>): void {
    this.#lastStored = i;
    this.#acks[i] = { msg_id: String(id) };
    if (durable !== this.#durable) {
      this.#durable = durable;
      const group = this.#group = [];
      this.#stores++;
      durable.then(this.#storeDone, (e) => {
        const err = storeFailed(e);
        this.#host.refused(err);
        for (const j of group) this.#acks[j] = refusal(err);
        this.#storeDone();
      });
    }
    this.#group.push(i);
  }

  #storeDone = (): void => {
    this.#stores--;
    this.#check();
  };

  /** `publishOne` said that message `i` waits: for its leader's answer, unless it was `stored`. */
  waits(i: number): void {
    if (i !== this.#lastStored) this.#left++;
  }

  #check(): void {
    if (this.#left === 0 && this.#stores === 0) this.#done?.();
  }

  /** Settles once every answer came; undefined when none is out. */
  all(): Promise<void> | undefined {
    return this.#left === 0 && this.#stores === 0 ? undefined : new Promise((r) => this.#done = r);
  }
}

/** Serves one PublishStream call. */
export class PublishStream {
  #call: ServerDuplexStream<unknown, unknown>;
  #host: PublishStreamHost;
  /** Who opened it; a reload may give it new rules. */
  principal: Principal;
  /** The acks of batches waiting for their store writes, in order; undefined when none wait. */
  #chain: Promise<void> | undefined = undefined;
  #owed = 0;
  #overOwed = false;
  #ended = false;
  /** Reasons to stop reading (write back-pressure, owed acks, a blocked topic). */
  #paused = 0;
  /** A batch is half done, waiting for the publish bucket. */
  #throttled = false;
  #gone: Promise<void> | undefined = undefined;

  constructor(call: ServerDuplexStream<unknown, unknown>, host: PublishStreamHost, p: Principal) {
    this.#call = call;
    this.#host = host;
    this.principal = p;
    call.on("data", (batch: PublishView[]) => this.#batch(batch));
    call.on("end", () => {
      this.#ended = true;
      this.#finish();
    });
    const gone = () => host.ended(call);
    call.on("close", gone);
    call.on("cancelled", gone);
    call.on("error", gone);
  }

  #batch(batch: PublishView[]): void {
    const n = batch.length;
    const acks = new Array(n);
    this.#run(batch, 0, acks, new Array(n), false, new Waiting(acks, this.#host));
  }

  /**
   * Publishes `batch` from `from` on. Over the user's publish rate it stops
   * reading and goes on with the rest once the bucket refilled; the batch's
   * acks still go out in order, as one `PublishAcks`.
   */
  #run(
    batch: PublishView[],
    from: number,
    acks: (Ack | undefined)[],
    ids: (number | Promise<number> | undefined)[],
    waits: boolean,
    fwd: Waiting,
  ): void {
    const host = this.#host;
    const n = batch.length;
    const now = host.tick(); // once per batch: a tick is a batch of work
    const u = host.userOf(this.principal);
    const bucket = u?.bucket.limited ? u.bucket : undefined;
    bucket?.refill(now);
    for (let i = from; i < n; i++) {
      if (bucket !== undefined && bucket.tokens < 1) {
        this.#pause();
        this.#throttled = true;
        const gone = () => this.#call.destroyed || this.#call.cancelled;
        host.waitToken(u!, gone, this.#gone ??= this.#whenGone()).then(() => {
          this.#throttled = false;
          this.#resume();
          if (this.#call.destroyed || this.#call.cancelled) return;
          this.#run(batch, i, acks, ids, waits, fwd);
          this.#finish();
        });
        return;
      }
      try {
        const id = ids[i] = host.publishOne(this.principal, batch[i], u, fwd, i);
        if (id === undefined) fwd.waits(i);
        if (typeof id !== "number") waits = true;
      } catch (e) {
        host.refused(e);
        acks[i] = refusal(e);
      }
    }
    const blocked = host.takeBlocked();
    if (blocked !== undefined) {
      this.#pause();
      blocked.unblocked().then(this.#resume);
    }
    if (!waits && this.#chain === undefined) {
      for (let i = 0; i < n; i++) acks[i] ??= { msg_id: String(ids[i]) };
      return this.#send(acks as Ack[]);
    }
    this.#owed += n;
    if (!this.#overOwed && this.#owed > GRPC_PUBLISH_ACKS_PENDING_MAX) {
      this.#overOwed = true;
      this.#pause();
    }
    const forwarded = fwd.all();
    const mine: Promise<void> = (this.#chain ?? Promise.resolve()).then(async () => {
      if (forwarded !== undefined) await forwarded; // the leaders' answers fill their acks
      for (let i = 0; i < n; i++) {
        if (acks[i] !== undefined) continue;
        try {
          acks[i] = { msg_id: String(await ids[i]) };
        } catch (e) {
          host.refused(e);
          acks[i] = refusal(e);
        }
      }
      this.#owed -= n;
      if (this.#overOwed && this.#owed <= GRPC_PUBLISH_ACKS_PENDING_MAX) {
        this.#overOwed = false;
        this.#resume();
      }
      this.#send(acks as Ack[]);
      if (this.#chain === mine) this.#chain = undefined;
      this.#finish();
    });
    this.#chain = mine;
  }

  /** Settles when the call ends, however. */
  #whenGone(): Promise<void> {
    return new Promise((r) => {
      this.#call.once("close", r);
      this.#call.once("cancelled", r);
      this.#call.once("error", r);
    });
  }

  /** Ends the call with `err` (a revoked user, a stopping server). */
  fail(err: GrpcError): void {
    if (!this.#call.cancelled && !this.#call.destroyed) this.#call.emit("error", err);
  }

  #send(acks: Ack[]): void {
    const call = this.#call;
    if (!call.destroyed && !call.write({ acks })) {
      this.#pause();
      call.once("drain", this.#resume);
    }
  }

  #pause(): void {
    if (this.#paused++ === 0) this.#call.pause();
  }

  #resume = (): void => {
    if (--this.#paused === 0 && !this.#call.destroyed) this.#call.resume();
  };

  /** Ends the call with OK once the client half-closed and every ack is out. */
  #finish(): void {
    if (
      this.#ended && !this.#throttled && this.#owed === 0 && this.#chain === undefined &&
      !this.#call.destroyed
    ) {
      this.#call.end();
    }
  }
}
