/**
 * Publish-to-delivery latency as a fixed-bucket histogram (Prometheus-style
 * cumulative buckets are derived when exported). O(buckets) per observation,
 * no allocation.
 *
 * @module
 */

/** Upper bounds of the buckets, in seconds. */
export const LATENCY_BUCKETS_S = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
] as const;

const BOUNDS_MS = LATENCY_BUCKETS_S.map((s) => s * 1000);

/** Counts per bucket (the last slot is +Inf), sum and count. */
export class LatencyHistogram {
  readonly counts = new Float64Array(BOUNDS_MS.length + 1);
  sumMs = 0;
  count = 0;

  /** Records one latency in ms. */
  observe(ms: number): void {
    this.observeMany(ms, 1);
  }

  /** Records `n` latencies of `ms` each (a run's deliveries). */
  observeMany(ms: number, n: number): void {
    let i = 0;
    while (i < BOUNDS_MS.length && ms > BOUNDS_MS[i]) i++;
    this.counts[i] += n;
    this.sumMs += ms * n;
    this.count += n;
  }
}
