/**
 * The one record of what is in flight: every message delivered with explicit
 * acks and not yet settled is one `Delivery`. A connection's `InFlight` finds
 * a delivery by message id (an `ACK` names only the id); each subscription
 * chains its own deliveries oldest first in a `DeliveryList`, which gives its
 * prefetch room (`size`) and its ack deadlines (walk from the oldest, stop at
 * the first not yet due). Both views hold the same objects, so they cannot
 * disagree, and a settle is one map delete and one unlink.
 *
 * @module
 */
import { assert } from "../assert.ts";
import type { Message } from "../storage/mod.ts";
import { IdMap } from "./id_map.ts";
import type { Subscription } from "./subscription.ts";
import type { Binding } from "./topic.ts";

/** One message in flight to one subscription, awaiting ACK or NACK. */
export class Delivery {
  prev: Delivery | undefined = undefined;
  next: Delivery | undefined = undefined;
  /**
   * The next delivery of the same message id on the same connection (two
   * subscriptions of one connection matching one topic message): each MSG
   * takes its own ACK, oldest first.
   */
  twin: Delivery | undefined = undefined;
  constructor(
    readonly msg: Message,
    readonly sub: Subscription,
    /** The topic binding it came through; undefined for a queue delivery. */
    readonly binding: Binding | undefined,
    /** Deliveries of the message to this subscription, this one included. */
    public count: number,
    /** When it was (last) sent, epoch ms: its ack deadline is `at + ackTimeoutMs`. */
    public at: number,
  ) {}
}

/** A subscription's deliveries in the order they were sent (an intrusive list: no node objects). */
export class DeliveryList {
  first: Delivery | undefined = undefined;
  last: Delivery | undefined = undefined;
  size = 0;

  /** Appends `d` as the newest. */
  push(d: Delivery): void {
    d.prev = this.last;
    d.next = undefined;
    if (this.last === undefined) this.first = d;
    else this.last.next = d;
    this.last = d;
    this.size++;
  }

  /** Unlinks `d`, which must be in this list. */
  unlink(d: Delivery): void {
    if (d.prev === undefined) this.first = d.next;
    else d.prev.next = d.next;
    if (d.next === undefined) this.last = d.prev;
    else d.next.prev = d.prev;
    d.prev = d.next = undefined;
    this.size--;
  }

  /** The deliveries, oldest first (a copy: callers may settle while iterating). */
  toArray(): Delivery[] {
    const out: Delivery[] = [];
    for (let d = this.first; d !== undefined; d = d.next) out.push(d);
    return out;
  }
}

/** A connection's subscriptions as `InFlight` reads them (a `Map`'s or an array's `values`). */
export interface SubscriptionsView {
  values(): Iterable<Subscription>;
}

/**
 * A connection's deliveries by message id.
 *
 * Given its connection's subscriptions (`subs`), it indexes queue deliveries
 * only once an id is first looked up: a consumer that only ever ACKs
 * cumulatively (`ACK sub_id:<sid> upto:<id>`) walks its subscription's list
 * and never names an id, and setting and taking every id in the index was
 * ~6% of the server's samples under the queue bench with `--ack upto`. The
 * first lookup by id (an ACK or NACK of ids; a cluster redelivery check)
 * indexes what is in flight, from the subscriptions' lists, and from then on
 * every delivery is indexed as it comes. Topic deliveries are always indexed
 * (their twins are found through it); a queue delivery is never a twin.
 */
export class InFlight {
  #byId = new IdMap<Delivery>();
  /**
   * The connection's subscriptions, whose lists hold every delivery in flight
   * here (its map itself: a closure over it was ~0.1 KiB per connection).
   */
  #subs: SubscriptionsView | undefined;
  /** Whether every delivery is in `#byId` (from the first lookup by id on; always without `subs`). */
  #indexed: boolean;
  /** Queue deliveries in flight that are not in `#byId` (before `#indexed`). */
  #unindexed = 0;
  /** The subscription `#oldest` last found a delivery at the head of. */
  #lastSub: Subscription | undefined = undefined;

  constructor(subs?: SubscriptionsView) {
    this.#subs = subs;
    this.#indexed = subs === undefined;
  }

  /** Deliveries in flight on the connection. */
  get size(): number {
    return this.#byId.size + this.#unindexed;
  }

