/**
 * Byte-buffer helpers shared by the server's and the client's writers and the
 * log store's record buffer.
 *
 * @module
 */

/**
 * A buffer with room for `need` bytes: `buf` itself when it is big enough,
 * else a new one of the next power-of-two multiple of its size holding its
 * first `used` bytes. Doubling keeps appends amortised O(1).
 */
export function grow(
  buf: Uint8Array<ArrayBuffer>,
  used: number,
  need: number,
): Uint8Array<ArrayBuffer> {
  if (need <= buf.length) return buf;
  let size = Math.max(buf.length, 1) * 2;
  while (size < need) size *= 2;
  const bigger = new Uint8Array(size);
  bigger.set(buf.subarray(0, used));
  return bigger;
}
