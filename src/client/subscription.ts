/**
 * Subscriptions: the public {@linkcode Subscription} (an async iterable of
 * messages) and its internal state, {@linkcode SubState}, which the client
 * drives (push, end, purge after a reconnect). Only the client imports
 * `SubState`; `mod.ts` exports the facade alone.
 *
 * @module
 */
import type { AckMode } from "./options.ts";
import { BadArgumentError } from "./errors.ts";
import { Ring } from "../ring.ts";
import { AckWindow } from "./ack_window.ts";
import { type Message, type MessageContext, setSeq } from "./message.ts";

/** Options of {@linkcode Subscription.unsubscribe}. */
export interface UnsubscribeOptions {
  /** Also delete the subscription's durable (durable subscriptions only): its position is forgotten. */
  forget?: boolean;
}

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  /**
   * Sends `UNSUB` (when connected) and resolves on its `OK`; the client stops
   * routing the id then. `forget`: `UNSUB <sid> forget:true`, which deletes the
   * durable (rejects when it cannot be sent).
   */
  unsubscribe(state: SubState, forget?: boolean): Promise<void>;
  /** Drains one subscription, bounded by the client's drain timeout. */
  drain(state: SubState): Promise<void>;
  /** The buffer is full and messages are being dropped (reported once per episode). */
  slowConsumer(state: SubState): void;
  /** A callback threw or rejected. */
  error(err: Error): void;
}

/** Everything the client decides about a new subscription. */
export interface SubStateInit {
  dest: string;
  sid: string;
  ack: AckMode;
  /** The `SUB` line, sent until the broker first confirms it. */
  line: string;
  /** The `SUB` line that renews the subscription after a reconnect (no `start:`). */
  resumeLine: string;
  /** The durable name, if any. */
  durable?: string;
  maxMessages: number;
  maxBytes: number;
  callback?: (msg: Message) => void | Promise<void>;
  host: SubscriptionHost;
}

/** A reader waiting in `next()`: its promise's resolvers (no closure of ours per wait). */
type Waiter = PromiseWithResolvers<IteratorResult<Message>>;

const DONE: IteratorResult<Message> = { done: true, value: undefined };

/** The client's side of one subscription: the bounded buffer, the waiting readers, the settle count. */
export class SubState {
  readonly sub: Subscription;
  readonly dest: string;
  readonly sid: string;
  readonly ack: AckMode;
  readonly line: string;
  readonly resumeLine: string;
  readonly durable: string | undefined;
  /** Resolved by the broker's `OK` to the `SUB` (after a reconnect too), rejected by its `ERR`. */
  readonly confirmed: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  /** Set by the client once created. */
  ctx!: MessageContext;
  /** The deliveries of the current connection, for cumulative acks; null without explicit acks. */
  readonly window: AckWindow | null;
  received = 0;
  dropped = 0;
  /** Explicit-ack messages handed to this subscription and not yet acked or nacked. */
  unsettled = 0;
  /** True once the broker confirmed the subscription (on any connection). */
  subscribed = false;
  /** No more messages are taken (drain of an explicit subscription, or unsubscribed). */
  draining = false;
  #buf = new Ring<Message>();
  #bytes = 0;
  #waiters = new Ring<Waiter>();
  #ended = false;
  #error: Error | undefined;
  #idle: (() => void)[] = [];
  #slow = false;
  #init: SubStateInit;

  /** @param init what the client decided */
  constructor(init: SubStateInit) {
    this.#init = init;
    this.dest = init.dest;
    this.sid = init.sid;
    this.ack = init.ack;
    this.line = init.line;
    this.resumeLine = init.resumeLine;
    this.durable = init.durable;
    this.window = init.ack === "explicit" ? new AckWindow(init.sid) : null;
    this.sub = new Subscription(this);
    // A rejected confirmation nobody awaits (e.g. after a reconnect) is reported elsewhere.
    this.confirmed.promise.catch(() => {});
  }

  /** True once the iterator has ended or will end after its buffer. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Messages buffered, not yet taken by a reader. */
  get pending(): number {
    return this.#buf.length;
  }

  get host(): SubscriptionHost {
    return this.#init.host;
  }

