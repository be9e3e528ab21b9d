/**
 * The crypto seam of authentication, on `node:crypto` (Deno and Bun both
 * implement it): scrypt for password hashes, SHA-256 digests and a
 * constant-time compare. Ed25519 needs nothing here: WebCrypto's
 * `crypto.subtle` is a web standard, the same on both runtimes.
 *
 * Why scrypt from `node:crypto` rather than argon2id from `hash-wasm`
 * (measured on this machine, 5 hashes each, Deno 2.9.6 / Bun 1.4.4):
 * scrypt N=2^15 r=8 p=1 took ~123 ms a hash on both and runs on the
 * runtime's thread pool, so the event loop keeps serving other connections
 * while a password is checked; argon2id (m=19 MiB, t=2) took ~66-76 ms but
 * runs in wasm on the main thread, so every login attempt would stall every
 * connection for that long (Deno's timers did not fire at all across 5
 * hashes; Bun's loop lagged 123 ms). A broker cannot afford that, and
 * scrypt is also no dependency at all.
 *
 * @module
 */
import {
  createHash,
  createHmac,
  scrypt as nodeScrypt,
  timingSafeEqual as nodeEqual,
} from "node:crypto";

/** scrypt cost parameters (RFC 7914). */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

/** Derives `keyLen` bytes from `password` and `salt`, off the event loop (the runtime's thread pool). */
export function scrypt(
  password: Uint8Array,
  salt: Uint8Array,
  keyLen: number,
  params: ScryptParams,
): Promise<Uint8Array> {
  // 128 * N * r bytes of memory, plus room: node's default maxmem (32 MiB) is just too small for N=2^15.
  const maxmem = 256 * params.N * params.r;
  return new Promise((resolve, reject) =>
    nodeScrypt(password, salt, keyLen, { ...params, maxmem }, (err, key) => {
      if (err) reject(err);
      else resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength));
    })
  );
}

/** SHA-256 of `bytes` (synchronous: a token compare must not yield). */
export function sha256(bytes: Uint8Array): Uint8Array {
  const d = createHash("sha256").update(bytes).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** HMAC-SHA256 of `data` under `key` (synchronous: the inter-node handshake, src/cluster/link_auth.ts). */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const d = createHmac("sha256", key).update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Compares two byte strings of equal length in time independent of their contents; false when the lengths differ. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && nodeEqual(a, b);
}
