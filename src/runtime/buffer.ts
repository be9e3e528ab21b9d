/**
 * Node `Buffer` views, for libraries that insist on them (grpc-js copies
 * message bytes with `Buffer#copy`). Both runtimes have `node:buffer`; only
 * this folder may import it.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** A `Buffer` over the same bytes as `bytes` (no copy). */
export function bufferView(bytes: Uint8Array): Uint8Array {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const bufferCopy = Buffer.prototype.copy;

/**
 * Copies `src[srcOff, srcOff + len)` into `dst` at `dstOff`. On Bun a
 * `subarray` per copy was a tenth of the broker's samples under the queue
 * bench at 256 B (two per message: into the slab and into the outbound
 * buffer); `Buffer#copy` takes the range without a view: 17-19 vs 49-53 ns a
 * copy of 16-256 B. On Deno `set` of a `subarray` is the faster (36-39 vs
 * 52-55 ns), so each runtime gets its own, chosen once.
 */
export const copyBytes: (
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
) => void =
  // deno-lint-ignore no-explicit-any
  typeof (globalThis as any).Bun !== "undefined"
    ? (dst, dstOff, src, srcOff, len) => {
      bufferCopy.call(src, dst, dstOff, srcOff, srcOff + len);
    }
    : (dst, dstOff, src, srcOff, len) => {
      dst.set(
        srcOff === 0 && len === src.length ? src : src.subarray(srcOff, srcOff + len),
        dstOff,
      );
    };

/**
 * Ranges shorter than this are copied by a byte loop: cheaper than a call
 * into the runtime's copy (and, on Deno, the `subarray` view it takes).
 */
const LOOP_COPY_BYTES_MAX = 64;

/**
 * Copies `src[srcOff, srcOff + len)` into `dst` at `dstOff` and returns the
 * end (`dstOff + len`): the payload copy of every encoder (MSG frames, log
 * records, slabs, gRPC and cluster frames), a byte loop below 64 bytes and
 * `copyBytes` from there on.
 */
export function copyRange(
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): number {
  if (len < LOOP_COPY_BYTES_MAX) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i];
  } else copyBytes(dst, dstOff, src, srcOff, len);
  return dstOff + len;
}
