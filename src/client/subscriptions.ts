/**
 * The client's subscriptions, which outlive connections: subscribing,
 * renewing them on every new link, unsubscribing, draining, and settling
 * (ack/nack) each message on the link that delivered it.
 *
 * Who owns what: {@linkcode Subscriptions} owns the map of subscriptions by
 * `sub_id`; each {@linkcode SubState} owns its buffer and settle count; the
 * current link (asked for, never kept) carries the commands.
 *
 * @module
 */
import type { AckMode, PublishOptions, SubWireOptions } from "./options.ts";
import { checkSubscribe, nackLine, subLine, unsubLine } from "./sub_lines.ts";
import {
  ConnectionClosedError,
  ConnectionLostError,
  DuplicateSubIdError,
  UnknownSubIdError,
} from "./errors.ts";
import * as L from "./limits.ts";
import { type Link, Reply } from "./link.ts";
import { type Message, type MessageContext, RESOLVED, seqOf } from "./message.ts";
import type { StatusHub } from "./status.ts";
import { type Subscription, type SubscriptionHost, SubState } from "./subscription.ts";
import { withTimeout } from "./timeout.ts";

/** Options of `Client.subscribe`. */
export interface SubscribeOptions extends SubWireOptions {
  /** Messages buffered before the subscription drops and reports `slow_consumer` (default 65536). */
  maxPendingMessages?: number;
  /** Payload bytes buffered before it drops and reports `slow_consumer` (default 64 MiB). */
  maxPendingBytes?: number;
  /** Handle messages in a callback instead of iterating (no buffer; errors go to the status stream). */
  callback?: (msg: Message) => void | Promise<void>;
}

/** What the subscriptions need from their client. */
export interface SubscriptionsHost {
  /** The link that is up, or null while reconnecting. */
  link(): Link | null;
  /** Publishes (for `msg.respond()`). */
  publish(dest: string, body: Uint8Array | string, opts?: PublishOptions): Promise<string>;
  /** Where slow-consumer and error events go. */
  readonly status: StatusHub;
  /** Longest `sub.drain()`. */
  readonly drainTimeoutMs: number;
}

/** Every subscription of one client, by `sub_id`. */
export class Subscriptions {
  #subs = new Map<string, SubState>();
  #nextSid = 1;
  #host: SubscriptionsHost;

  /** @param host the client */
  constructor(host: SubscriptionsHost) {
    this.#host = host;
  }

  /** The subscription with this id, if any. */
  get(sid: string): SubState | undefined {
    return this.#subs.get(sid);
  }

