/**
 * What every subscription is, whatever it subscribes to: the contract the
 * connection, the broker and the stats use (activate, deliver, settle, expire,
 * close, stats), and the parts queue consumers and topic subscriptions share
 * (options, prefetch room, the in-flight list, ack deadlines).
 *
 * @module
 */
import type { Filter } from "../filter/mod.ts";
import type { Message } from "../storage/mod.ts";
import { Delivery, DeliveryList } from "./inflight.ts";
import type { SubscriptionStats } from "./stats.ts";
import type { Binding } from "./topic.ts";
import type { Client } from "./types.ts";

/** Per-subscription settings, resolved against the broker's defaults. */
export interface SubscriptionOptions {
  /** Whether deliveries wait for ACK/NACK (`ack:explicit`). */
  explicit: boolean;
  /** Most deliveries in flight at once (explicit acks only). */
  prefetch: number;
  /** Time a delivery may stay unsettled before it is redelivered. */
  ackTimeoutMs: number;
  /** `filter:`: only messages it selects are delivered (compiled once, by the parser). */
  filter?: { source: string; match: Filter };
}

/**
 * A reply that waits on answers from elsewhere: a settle of a delivery made
 * on another node (a `RemoteSubscription`'s ACK/NACK travels to the queue's
 * leader). Each settled delivery answers once; the reply goes when all did.
 */
export interface ReplyWait {
  /** One answer: undefined for OK, else the `ERR` line (the first error is the reply). */
  answer(err: Uint8Array | undefined): void;
}

/** `Subscription.flags`: deliveries wait for ACK/NACK (`ack:explicit`). */
const EXPLICIT = 1;
/** The first bit of `Subscription.flags` a subclass may use. */
export const FLAGS_FREE = 2;

/** The in-flight list of every subscription that never had one (48 B each). Never pushed to. */
const NO_DELIVERIES = new DeliveryList();

/**
 * The last options without a filter seen with `explicit` false and true:
 * subscriptions with the same settings (nearly all: the server's defaults)
 * share one frozen object instead of three fields each.
 */
const lastOptions: [SubscriptionOptions | undefined, SubscriptionOptions | undefined] = [
  undefined,
  undefined,
];

/** `o`, or an equal object already shared (one without a filter: a filter is each subscription's own). */
function shared(o: SubscriptionOptions): SubscriptionOptions {
  if (o.filter !== undefined) return o;
  const i = o.explicit ? 1 : 0;
  const last = lastOptions[i];
  if (last !== undefined && last.prefetch === o.prefetch && last.ackTimeoutMs === o.ackTimeoutMs) {
    return last;
  }
  return lastOptions[i] = Object.freeze({
    explicit: o.explicit,
    prefetch: o.prefetch,
    ackTimeoutMs: o.ackTimeoutMs,
  });
}

/** A subscription of one connection: a queue consumer or a topic subscription (or one made on another node). */
export abstract class Subscription {
  readonly sid: string;
  readonly client: Client;
  /**
   * `EXPLICIT`, and from `FLAGS_FREE` up its kind's own bits (a topic
   * subscription's state): one number rather than a field each, so that an
   * exact subscription that holds its own topic (see topic_solo.ts) is 12
   * fields, under one of Bun's object size classes (JSC: 9-12 fields 112 B,
   * 13-16 160 B).
   */
  protected flags: number;
  /** Its settings, shared with the subscriptions that have the same (see `shared`). */
  readonly #o: SubscriptionOptions;
  /**
   * Its deliveries in flight, oldest first (also indexed by id in
   * `client.inflight`). Shared and empty until its first delivery that waits
   * for a settle (see `hold`): most subscriptions never have one.
   */
  inflight: DeliveryList = NO_DELIVERIES;
  /** Messages sent to it (a queue's redeliveries included: each is a new take from the queue). */
  delivered = 0;
  /** Its selector, undefined without a `filter` (a field: the fan-out asks it per message). */
  readonly filter: Filter | undefined;

  constructor(sid: string, client: Client, o: SubscriptionOptions) {
    this.sid = sid;
    this.client = client;
    this.flags = o.explicit ? EXPLICIT : 0;
    this.#o = shared(o);
    this.filter = o.filter?.match;
  }

  /** Whether deliveries wait for ACK/NACK (`ack:explicit`). */
  get explicit(): boolean {
    return (this.flags & EXPLICIT) !== 0;
  }

