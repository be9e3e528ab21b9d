/**
 * A clock that moves only when told: `advance(ms)` runs the timers that fall
 * due, in time order, each seeing `now()` at its due time. Broker tests use it
 * to cover ack timeouts, TTLs and NACK delays without real waits.
 */
import type { Clock, Timer } from "../src/runtime/clock.ts";

interface Entry {
  at: number;
  every: number;
  fn: () => void;
  seq: number;
  live: boolean;
}

/** A fake `Clock` for tests. */
export class FakeClock implements Clock {
  #now: number;
  #timers: Entry[] = [];
  #seq = 0;

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  every(ms: number, fn: () => void): Timer {
    return this.#add(ms, Math.max(1, ms), fn);
  }

  after(ms: number, fn: () => void): Timer {
    return this.#add(ms, 0, fn);
  }

  /** Timers not yet cancelled or run. */
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const next = this.#next(end);
      if (next === undefined) break;
      this.#now = next.at;
      if (next.every > 0) next.at += next.every;
      else next.live = false;
      next.fn();
    }
    this.#now = end;
    this.#timers = this.#timers.filter((t) => t.live);
  }

  #next(end: number): Entry | undefined {
    let best: Entry | undefined;
    for (const t of this.#timers) {
      if (!t.live || t.at > end) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  #add(ms: number, every: number, fn: () => void): Timer {
    const e: Entry = { at: this.#now + Math.max(0, ms), every, fn, seq: this.#seq++, live: true };
    this.#timers.push(e);
    return { cancel: () => e.live = false };
  }
}
