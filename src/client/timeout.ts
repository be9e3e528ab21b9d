/**
 * Bounding a wait: the one timer race of the client's connect, close, drain
 * and flush.
 *
 * @module
 */
import { TimeoutError } from "./errors.ts";

/**
 * `work`, or a `TimeoutError` (with `message`) once `ms` have passed; the
 * timer is cleared either way, so no timer outlives the wait.
 *
 * @example
 * ```ts
 * import { withTimeout } from "./timeout.ts";
 * console.assert(await withTimeout(Promise.resolve(1), 10) === 1);
 * ```
 */
export async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  message = `timed out after ${ms} ms`,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
