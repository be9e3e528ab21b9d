/**
 * ACK and NACK on one connection: deliveries leave its `InFlight` and are
 * settled with their subscription, and the reply is ordered with the store
 * where it must be (see `ack`). Also the short memory of ids delivered
 * without explicit acks, whose ACK is a no-op rather than an error.
 *
 * @module
 */
import type { Broker, Delivery, InFlight, Subscription } from "../broker/mod.ts";
import { ACK_IDS_MAX, RECENT_UNACKED_IDS } from "../config/mod.ts";
import { type AckFrame, errFrame, type NackFrame } from "../protocol/mod.ts";
import type { Replies } from "./replies.ts";

/**
 * Deliveries a cumulative ACK looks at from the newest back before it asks
 * the in-flight index (which it otherwise leaves unbuilt, see `InFlight`).
 */
const UPTO_SCAN_MAX = 64;

/**
 * The deliveries one ACK line settles, in a list reused from line to line
 * that keeps its storage: `length = 0` gives an array's storage back to V8,
 * and every ACK line of ids grew it again, step by step (~6 ns per id where
 * this takes ~3, for 166-id lines on Deno). A batch larger than an ACK line
 * of ids (a cumulative ACK of a whole prefetch window) is let go.
 */
class Batch {
  items: (Delivery | undefined)[] = [];
  length = 0;

  push(d: Delivery): void {
    this.items[this.length++] = d;
  }

  /** The `i`th delivery (`i` below `length`). */
  at(i: number): Delivery {
    return this.items[i]!;
  }

  clear(): void {
    const items = this.items;
    if (this.length > ACK_IDS_MAX) this.items = [];
    else for (let i = 0; i < this.length; i++) items[i] = undefined;
    this.length = 0;
  }
}

/** One connection's ACK/NACK handling. */
export class Settlement {
  readonly #inflight: InFlight;
  readonly #replies: Replies;
  readonly #broker: Broker;
  /** The connection's subscriptions by sid (a cumulative ACK names one). */
  readonly #bySid: ReadonlyMap<string, Subscription>;
  /** Scratch list of the deliveries one ACK line settles, reused. */
  #acked = new Batch();
  /** Scratch list of the subscriptions those deliveries belong to, reused. */
  #subs: Subscription[] = [];
  /** Made on the first delivery without explicit acks (8 KiB: most connections never need it). */
  #recent: Float64Array | undefined = undefined;
  #recentPos = 0;

  constructor(
    inflight: InFlight,
    replies: Replies,
    broker: Broker,
    subs: ReadonlyMap<string, Subscription>,
  ) {
    this.#inflight = inflight;
    this.#bySid = subs;
    this.#replies = replies;
    this.#broker = broker;
  }

