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
