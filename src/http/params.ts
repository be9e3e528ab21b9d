/**
 * Query parameters of the HTTP API, checked: a bad one is a `BadRequest`,
 * answered with 400 and the reason.
 *
 * @module
 */

/** A bad query parameter or path; answered with 400. */
export class BadRequest extends RangeError {}

/** An integer query parameter in `[min, max]`, or `def` when absent. */
export function intParam(
  q: URLSearchParams,
  name: string,
  def: number,
  min: number,
  max: number,
): number {
  const raw = q.get(name);
  if (raw === null) return def;
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new BadRequest(
      `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}
