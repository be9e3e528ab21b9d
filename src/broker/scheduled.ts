/**
 * Scheduled messages (`PUB ... delay:<ms>` / `deliver_at:`). A queue holds
 * its own as delayed messages of its store (the store's due-time heap is the
 * time index, O(log n) insert); this file knows which queues hold some, and
 * asks its owner (the server) for one wake-up at the earliest due time
 * (`onDue`), when `fire()` makes every due one visible.
 *
 * Scheduled topic messages, of every topic, are held as delayed messages of
 * one store queue, `$relayr.scheduled` (a log on disk with the log store, so
 * they survive a restart and `kill -9`), each with its payload wrapped in a
 * binary envelope that carries its topic (protocol/envelope.ts): one log
 * file and one fsync per tick for all of them, whatever the number or the
 * length of the topic names. When due, each is published to its topic, to
 * the subscribers present then, and removed from the store queue. The REMOVE
 * reaches the operating system before the MSG reaches a socket
 * (`Store.writePending` runs before every write), so a crash never
 * publishes one twice; a broker that was down publishes the overdue ones at
 * start: late, never early, never lost.
 *
 * @module
 */
import { decodeEnvelope, encodeEnvelope } from "../protocol/mod.ts";
import type { Message, QueueStore, Store } from "../storage/mod.ts";
import { copyOf } from "./messages.ts";
import type { Queue } from "./queue.ts";
import { BrokerError } from "./types.ts";

/** The store queue of scheduled topic messages (`$` is no name character: no client can use it). */
export const SCHEDULED_QUEUE = "$relayr.scheduled";

/** What the scheduled topic messages need from the broker. */
export interface ScheduledHost {
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  /**
   * Publishes a due message to `topic`: `msg` has its fields, `payload` its
   * payload (both the store's, released after the call: copy what is kept);
   * `unrouted`: a peer's message, whose bindings its own node applied.
   */
  fire(topic: string, msg: Message, payload: Uint8Array, unrouted: boolean): void;
}

/** The scheduled messages of one broker. */
export class Scheduler {
  /**
   * Called with the due time of a scheduled message earlier than any asked
   * for before and that has not come: the server arms its one due-time timer
   * for it and calls `Broker.fireDue()` then. Without it (unit tests) the
   * sweep makes scheduled messages visible.
   */
  onDue: ((at: number) => void) | undefined = undefined;
  #host: ScheduledHost;
  #store: Store;
  /** The topics' scheduled messages; opened on first use, dropped when empty. */
  #topics: QueueStore | undefined;
  /** Queues that hold scheduled messages: the only ones `fire` looks at. */
  #queues = new Set<Queue>();
  /** The earliest due time `onDue` was given and `fire` has not passed (Infinity: none). */
  #asked = Infinity;

  constructor(host: ScheduledHost, store: Store) {
    this.#host = host;
    this.#store = store;
  }

  /** Scheduled messages not yet due, queues and topics (O(queues holding some)). */
  get size(): number {
    let n = this.#topics?.size ?? 0;
    for (const q of this.#queues) n += q.store.scheduled;
    return n;
  }

  /** Queue `q` took a message due at `dueAt`. */
  queued(q: Queue, dueAt: number): void {
    this.#queues.add(q);
    this.#ask(dueAt);
  }

  /**
   * Holds `msg` for `topic` until `dueAt`; a promise when the store must make
   * it durable first. All topics' scheduled messages together are bounded
   * as one queue (`--queue-max-messages`, `--queue-max-bytes`).
   */
  schedule(topic: string, msg: Message, dueAt: number, unrouted = false): void | Promise<void> {
    const q = this.#topics ??= this.#store.openQueue(SCHEDULED_QUEUE);
    const h = this.#host;
    if (q.size + 1 > h.queueMessagesMax || q.bytes + msg.len > h.queueBytesMax) {
      throw new BrokerError(
        "QUEUE_FULL",
        `scheduled topic messages are at their limit (${q.size} messages, ${q.bytes} bytes)`,
      );
    }
    // The payload behind the topic's name, in a buffer of its own: it waits, so it must not pin the read chunk.
    // `delivery: 0` marks a peer's message (cluster): its bindings were applied where it was published.
    const envelope = encodeEnvelope({
      destination: topic,
      body: msg.payload,
      ...(unrouted ? { delivery: 0 } : {}),
    });
    const wrapped = copyOf(msg, msg.id, SCHEDULED_QUEUE, 0, envelope);
    const stored = q.push(wrapped, dueAt);
    this.#ask(dueAt);
    return stored;
  }

  /**
   * Makes the messages due by `now` visible (queues) or publishes them
   * (topics), and asks for the next due time.
   */
  fire(now: number): void {
    this.#asked = Infinity;
    let next = Infinity;
    for (const q of this.#queues) {
      if (q.store.nextDueAt() <= now) {
        q.store.sweep(now);
        q.dispatch();
      }
      if (q.store.scheduled === 0) this.#queues.delete(q);
      else next = Math.min(next, q.store.nextDueAt());
    }
    this.sweep(now);
    const t = this.#topics;
    if (t !== undefined) next = Math.min(next, t.ready > 0 ? 0 : t.nextDueAt());
    this.#ask(next);
  }

  /** Publishes every topic message due by `now`, oldest due first. */
  sweep(now: number): void {
    const q = this.#topics;
    if (q === undefined || (q.ready === 0 && q.nextDueAt() > now)) return;
    q.sweep(now);
    for (let msg = q.take(now); msg !== undefined; msg = q.take(now)) {
      // Written by `schedule` (or a build that did): a damaged one cannot be published, only dropped.
      let e;
      try {
        e = decodeEnvelope(msg.payload);
      } catch {
        q.remove(msg, "dropped");
        continue;
      }
      if (e.destination !== undefined) {
        this.#host.fire(e.destination, msg, e.body, e.delivery === 0);
      }
      q.remove(msg, "acked");
    }
    if (q.size === 0) {
      this.#topics = undefined;
      this.#store.dropQueue(q.name);
    }
  }

  /** Opens the scheduled topic messages found in the store at start, and notes the queues that hold some. */
  restore(names: readonly string[], queues: Iterable<Queue>): void {
    if (names.includes(SCHEDULED_QUEUE)) this.#topics = this.#store.openQueue(SCHEDULED_QUEUE);
    for (const q of queues) if (q.store.scheduled > 0) this.#queues.add(q);
  }

  /** Asks for a wake-up at `at` if that is earlier than the one asked for. */
  #ask(at: number): void {
    if (at >= this.#asked) return;
    this.#asked = at;
    this.onDue?.(at);
  }
}
