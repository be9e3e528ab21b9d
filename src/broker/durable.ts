/**
 * A durable subscription's state on a declared topic: its name and position.
 * It outlives the subscriptions that use it, one at a time.
 *
 * @module
 */
import { assert } from "../assert.ts";
import type { DurableStats } from "./stats.ts";
import type { Topic } from "./topic.ts";
import type { TopicSubscription } from "./topic_subscription.ts";

/** A durable's name and position: everything up to and including id `acked` is settled. */
export class Durable {
  /** Messages it never got because retention dropped them first. */
  skipped = 0;
  #acked: number;
  #sub: TopicSubscription | undefined = undefined;

  constructor(readonly name: string, acked: number) {
    this.#acked = acked;
  }

  /** The live subscription using it, if any. */
  get sub(): TopicSubscription | undefined {
    return this.#sub;
  }

  /**
   * The position as it would be stored now: the kept one, or, while a
   * subscription uses it, everything before that one's oldest unsettled message.
   */
  get position(): number {
    return this.#sub === undefined ? this.#acked : Math.max(this.#acked, this.#sub.position());
  }

  /** A subscription starts using it. */
  attach(sub: TopicSubscription): void {
    assert(this.#sub === undefined, () => `durable ${this.name} is in use`);
    this.#sub = sub;
  }

  /** Its subscription ends: the position is kept. */
  detach(): void {
    this.#acked = this.position;
    this.#sub = undefined;
  }

  /** The position, brought up to date with a live subscription (for the state record). */
  settle(): number {
    return this.#acked = this.position;
  }

  /** Retention dropped message `id`: missed by a disconnected durable that had not passed it. */
  missed(id: number): void {
    if (this.#sub === undefined && this.#acked < id) this.skipped++;
  }

  /** Its figures for the admin API (`topic` is the one it belongs to). */
  stats(topic: Topic): DurableStats {
    const position = this.position;
    return {
      name: this.name,
      connected: this.#sub !== undefined,
      sid: this.#sub?.sid ?? null,
      position,
      backlog_msgs: topic.retainedAfter(position),
      skipped: this.skipped,
    };
  }
}
