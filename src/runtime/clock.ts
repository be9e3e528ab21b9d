/**
 * Time as an input. Everything that reads the clock or sets a timer (the
 * broker's sweep and ack deadlines, idle PINGs, the log store's fsync
 * interval) takes a `Clock`, so that tests drive time with a fake one
 * (tests/fake_clock.ts) instead of waiting for real timers: TigerBeetle's
 * lesson, at the size of this project.
 *
 * @module
 */

/** A scheduled callback; `cancel()` is safe to call twice. */
export interface Timer {
  cancel(): void;
}

/** The wall clock and timers. */
export interface Clock {
  /** Epoch time in fractional milliseconds. */
  now(): number;
  /** Calls `fn` every `ms` milliseconds until cancelled. */
  every(ms: number, fn: () => void): Timer;
  /** Calls `fn` once, `ms` milliseconds from now, unless cancelled first. */
  after(ms: number, fn: () => void): Timer;
}

/** The real clock: `performance` (monotonic, sub-millisecond) anchored at its epoch origin. */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  every(ms, fn) {
    const h = setInterval(fn, ms);
    return { cancel: () => clearInterval(h) };
  },
  after(ms, fn) {
    const h = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(h) };
  },
};

/** Resolves after `ms` on `clock` (for rare waits such as the accept loop's back-off, never per message). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}