  /** Subscribes; resolves once the broker answered `OK` (see `Client.subscribe`). */
  async subscribe(dest: string, options: SubscribeOptions): Promise<Subscription> {
    const ack: AckMode = checkSubscribe(dest, options);
    const sid = options.subId ?? this.#freeSid();
    if (this.#subs.has(sid)) throw new DuplicateSubIdError(`sub_id ${sid} is in use`);
    const state = new SubState({
      dest,
      sid,
      ack,
      line: subLine(dest, sid, ack, options),
      resumeLine: subLine(dest, sid, ack, options, true),
      durable: options.durable,
      maxMessages: options.maxPendingMessages ?? L.SUB_BUFFER_MESSAGES_MAX,
      maxBytes: options.maxPendingBytes ?? L.SUB_BUFFER_BYTES_MAX,
      callback: options.callback,
      host: this.#subHost,
    });
    state.ctx = this.#messageContext(state);
    this.#subs.set(sid, state);
    const link = this.#host.link();
    if (link !== null) this.#send(link, state);
    try {
      await state.confirmed.promise;
    } catch (err) {
      if (this.#subs.get(sid) === state) this.#subs.delete(sid);
      state.abort();
      throw err;
    }
    return state.sub;
  }

  #freeSid(): string {
    for (;;) {
      const sid = `s${this.#nextSid++}`;
      if (!this.#subs.has(sid)) return sid;
    }
  }

  /** A new link: every live subscription is sent again (same `sub_id`), ended ones are dropped. */
  renew(link: Link): void {
    for (const [sid, s] of this.#subs) {
      if (s.ended) this.#subs.delete(sid);
      else this.#send(link, s);
    }
  }

  /** The link dropped: buffered explicit-ack messages go (the broker redelivers them), draining ones end. */
  dropped(link: Link): void {
    for (const [sid, s] of this.#subs) {
      s.purge(link.gen + 1); // the broker gives unacked messages back; they will be redelivered
      if (s.draining) {
        s.abort();
        this.#subs.delete(sid);
      }
    }
  }

  /** Drains every subscription but `except` (the request inbox, drained last by the client). */
  async drainAll(except: Subscription | null): Promise<void> {
    const subs = [...this.#subs.values()].filter((s) => s.sub !== except);
    await Promise.allSettled(subs.map((s) => this.#drain(s)));
  }

  /** The client closed: `subscribe()` calls still waiting reject with `err`, every loop ends. */
  closeAll(err: Error): void {
    for (const s of this.#subs.values()) {
      s.confirmed.reject(err);
      if (s.ack === "explicit") s.abort();
      else s.end();
    }
    this.#subs.clear();
  }

  #send(link: Link, s: SubState): void {
    // Once confirmed, renewals leave `start` out: a durable resumes at its
    // stored position; a plain replay must not replay its history again.
    link.send(s.subscribed ? s.resumeLine : s.line, {
      kind: Reply.OK,
      resolve: () => {
        s.subscribed = true;
        s.confirmed.resolve();
      },
      reject: (err) => {
        if (err instanceof ConnectionLostError) return; // renewed on the next connection
        if (this.#subs.get(s.sid) === s) this.#subs.delete(s.sid);
        if (!s.subscribed) {
          s.confirmed.reject(err); // subscribe() rejects
          return;
        }
        // A renewal after a reconnect that the broker refused: the loop ends with its error.
        s.end(err);
        this.#host.status.emit({ type: "error", error: err });
      },
    });
  }

  #unsubscribe(s: SubState, forget = false): Promise<void> {
    const link = this.#host.link();
    if (this.#subs.get(s.sid) !== s) {
      if (!forget) return Promise.resolve();
      return Promise.reject(
        new UnknownSubIdError(
          `subscription ${s.sid} has already ended; subscribe with durable ${s.durable} again to forget it`,
        ),
      );
    }
    if (link === null) {
      this.#subs.delete(s.sid);
      if (!forget) return Promise.resolve();
      return Promise.reject(
        new ConnectionLostError(
          `Not connected; durable ${s.durable} was not forgotten (subscribe with it again to forget it)`,
        ),
      );
    }
    return link.command(unsubLine(s.sid, forget)).then(
      () => {
        if (this.#subs.get(s.sid) === s) this.#subs.delete(s.sid);
      },
      (err) => {
        if (this.#subs.get(s.sid) === s) this.#subs.delete(s.sid);
        if (
          forget ||
          !(err instanceof ConnectionLostError || err instanceof ConnectionClosedError)
        ) {
          throw err;
        }
      },
    );
  }

  async #drain(s: SubState): Promise<void> {
    // Explicit acks: take nothing new (the broker requeues what we never ack),
    // wait until every message taken is settled, then unsubscribe. No acks:
    // unsubscribe first; what arrived before the broker's OK is still handed out.
    if (s.ack === "explicit") {
      s.draining = true;
      await s.whenIdle();
    }
    await this.#unsubscribe(s).catch(() => {});
    s.end();
    await s.whenIdle();
  }

  #subHost: SubscriptionHost = {
    unsubscribe: (s, forget) => this.#unsubscribe(s, forget),
    drain: async (s) => {
      if (s.ended) return;
      try {
        await withTimeout(this.#drain(s), this.#host.drainTimeoutMs);
      } catch (err) {
        s.abort();
        await this.#unsubscribe(s).catch(() => {});
        throw err;
      }
    },
    slowConsumer: (s) =>
      this.#host.status.emit({
        type: "slow_consumer",
        subId: s.sid,
        dest: s.dest,
        dropped: s.dropped,
      }),
    error: (err) => this.#host.status.emit({ type: "error", error: err }),
  };

  #messageContext(s: SubState): MessageContext {
    const w = s.window;
    return {
      explicit: s.ack === "explicit",
      ack: (msg, confirm) => {
        if (w === null) return RESOLVED;
        const link = this.#usableFor(s, msg);
        if (link === null) return staleSettle(msg, confirm);
        // The common case: the window takes it, the link writes it (an `upto`
        // when in order) with the next write. No promise, no string.
        if (!confirm && w.ack(seqOf(msg))) {
          link.ackLater(w, s.pending > 0);
          return RESOLVED;
        }
        // By id (confirmed: its own answer; or not recorded): written before
        // any `upto` of the same write, so no `upto` can settle it first.
        w.settled(seqOf(msg));
        return link.ack(msg.id, confirm);
      },
      nack: (msg, delayMs, confirm) => {
        if (w === null) return RESOLVED;
        let line: string;
        try {
          line = nackLine(msg.id, delayMs);
        } catch (err) {
          return Promise.reject(err);
        }
        const link = this.#usableFor(s, msg);
        if (link === null) return staleSettle(msg, confirm);
        let done = RESOLVED;
        if (confirm) done = link.command(line).then(() => {});
        else link.sendReported(line);
        // Only now: the acks before it are written, so no `upto` among them passes it.
        w.settled(seqOf(msg));
        return done;
      },
      publish: (dest, body, opts) => this.#host.publish(dest, body, opts),
    };
  }

  /** The link to settle `msg` on, counting the settle; null when the connection that delivered it is gone. */
  #usableFor(s: SubState, msg: Message): Link | null {
    const link = this.#host.link();
    if (link === null || link.gen !== msg.generation) return null;
    s.settled();
    return link;
  }
}

/** Settling a message whose connection is gone: nothing to do, but a caller who asked to confirm hears why. */
function staleSettle(msg: Message, confirm: boolean): Promise<void> {
  if (!confirm) return RESOLVED;
  return Promise.reject(
    new ConnectionLostError(
      `Message ${msg.id} was delivered on a connection that is gone; the broker redelivers it`,
    ),
  );
}
