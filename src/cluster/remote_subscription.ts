/**
 * `RemoteSubscription`: a client's subscription to a queue led by another
 * node. The SUB was forwarded to the leader over an upstream proxy
 * connection; the leader's deliveries come back on it and are sent to the
 * client as this subscription's, each registered in the client connection's
 * `InFlight` like any other, so the connection's ACK/NACK path does not
 * change: a settle travels back to the leader with the leader's id.
 *
 * **Ids.** Every node makes ids from its own clock (`ms * 1024 + seq`), so
 * two leaders can hand one client the same id. A delivery keeps the leader's
 * id unless that id is already in flight on the client connection; then it
 * gets a fresh local one (counted down from 2^53 - 1, far above any id a
 * clock makes), and the settle maps it back.
 *
 * @module
 */
import {
  type Client,
  Delivery,
  IdMap,
  type ReplyWait,
  Subscription,
  type SubscriptionStats,
} from "../broker/mod.ts";
import type { MsgFrame } from "../client/mod.ts";
import { msgHead, type SubOptions } from "../protocol/mod.ts";
import { Message } from "../storage/mod.ts";

/** What a remote subscription needs of its upstream connection. */
export interface UpstreamPort {
  /** The node it leads to. */
  readonly node: string;
  ack(upstreamId: number, clientId: number, reply: ReplyWait): void;
  nack(upstreamId: number, clientId: number, delayMs: number, reply: ReplyWait): void;
  unsub(sid: string, forget: boolean): void;
  /** The client connection drained: read on (deliveries were paused while it was full). */
  resume(): void;
}

/** Hands out client-visible ids for deliveries whose leader's id is taken on the connection. */
export interface IdSource {
  /** A fresh id, not in flight on the connection. */
  freshId(): number;
}

/** A delivery from the leader: its id there, for the settle. */
export class RemoteDelivery extends Delivery {
  constructor(
    msg: Message,
    sub: Subscription,
    count: number,
    at: number,
    readonly upstreamId: number,
  ) {
    super(msg, sub, undefined, count, at);
  }
}

/** A subscription made at the queue's leader (see the module comment). */
export class RemoteSubscription extends Subscription {
  readonly destination: string;
  /**
   * The SUB's options as the client gave them: sent again when the
   * subscription is re-made (a declared topic's replay then starts where it
   * was: `resumePoint`).
   */
  options: SubOptions;
  /** The upstream it lives on; undefined while it is being re-made at a new leader. */
  upstream: UpstreamPort | undefined = undefined;
  /** Ended by the client (UNSUB, close): nothing more is made or delivered. */
  closed = false;
  /** Being re-made at a new leader. */
  remaking = false;
  /** The broker chose its sub id (the client's `OK` names it). */
  chosen = false;
  /** While it is being re-made: when to give up (epoch ms); 0 once made. */
  giveUpAt = 0;
  readonly #head: Uint8Array;
  readonly #ids: IdSource;
  /** Deliveries in flight, by the leader's id (a redelivery of one replaces it). */
  #byUpstream = new IdMap<RemoteDelivery>();
  /** The largest leader's id delivered (-1: none yet). */
  #lastUid = -1;

  constructor(client: Client, dest: string, sid: string, options: SubOptions, ids: IdSource) {
    // Prefetch and ack timeout are the leader's to enforce; these are for the stats.
    super(sid, client, {
      // As the leader has it: a queue's acks are explicit unless `ack:none`; a declared topic's
      // replay's only with `ack:explicit` or a durable (topic_leader.ts).
      explicit: dest.startsWith("queue:")
        ? options.ack !== "none"
        : options.durable !== undefined || options.ack === "explicit",
      prefetch: options.prefetch ?? 0,
      ackTimeoutMs: options.ackTimeoutMs ?? 0,
      filter: options.filter,
    });
    this.destination = dest;
    this.options = options;
    this.#head = msgHead(dest, sid);
    this.#ids = ids;
  }

  override get remote(): boolean {
    return true;
  }

  /** A declared topic's durable at its leader (its `UNSUB ... forget:true` is forwarded there). */
  override get durable(): boolean {
    return this.options.durable !== undefined;
  }

