/**
 * Latency samples with a fixed memory bound, and their percentiles.
 *
 * @module
 */

/** Most samples kept; above, every k-th is kept so the memory stays at 8 MB. */
const SAMPLES_MAX = 1_000_000;

/** Percentiles in ms, rounded to µs. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
}

/**
 * Keeps up to a million samples of an expected count (every k-th beyond).
 *
 * @example
 * ```ts
 * import { LatencySamples } from "./latency.ts";
 * const s = new LatencySamples(100);
 * for (let i = 1; i <= 100; i++) s.add(i);
 * console.assert(s.percentiles()!.p50 === 50);
 * ```
 */
export class LatencySamples {
  #values: Float64Array;
  #count = 0;
  #seen = 0;
  #stride: number;
  #max = 0;

  /** @param expected how many samples will be offered (sizes the buffer) */
  constructor(expected: number) {
    this.#stride = Math.max(1, Math.ceil(expected / SAMPLES_MAX));
    this.#values = new Float64Array(Math.min(Math.max(expected, 1), SAMPLES_MAX));
  }

  /** Offers one sample (ms). */
  add(ms: number): void {
    if (ms > this.#max) this.#max = ms;
    if (this.#seen++ % this.#stride !== 0 || this.#count === this.#values.length) return;
    this.#values[this.#count++] = ms;
  }

  /** Nearest-rank percentiles, or null without samples. */
  percentiles(): Percentiles | null {
    if (this.#count === 0) return null;
    const v = this.#values.slice(0, this.#count).sort();
    const at = (p: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
    const r = (n: number) => Math.round(n * 1000) / 1000;
    return {
      p50: r(at(0.5)),
      p90: r(at(0.9)),
      p99: r(at(0.99)),
      p999: r(at(0.999)),
      max: r(this.#max),
      samples: this.#count,
    };
  }
}
