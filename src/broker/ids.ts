/**
 * Message ids: unique, time-ordered integers, `ms * 1024 + seq`. When more
 * than 1024 ids are taken in one millisecond, the id clock runs ahead of the
 * wall clock (a logical clock) rather than repeat or go backwards; it stays
 * exact in a double until the year 2248.
 *
 * @module
 */

import { ID_SEQ_PER_MS as SEQ_PER_MS } from "../storage/mod.ts";

/** Hands out ids; `floor` lets a restarted durable broker continue after the last stored id. */
export class IdGenerator {
  #ms = 0;
  #seq = 0;

  constructor(floor = 0) {
    this.#ms = Math.floor(floor / SEQ_PER_MS);
    this.#seq = floor % SEQ_PER_MS;
  }

  /** The smallest id that `next(nowMs)` can return: ids from here on were taken after `nowMs`. */
  floor(nowMs: number): number {
    const ms = Math.floor(nowMs);
    return ms > this.#ms ? ms * SEQ_PER_MS : this.#ms * SEQ_PER_MS + this.#seq + 1;
  }

  /** Makes every later id larger than `id` (ids a replicated queue holds from another node's clock). */
  raise(id: number): void {
    const ms = Math.floor(id / SEQ_PER_MS);
    const seq = id % SEQ_PER_MS;
    if (ms > this.#ms || (ms === this.#ms && seq > this.#seq)) {
      this.#ms = ms;
      this.#seq = seq;
    }
  }

  /** `n` (at least 1) ids at wall time `nowMs` as `next` would give them; returns the last. */
  take(n: number, nowMs: number): number {
    const ms = Math.floor(nowMs);
    if (ms > this.#ms) {
      this.#ms = ms;
      this.#seq = -1; // the first id of a new millisecond has seq 0
    }
    const seq = this.#seq + n;
    this.#ms += Math.floor(seq / SEQ_PER_MS);
    this.#seq = seq % SEQ_PER_MS;
    return this.#ms * SEQ_PER_MS + this.#seq;
  }

  /** The next id at wall time `nowMs`. */
  next(nowMs: number): number {
    const ms = Math.floor(nowMs);
    if (ms > this.#ms) {
      this.#ms = ms;
      this.#seq = 0;
    } else if (++this.#seq === SEQ_PER_MS) {
      this.#ms++;
      this.#seq = 0;
    }
    return this.#ms * SEQ_PER_MS + this.#seq;
  }
}