  /** A message arrived for this subscription. */
  push(msg: Message): void {
    // Every delivery is recorded, the ones dropped below too: a cumulative
    // ack must never reach past one the application has not acked.
    if (this.window !== null) setSeq(msg, this.window.deliver(msg.idNum, msg.deliveryCount));
    if (this.#ended || this.draining) return; // the broker requeues what we never ack
    this.received++;
    const cb = this.#init.callback;
    if (cb !== undefined) {
      if (this.ack === "explicit") this.unsettled++;
      this.#call(cb, msg);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      if (this.ack === "explicit") this.unsettled++;
      waiter.resolve({ done: false, value: msg });
      return;
    }
    if (
      this.#buf.length >= this.#init.maxMessages || this.#bytes + msg.size > this.#init.maxBytes
    ) {
      this.dropped++;
      if (!this.#slow) {
        this.#slow = true;
        this.#init.host.slowConsumer(this);
      }
      return;
    }
    if (this.ack === "explicit") this.unsettled++;
    this.#buf.push(msg);
    this.#bytes += msg.size;
  }

  #call(cb: (msg: Message) => void | Promise<void>, msg: Message): void {
    try {
      const r = cb(msg);
      if (r instanceof Promise) r.catch((err) => this.#init.host.error(asError(err)));
    } catch (err) {
      this.#init.host.error(asError(err));
    }
  }

  /** The next message, waiting for one; `done` once ended and the buffer is empty. */
  next(): Promise<IteratorResult<Message>> {
    const msg = this.#buf.shift();
    if (msg !== undefined) {
      this.#bytes -= msg.size;
      if (this.#slow && this.#buf.length < this.#init.maxMessages / 2) this.#slow = false;
      if (this.#buf.length === 0) this.#checkIdle();
      return Promise.resolve({ done: false, value: msg });
    }
    if (this.#ended) {
      const err = this.#error;
      this.#error = undefined; // thrown once, then the iterator is done
      return err ? Promise.reject(err) : Promise.resolve(DONE);
    }
    const waiter: Waiter = Promise.withResolvers();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  /** No more messages will come: readers get the buffer, then `done` (or `error` once). */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    for (const w of this.#waiters.drain()) {
      if (this.#error) {
        w.reject(this.#error);
        this.#error = undefined;
      } else w.resolve(DONE);
    }
    this.#checkIdle();
  }

  /** Ends at once and discards the buffer (unsubscribe, close). */
  abort(error?: Error): void {
    this.#buf.drain();
    this.#bytes = 0;
    this.unsettled = 0;
    this.end(error);
    this.#checkIdle();
  }

  /** After a reconnect: explicit-ack messages of older connections will be redelivered, so drop them. */
  purge(generation: number): void {
    if (this.ack !== "explicit") return;
    this.window?.reset();
    this.#buf.filter((m) => {
      if (m.generation >= generation) return true;
      this.#bytes -= m.size;
      return false;
    });
    this.unsettled = this.#buf.length;
    this.#checkIdle();
  }

  /** One explicit-ack message was acked or nacked. */
  settled(): void {
    if (this.unsettled > 0) this.unsettled--;
    this.#checkIdle();
  }

  /** Resolves once the buffer is empty and (explicit acks) every taken message is settled. */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #isIdle(): boolean {
    return this.#buf.length === 0 && (this.ack === "none" || this.unsettled === 0);
  }

  #checkIdle(): void {
    if (this.#idle.length === 0 || !this.#isIdle()) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * A subscription: iterate it with `for await`; the loop ends cleanly on
 * `unsubscribe()`, `drain()` or the client's `close()`. Leaving the loop with
 * `break` unsubscribes.
 *
 * @example
 * ```ts ignore
 * import { connect } from "../client/mod.ts";
 * const client = await connect("localhost:9092");
 * const sub = await client.subscribe("topic:events.>");
 * for await (const msg of sub) {
 *   console.log(msg.dest, msg.text());
 *   if (sub.received === 10) break;
 * }
 * await client.close();
 * ```
 */
export class Subscription implements AsyncIterable<Message> {
  #s: SubState;

  /** Made by `Client.subscribe`; not meant to be called by users. */
  constructor(state: SubState) {
    this.#s = state;
  }

  /** The destination (pattern) subscribed to. */
  get dest(): string {
    return this.#s.dest;
  }

  /** The subscription id on the wire (`sub_id`). */
  get id(): string {
    return this.#s.sid;
  }

  /** The durable name, for a durable subscription. */
  get durable(): string | undefined {
    return this.#s.durable;
  }

  /** `explicit` or `none`. */
  get ackMode(): AckMode {
    return this.#s.ack;
  }

  /** Messages that arrived for this subscription, dropped ones included. */
  get received(): number {
    return this.#s.received;
  }

  /** Messages dropped because the buffer was full (see `maxPendingMessages`). */
  get dropped(): number {
    return this.#s.dropped;
  }

  /** Messages buffered, not yet taken by the loop. */
  get pending(): number {
    return this.#s.pending;
  }

  /** True once the subscription has ended. */
  get closed(): boolean {
    return this.#s.ended;
  }

  /** The next message (what `for await` calls). */
  next(): Promise<IteratorResult<Message>> {
    return this.#s.next();
  }

  /**
   * Stops the subscription at once: the loop ends, buffered messages are
   * dropped (unacked queue messages go back to the queue). Resolves on the
   * broker's `OK`.
   *
   * A durable subscription keeps its durable (the position is stored for a
   * later subscription with the name) unless `forget: true`, which deletes
   * it. `forget` on a subscription that is not durable rejects with
   * `BadArgumentError` and leaves it running; while the client is
   * reconnecting it rejects with `ConnectionLostError` (the subscription ends,
   * the durable is kept: subscribe with the name again to forget it).
   *
   * @example
   * ```ts ignore
   * const sub = await client.subscribe("topic:orders", { durable: "billing" });
   * await sub.unsubscribe({ forget: true }); // the durable "billing" is gone
   * ```
   */
  unsubscribe(options: UnsubscribeOptions = {}): Promise<void> {
    const s = this.#s;
    const forget = options.forget === true;
    if (forget && s.durable === undefined) {
      return Promise.reject(
        new BadArgumentError(`forget: subscription ${s.sid} is not durable`),
      );
    }
    if (s.ended && s.draining && !forget) return Promise.resolve();
    s.draining = true;
    s.abort();
    return s.host.unsubscribe(s, forget);
  }

  /**
   * Stops taking new messages, lets the loop process and settle what it has,
   * then unsubscribes; resolves when the loop is done.
   */
  drain(): Promise<void> {
    return this.#s.host.drain(this.#s);
  }

  /** `for await` support; `break` unsubscribes. */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => this.#s.next(),
      return: () => {
        if (!this.#s.ended) this.unsubscribe().catch(() => {});
        return Promise.resolve(DONE);
      },
    };
  }
}