  /** One MSG from the leader, sent on to the client (and in flight there, with explicit acks). */
  deliver(f: MsgFrame, now: number): void {
    const uid = f.idNum;
    if (uid < 0 || this.closed) return;
    if (uid > this.#lastUid) this.#lastUid = uid;
    const client = this.client;
    if (!this.explicit) {
      this.#send(uid, f, now);
      return client.delivered(uid);
    }
    // A redelivery (the leader's ack timeout) of one still in flight here: the old one goes.
    let id = uid;
    const old = this.#byUpstream.get(uid);
    if (old !== undefined) {
      client.inflight.remove(old);
      id = old.msg.id;
    } else if (client.inflight.has(uid)) id = this.#ids.freshId();
    const d = new RemoteDelivery(this.#send(id, f, now), this, f.delivery, now, uid);
    this.#byUpstream.set(uid, d);
    client.inflight.add(d);
  }

  #send(id: number, f: MsgFrame, now: number): Message {
    const msg = new Message(
      id,
      this.destination,
      f.payload,
      f.hdrLen,
      f.priority,
      f.ttlMs ?? 0,
      0,
      f.correlationId,
      f.replyTo,
      f.contentType,
      now,
    );
    this.client.sendMsg(this.#head, msg, f.delivery);
    this.delivered++;
    return msg;
  }

  activate(): void {
    this.upstream?.resume();
  }

  ack(d: Delivery, reply?: ReplyWait): void {
    const r = d as RemoteDelivery;
    this.#byUpstream.delete(r.upstreamId);
    if (this.upstream === undefined) return reply?.answer(gone(d.msg.id));
    this.upstream.ack(r.upstreamId, d.msg.id, reply!);
  }

  nack(d: Delivery, delayMs: number, reply?: ReplyWait): void {
    const r = d as RemoteDelivery;
    this.#byUpstream.delete(r.upstreamId);
    if (this.upstream === undefined) return reply?.answer(gone(d.msg.id));
    this.upstream.nack(r.upstreamId, d.msg.id, delayMs, reply!);
  }

  close(forget: boolean): void {
    this.closed = true;
    this.upstream?.unsub(this.sid, forget);
    this.detach();
  }

  /**
   * Its upstream broke (or it is closed): its deliveries leave the client's
   * in-flight index (their ACKs are then those of unknown ids: the leader, or
   * the next one, gives the messages out again).
   */
  detach(): void {
    this.#resumePoint();
    this.upstream = undefined;
    this.takeAll();
    this.#byUpstream = new IdMap();
  }

  /**
   * A declared topic's replay (`start:`, not a durable: the leader keeps a
   * durable's position) re-made at the next leader starts at its oldest
   * unacked delivery, or after the last one delivered: replicated messages
   * keep their ids on every replica, so the client gets neither a second
   * copy of what it has nor a gap.
   */
  #resumePoint(): void {
    const o = this.options;
    if (o.start === undefined || o.durable !== undefined || this.#lastUid < 0) return;
    let from = this.#lastUid + 1;
    for (const d of this.#byUpstream.values()) from = Math.min(from, d.upstreamId);
    this.options = { ...o, start: { kind: "id", id: from } };
  }

  stats(): SubscriptionStats {
    const s: SubscriptionStats = {
      sid: this.sid,
      destination: this.destination,
      ack: this.explicit ? "explicit" : "none",
      prefetch: this.prefetch,
      inflight: this.inflight.size,
      delivered: this.delivered,
    };
    if (this.filterSource !== undefined) s.filter = this.filterSource;
    return s;
  }

  protected expired(_ds: Delivery[]): void {
    // Never called: the leader keeps the ack deadlines of its deliveries.
  }
}

const encoder = new TextEncoder();

/** The ERR of a settle whose upstream is gone (as for an id not in flight). */
function gone(id: number): Uint8Array {
  return encoder.encode(
    `ERR UNKNOWN_MSG_ID msg_id:${id} not in flight on this connection (its queue's leader went)\r\n`,
  );
}
