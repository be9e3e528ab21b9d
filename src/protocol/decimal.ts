/**
 * Decimal digits on the wire to a number, read straight from the bytes: both
 * parsers (the broker's of client frames, the client's of server frames) read
 * byte counts, numeric options and message ids with it. It runs several times
 * per frame, so it is a plain loop over the bytes: no string, no allocation.
 *
 * @module
 */

/**
 * The number the ASCII digits `buf[s, e)` write, or -1 when there is no digit,
 * more than `digitsMax` of them, or a byte that is not a digit. Up to 15
 * digits the result is exact; a caller that allows 16 checks
 * `Number.isSafeInteger` on it.
 */
export function decimal(buf: Uint8Array, s: number, e: number, digitsMax: number): number {
  if (e === s || e - s > digitsMax) return -1;
  let v = 0;
  for (let k = s; k < e; k++) {
    const d = buf[k] - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}