  /** Remembers a message delivered without explicit acks (its ACK is then a no-op). */
  delivered(id: number): void {
    (this.#recent ??= new Float64Array(RECENT_UNACKED_IDS))[this.#recentPos] = id;
    this.#recentPos = (this.#recentPos + 1) % RECENT_UNACKED_IDS;
  }

  /**
   * `delivered` of `count` ids one apart from `firstId` (a fan-out run): only
   * the last `RECENT_UNACKED_IDS` of them, as the ring would keep anyway.
   */
  deliveredRun(firstId: number, count: number): void {
    const recent = this.#recent ??= new Float64Array(RECENT_UNACKED_IDS);
    let pos = this.#recentPos;
    const end = firstId + count;
    for (let id = Math.max(firstId, end - RECENT_UNACKED_IDS); id < end; id++) {
      recent[pos] = id;
      if (++pos === RECENT_UNACKED_IDS) pos = 0;
    }
    this.#recentPos = pos;
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
  ack(f: AckFrame): void {
    if (f.upto !== undefined) return this.#ackUpto(f.upto.sid, f.upto.id);
    const acked = this.#acked;
    let unknown: number[] | undefined;
    let durable = false;
    let remote = 0;
    for (const id of f.ids) {
      const d = this.#inflight.take(id);
      if (d !== undefined) {
        acked.push(d);
        if (d.sub.durable) durable = true;
        if (d.sub.remote) remote++;
      } else if (!this.#recent?.includes(id)) (unknown ??= []).push(id);
    }
    this.#settleAcked(durable, remote, unknown);
  }

  /**
   * `ACK sub_id:<sid> upto:<id>`: the subscription's deliveries in flight,
   * oldest first, through message `id`'s (a client that handles messages in
   * the order they came settles all it has handled in one token, as
   * JetStream's AckAll does). An id not in flight to that subscription
   * settles nothing: `UNKNOWN_MSG_ID`. Without explicit acks the
   * subscription has nothing in flight, and the ACK is a no-op, as an ACK of
   * its ids is.
   */
  #ackUpto(sid: string, id: number): void {
    const sub = this.#bySid.get(sid);
    if (sub === undefined) {
      return this.#replies.error("UNKNOWN_SUB_ID", `no subscription ${JSON.stringify(sid)}`);
    }
    if (!sub.explicit) return this.#replies.okAfter(undefined, undefined);
    // Looked for from the newest back (a client mostly names the last one it got): no lookup
    // by id, which would make the connection index every delivery (see `InFlight`). Past a
    // few steps the index answers, so that an id far back, or in flight nowhere, costs no
    // walk over a whole prefetch window (up to PREFETCH_MAX) per line.
    let last = sub.inflight.last;
    for (let n = 0; last !== undefined && last.msg.id !== id; n++) {
      last = n < UPTO_SCAN_MAX ? last.prev : this.#inflight.find(id, sub);
    }
    if (last === undefined) return this.#settleAcked(false, 0, [id]);
    const acked = this.#acked;
    for (let d = sub.inflight.first; d !== undefined; d = sub.inflight.first) {
      this.#inflight.remove(d);
      acked.push(d);
      if (d === last) break;
    }
    this.#settleAcked(sub.durable, sub.remote ? acked.length : 0, undefined);
  }

  /** Replies to an ACK line whose deliveries are in `#acked` and settles them (see `ack`). */
  #settleAcked(durable: boolean, remote: number, unknown: number[] | undefined): void {
    const acked = this.#acked;
    const err = unknown === undefined ? undefined : errFrame(
      "UNKNOWN_MSG_ID",
      `msg_id:${unknown.join(" msg_id:")} not in flight on this connection`,
    );
    if (remote > 0) return this.#ackRemote(remote, durable, err);
    const store = this.#broker.options.store;
    if (acked.length > 0 && store.waitsForSync) {
      this.#settleAll();
      const synced = store.synced();
      const saved = durable ? this.#broker.stateSaved() : undefined;
      const both = saved === undefined || synced === undefined
        ? saved ?? synced
        : Promise.all([saved, synced]).then(() => {});
      return this.#replies.okAfter(both, err);
    }
    if (durable) this.#replies.okWhen(this.#broker.stateSaved(), err);
    else this.#replies.okAfter(undefined, err);
    this.#settleAll();
  }

  /**
   * Settles the deliveries of one ACK line, then lets each subscription they
   * belong to (mostly one) send what the freed room allows: one dispatch per
   * line, not one per id.
   */
  #settleAll(): void {
    const acked = this.#acked;
    const subs = this.#subs;
    for (let i = 0; i < acked.length; i++) {
      const d = acked.at(i);
      const sub = d.sub;
      sub.settle(d);
      // Not `subs[subs.length - 1]` on an empty list: index -1 is a property lookup by name
      // (a megamorphic keyed load on Deno, once per ACK line).
      const n = subs.length;
      if (n === 0 || (sub !== subs[n - 1] && !subs.includes(sub))) subs.push(sub);
    }
    acked.clear();
    for (let i = 0; i < subs.length; i++) subs[i].activate();
    subs.length = 0;
  }

  /**
   * An ACK line with deliveries of subscriptions forwarded to a queue's
   * leader: each is settled there, and the reply waits for every answer (and
   * for this node's store, as above, for the local ones among them).
   */
  #ackRemote(remote: number, durable: boolean, err: Uint8Array | undefined): void {
    const acked = this.#acked;
    const store = this.#broker.options.store;
    // The local ones first, so that their REMOVE records are in the tick's batch `synced` waits for.
    for (let i = 0; i < acked.length; i++) {
      if (!acked.at(i).sub.remote) acked.at(i).sub.ack(acked.at(i));
    }
    const local = acked.length - remote;
    const synced = local > 0 && store.waitsForSync ? store.synced() : undefined;
    const saved = durable ? this.#broker.stateSaved() : undefined;
    const waits = (synced === undefined ? 0 : 1) + (saved === undefined ? 0 : 1);
    const reply = this.#replies.waitFor(remote + waits, err);
    for (let i = 0; i < acked.length; i++) {
      if (acked.at(i).sub.remote) acked.at(i).sub.ack(acked.at(i), reply);
    }
    acked.clear();
    const done = () => reply.answer(undefined);
    const failed = (e: unknown) =>
      reply.answer(errFrame("STORE_FAILED", `not stored: ${(e as Error)?.message ?? e}`));
    synced?.then(done, failed);
    saved?.then(done, failed);
  }

  nack(f: NackFrame): void {
    const d = this.#inflight.take(f.id);
    if (d === undefined) {
      const why = this.#recent?.includes(f.id) ? " (delivered without explicit acks)" : "";
      return this.#replies.error(
        "UNKNOWN_MSG_ID",
        `msg_id:${f.id} not in flight on this connection${why}`,
      );
    }
    // Settled at the queue's leader: answered when it answers.
    if (d.sub.remote) return d.sub.nack(d, f.delayMs, this.#replies.waitFor(1, undefined));
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
}
