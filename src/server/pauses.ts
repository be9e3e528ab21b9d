/**
 * The two reasons a connection stops reading (TCP back-pressure then reaches
 * its client) and how each ends: over its publish rate, until its bucket has
 * a token; having published to a topic with a stalled subscriber under
 * `--slow-consumer block`, until that subscriber drains. Either ends at once
 * when the connection closes.
 *
 * @module
 */
import type { AuthzCounters, TokenBucket } from "../auth/mod.ts";
import type { Broker } from "../broker/mod.ts";
import type { Clock, Timer } from "../runtime/mod.ts";

/** One connection's read pauses. */
export class Pauses {
  readonly #clock: Clock;
  readonly #broker: Broker;
  readonly #counters: AuthzCounters;
  #closed = false;
  /** Settles when the connection closes; made only if it ever pauses. */
  #whenClosed: Promise<void> | undefined = undefined;
  #onClosed: (() => void) | undefined = undefined;

  constructor(clock: Clock, broker: Broker, counters: AuthzCounters) {
    this.#clock = clock;
    this.#broker = broker;
    this.#counters = counters;
  }

  /** The connection closed: a pause in progress ends. */
  closed(): void {
    this.#closed = true;
    this.#onClosed?.();
  }

  /** Waits until `topic`'s stalled subscriber drained (or was disconnected), or the connection closed. */
  async blocked(topic: { unblocked(): Promise<void> }): Promise<void> {
    await Promise.race([topic.unblocked(), this.#closing()]);
  }

  /**
   * Waits, reading the clock once per wait, until `bucket` holds a token or
   * the connection closed. Each reading is the connection's `lastActivity`
   * (held by its rate, not idle: the idle check must not PING it).
   */
  async throttle(bucket: TokenBucket, c: { lastActivity: number }): Promise<void> {
    const closing = this.#closing();
    const counters = this.#counters;
    counters.publish_paused++;
    const from = this.#broker.now;
    for (let ms = bucket.waitMs(); ms > 0 && !this.#closed; ms = bucket.waitMs()) {
      let timer: Timer | undefined;
      await Promise.race([new Promise<void>((r) => timer = this.#clock.after(ms, r)), closing]);
      timer?.cancel();
      bucket.refill(c.lastActivity = this.#broker.tick());
    }
    counters.publish_paused_ms += this.#broker.now - from;
  }

  #closing(): Promise<void> {
    return this.#whenClosed ??= new Promise<void>((r) => this.#onClosed = r);
  }
}