  /** Most deliveries in flight at once (explicit acks only). */
  get prefetch(): number {
    return this.#o.prefetch;
  }

  /** Time a delivery may stay unsettled before it is redelivered. */
  get ackTimeoutMs(): number {
    return this.#o.ackTimeoutMs;
  }

  /** The selector as given (for stats). */
  get filterSource(): string | undefined {
    return this.#o.filter?.source;
  }

  /** Appends a delivery in flight to `inflight`, made first if it is still the shared empty one. */
  hold(d: Delivery): void {
    if (this.inflight === NO_DELIVERIES) this.inflight = new DeliveryList();
    this.inflight.push(d);
  }

  /** The subscribed queue, topic or topic pattern. */
  abstract readonly destination: string;

  /** Whether its ACKs move a stored position (a durable topic subscription): answered once stored. */
  get durable(): boolean {
    return false;
  }

  /**
   * Whether its settles are answered elsewhere (a subscription forwarded to
   * the queue's leader): the connection then hands `ack`/`nack` a
   * `ReplyWait`, and the reply waits for the leader's answer.
   */
  get remote(): boolean {
    return false;
  }

  /** Whether it takes another message now. */
  hasRoom(): boolean {
    return this.client.wantsMore() && (!this.explicit || this.inflight.size < this.prefetch);
  }

  /** Starts or resumes deliveries (after its OK, or when the connection drained). */
  abstract activate(): void;

  /**
   * Settles a delivery the connection took out of flight for an ACK, and
   * sends what the room it frees allows (`reply`: when `remote`).
   */
  abstract ack(d: Delivery, reply?: ReplyWait): void;

  /**
   * `ack` without sending more: a connection settling a whole ACK line (up
   * to `ACK_IDS_MAX` ids) calls `activate()` once after the last, instead of
   * a dispatch per id. A subscription that sends nothing on a settle (or
   * settles elsewhere) needs no other: this is `ack`.
   */
  settle(d: Delivery): void {
    this.ack(d);
  }

  /** Gives back a delivery the connection took out of flight for a NACK (`delayMs` 0: now). */
  abstract nack(d: Delivery, delayMs: number, reply?: ReplyWait): void;

  /** Ends it: its deliveries in flight go back; with `forget`, a durable's position is deleted. */
  abstract close(forget: boolean): void;

  /**
   * Its connection's user got new permissions (the connection has already
   * closed it if its destination is no longer allowed): a wildcard topic
   * subscription re-decides its topics; nothing else needs to.
   */
  permissionsChanged(): void {}

  /** Its figures for the admin API. */
  abstract stats(): SubscriptionStats;

  /** What to do with deliveries whose ack deadline passed, oldest first (they are out of flight). */
  protected abstract expired(ds: Delivery[]): void;

  /** Redelivers deliveries unsettled past the ack timeout; returns how many. */
  expireAcks(now: number): number {
    const first = this.inflight.first;
    if (first === undefined || first.at + this.ackTimeoutMs > now) return 0;
    const all = this.client.inflight;
    const ds: Delivery[] = [];
    for (let d = this.inflight.first; d !== undefined; d = this.inflight.first) {
      if (d.at + this.ackTimeoutMs > now) break;
      all.remove(d);
      ds.push(d);
    }
    this.expired(ds);
    return ds.length;
  }

  /** Writes one MSG; with explicit acks it becomes a delivery in flight. */
  protected send(
    head: Uint8Array,
    msg: Message,
    count: number,
    binding: Binding | undefined,
    now: number,
  ): void {
    this.client.sendMsg(head, msg, count);
    this.delivered++;
    if (this.explicit) this.client.inflight.add(new Delivery(msg, this, binding, count, now));
    else this.client.delivered(msg.id);
  }

  /** Sends a topic delivery again (a redelivery, not counted in `delivered`), in flight once more. */
  protected resend(d: Delivery, head: Uint8Array, now: number): void {
    d.count++;
    d.at = now;
    this.client.sendMsg(head, d.msg, d.count);
    this.client.inflight.add(d);
  }

  /** Takes every delivery out of flight; returns them oldest first. */
  protected takeAll(): Delivery[] {
    const ds = this.inflight.toArray();
    for (const d of ds) this.client.inflight.remove(d);
    return ds;
  }
}
