/**
 * Connection status events, to a callback or an async iterable.
 *
 * @module
 */
import { Ring } from "../ring.ts";
import { STATUS_EVENTS_BUFFERED_MAX } from "./limits.ts";

/** What happened to the connection. */
export type StatusEvent =
  /** The first connection is up. */
  | { type: "connected"; server: string }
  /** The connection dropped; `error` says why when it was not a clean close. */
  | { type: "disconnected"; server: string; error?: Error }
  /** Attempt number `attempt` will start after `delayMs`. */
  | { type: "reconnecting"; attempt: number; delayMs: number }
  /** Connected again; subscriptions were renewed and buffered publishes sent. */
  | { type: "reconnected"; server: string }
  /** The client is closed for good (`error`: it gave up or a fatal error). */
  | { type: "closed"; error?: Error }
  /** An error that no promise could carry: a failed fire-and-forget publish or ack, a throwing callback. */
  | { type: "error"; error: Error }
  /** A subscription's buffer is full; messages are being dropped (`dropped` so far). */
  | { type: "slow_consumer"; subId: string; dest: string; dropped: number };

/** A status listener. */
export type StatusListener = (event: StatusEvent) => void;

/**
 * Fans status events out to listeners and iterators. Iterators keep at most
 * `STATUS_EVENTS_BUFFERED_MAX` unread events (oldest dropped), so a reader
 * that stopped reading cannot grow memory.
 */
export class StatusHub {
  #listeners = new Set<StatusListener>();
  #queues = new Set<{ q: Ring<StatusEvent>; wake: (() => void) | null }>();
  #closed = false;

  /** Adds a listener; returns its remover. */
  on(listener: StatusListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Sends one event to everyone; the `closed` event ends the iterators. */
  emit(event: StatusEvent): void {
    if (this.#closed) return;
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch { /* a listener's failure is not the connection's */ }
    }
    for (const entry of this.#queues) {
      if (entry.q.length >= STATUS_EVENTS_BUFFERED_MAX) entry.q.shift();
      entry.q.push(event);
      entry.wake?.();
    }
    if (event.type === "closed") {
      this.#closed = true;
      for (const entry of this.#queues) entry.wake?.();
    }
  }

  /** Events from now on, until `closed` (included). */
  async *iterate(): AsyncGenerator<StatusEvent> {
    if (this.#closed) return;
    const entry = { q: new Ring<StatusEvent>(), wake: null as (() => void) | null };
    this.#queues.add(entry);
    try {
      for (;;) {
        const event = entry.q.shift();
        if (event !== undefined) {
          yield event;
          if (event.type === "closed") return;
          continue;
        }
        if (this.#closed) return;
        await new Promise<void>((resolve) => entry.wake = resolve);
        entry.wake = null;
      }
    } finally {
      this.#queues.delete(entry);
    }
  }
}