  /** Indexes the queue deliveries in flight, and every one from now on (a lookup by id came). */
  #index(): void {
    this.#indexed = true;
    if (this.#unindexed === 0) return;
    for (const sub of this.#subs!.values()) {
      for (let d = sub.inflight.first; d !== undefined; d = d.next) {
        if (d.binding === undefined) this.#byId.set(d.msg.id, d);
      }
    }
    this.#unindexed = 0;
  }

  /** Records a delivery, newest in its subscription's list. */
  add(d: Delivery): void {
    if (!this.#indexed && d.binding === undefined) {
      this.#unindexed++;
      d.sub.hold(d);
      return;
    }
    const id = d.msg.id;
    // A queue message is in flight once at most (it is out of flight before it
    // is given back), so only a topic delivery can have a twin: one lookup less.
    let t = d.binding === undefined ? undefined : this.#byId.get(id);
    if (t === undefined) this.#byId.set(id, d);
    else {
      while (t.twin !== undefined) t = t.twin;
      t.twin = d;
    }
    d.sub.hold(d);
  }

  /** Gives back index memory a burst of deliveries left (an idle connection). */
  trim(): void {
    this.#byId.trim();
    this.#lastSub = undefined; // it may have ended since: no reason to keep it reachable
  }

  /** Whether a delivery of message `id` is in flight here. */
  has(id: number): boolean {
    if (!this.#indexed) this.#index();
    return this.#byId.get(id) !== undefined;
  }

  /** The delivery of message `id` to `sub`, if it is in flight here. */
  find(id: number, sub: Subscription): Delivery | undefined {
    if (!this.#indexed) this.#index();
    let t = this.#byId.get(id);
    while (t !== undefined && t.sub !== sub) t = t.twin;
    return t;
  }

  /** Removes and returns the (oldest) delivery of message `id`, if it is in flight here. */
  take(id: number): Delivery | undefined {
    if (!this.#indexed) {
      const d = this.#oldest(id);
      if (d !== undefined) return d;
      this.#index();
    }
    const d = this.#byId.take(id);
    if (d === undefined) return undefined;
    if (d.twin !== undefined) {
      this.#byId.set(id, d.twin);
      d.twin = undefined;
    }
    d.sub.inflight.unlink(d);
    return d;
  }

  /**
   * Before the index is built: the queue delivery of `id` when it is the
   * oldest in flight to its subscription (the subscription of the last one
   * found first), taken out of flight. A consumer that acks in the order
   * it was sent (most do, one ACK line of ids per read) names only such
   * ids, and its deliveries then never go through the index (setting and
   * taking each id there was ~7% of the server under the queue bench with
   * ACK lines of ids). A queue message is in flight once at most, so the
   * one at a list's head is the one.
   */
  #oldest(id: number): Delivery | undefined {
    let sub = this.#lastSub;
    let d = sub?.inflight.first;
    if (d === undefined || d.msg.id !== id || d.binding !== undefined) {
      d = undefined;
      for (const s of this.#subs!.values()) {
        const first = s.inflight.first;
        if (first !== undefined && first.msg.id === id && first.binding === undefined) {
          sub = this.#lastSub = s;
          d = first;
          break;
        }
      }
      if (d === undefined) return undefined;
    }
    this.#unindexed--;
    sub!.inflight.unlink(d);
    return d;
  }

  /** Removes `d` (it is in flight here). */
  remove(d: Delivery): void {
    const id = d.msg.id;
    if (!this.#indexed && d.binding === undefined) {
      this.#unindexed--;
      d.sub.inflight.unlink(d);
      return;
    }
    if (d.binding === undefined && d.twin === undefined) {
      // A queue delivery is never added as a twin (see `add`): the head of its id, one probe.
      const t = this.#byId.take(id);
      if (t !== d) assert(false, `queue delivery of ${id} is not in flight on this connection`);
      d.sub.inflight.unlink(d);
      return;
    }
    const head = this.#byId.get(id);
    if (head === d) {
      if (d.twin === undefined) this.#byId.delete(id);
      else this.#byId.set(id, d.twin);
    } else {
      let t = head;
      while (t !== undefined && t.twin !== d) t = t.twin;
      assert(t !== undefined, () => `delivery of ${id} is not in flight on this connection`);
      t.twin = d.twin;
    }
    d.twin = undefined;
    d.sub.inflight.unlink(d);
  }
}
