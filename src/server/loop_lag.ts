/**
 * Event-loop lag: a timer asks to run every `LOOP_LAG_INTERVAL_MS` and
 * measures how late it runs. A loop blocked by a long task (a huge JSON
 * parse, a GC pause, a hot loop) shows up here before clients notice. Plain
 * timers and `performance.now()` are web APIs, the same on either runtime. It measures
 * the real event loop, so it takes no `Clock`: a fake one has no loop to lag.
 *
 * @module
 */

/** How often the probe runs; 10 timer wake-ups a second cost nothing measurable. */
export const LOOP_LAG_INTERVAL_MS = 100;
/** The window the maximum is taken over. */
export const LOOP_LAG_WINDOW_MS = 10_000;

const SAMPLES = LOOP_LAG_WINDOW_MS / LOOP_LAG_INTERVAL_MS;

/** Measures event-loop lag until stopped. */
export class LoopLag {
  #samples = new Float64Array(SAMPLES);
  #pos = 0;
  #last = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expected = 0;

  /** Whether it is probing. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts probing (again a no-op). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#schedule();
  }

  /** Stops probing; safe to call twice. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The last lag and the largest in the window, in ms. */
  read(): { lastMs: number; maxMs: number } {
    let max = 0;
    for (const v of this.#samples) if (v > max) max = v;
    return { lastMs: this.#last, maxMs: max };
  }

  #schedule(): void {
    this.#expected = performance.now() + LOOP_LAG_INTERVAL_MS;
    this.#timer = setTimeout(this.#tick, LOOP_LAG_INTERVAL_MS);
  }

  #tick = (): void => {
    // Rounded to microseconds: finer digits are timer noise.
    const lag = Math.round(Math.max(0, performance.now() - this.#expected) * 1000) / 1000;
    this.#last = lag;
    this.#samples[this.#pos] = lag;
    this.#pos = (this.#pos + 1) % SAMPLES;
    this.#schedule();
  };
}
