/**
 * Password hashes in PHC string format, scrypt only:
 * `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (salt and hash in base64
 * without padding, as the PHC format and passlib write them). Why scrypt and
 * not argon2id: see src/runtime/crypto.ts (it runs off the event loop).
 *
 * @module
 */
import { AUTH_SCRYPT_MEMORY_BYTES_MAX, AUTH_SECRET_BYTES_MAX } from "../config/mod.ts";
import { scrypt, type ScryptParams, timingSafeEqual } from "../runtime/mod.ts";

/** The cost `relayr passwd` uses: N=2^15, r=8 (32 MiB), p=1; ~120 ms a hash on the test machine. */
export const SCRYPT_DEFAULT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
const utf8 = new TextEncoder();

/** A parsed password hash, ready to verify against. */
export interface PasswordHash {
  readonly params: ScryptParams;
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

/** Hashes `password` with a fresh random salt; returns the PHC string. */
export async function hashPassword(
  password: string,
  params: ScryptParams = SCRYPT_DEFAULT,
): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await scrypt(utf8.encode(password), salt, HASH_BYTES, params);
  const ln = Math.log2(params.N);
  return `$scrypt$ln=${ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

/**
 * Parses a PHC string; a string says what is wrong (never quoting the hash).
 *
 * @example
 * ```ts
 * import { parsePasswordHash } from "./password.ts";
 * console.assert(typeof parsePasswordHash("secret") === "string");
 * ```
 */
export function parsePasswordHash(phc: string): PasswordHash | string {
  const parts = phc.split("$");
  if (
    parts.length >= 4 && parts[0] === "" && parts[1] !== "scrypt" &&
    /^[a-z0-9-]{1,32}$/.test(parts[1])
  ) {
    return `has algorithm ${JSON.stringify(parts[1])}; only scrypt is supported (relayr passwd)`;
  }
  if (parts.length !== 5 || parts[0] !== "" || parts[1] !== "scrypt") {
    return "must be a PHC string ($scrypt$ln=..,r=..,p=..$salt$hash; make one with relayr passwd)";
  }
  const p = Object.fromEntries(parts[2].split(",").map((kv) => kv.split("=")));
  const ln = Number(p.ln), r = Number(p.r), par = Number(p.p);
  if (![ln, r, par].every((n) => Number.isSafeInteger(n) && n >= 1) || ln > 30) {
    return "has bad scrypt parameters (want ln=<1-30>,r=<n>,p=<n>)";
  }
  const params = { N: 2 ** ln, r, p: par };
  if (128 * params.N * r > AUTH_SCRYPT_MEMORY_BYTES_MAX) {
    return `asks scrypt for over ${AUTH_SCRYPT_MEMORY_BYTES_MAX >> 20} MiB (lower ln or r)`;
  }
  let salt: Uint8Array, hash: Uint8Array;
  try {
    salt = Uint8Array.fromBase64(parts[3]);
    hash = Uint8Array.fromBase64(parts[4]);
  } catch {
    return "has a salt or hash that is not base64";
  }
  if (salt.length < 8 || hash.length < 16) return "has a salt or hash that is too short";
  return { params, salt, hash };
}

/** Whether `password` matches `h`; constant-time compare of equal-length digests, off the event loop. */
export async function verifyPassword(password: string, h: PasswordHash): Promise<boolean> {
  const bytes = utf8.encode(password);
  if (bytes.length > AUTH_SECRET_BYTES_MAX) return false;
  const got = await scrypt(bytes, h.salt, h.hash.length, h.params);
  return timingSafeEqual(got, h.hash);
}

function b64(bytes: Uint8Array): string {
  return bytes.toBase64({ omitPadding: true });
}
