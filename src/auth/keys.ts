/**
 * Ed25519 keys (NATS's nkey idea): a key user holds a private key, the
 * server stores only the public one and checks a signature of the nonce it
 * sent in its `INFO` greeting, so nothing the server stores lets anyone log
 * in. WebCrypto's Ed25519 is a web API, the same on either runtime.
 *
 * Key file (written by `relayr keygen`, read by the SDK with `{ keyFile }`):
 * `{"type":"ed25519","public_key":"<base64url raw 32 bytes>","private_key":"<base64url PKCS#8 DER>"}`.
 *
 * @module
 */

/** Bytes of a raw Ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;

/** A new key pair, as the key file holds it. */
export async function generateKeyPair(): Promise<{ public_key: string; private_key: string }> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const priv = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return { public_key: b64url(pub), private_key: b64url(priv) };
}

/** The key file text of a pair. */
export function keyFileText(pair: { public_key: string; private_key: string }): string {
  return JSON.stringify({ type: "ed25519", ...pair }, null, 2) + "\n";
}

/**
 * The raw public key of a base64url string; a string says what is wrong.
 *
 * @example
 * ```ts
 * import { parsePublicKey } from "./keys.ts";
 * console.assert(typeof parsePublicKey("abc") === "string");
 * ```
 */
export function parsePublicKey(text: string): Uint8Array<ArrayBuffer> | string {
  let raw: Uint8Array<ArrayBuffer>;
  try {
    raw = Uint8Array.fromBase64(text, { alphabet: "base64url" });
  } catch {
    return "must be base64url (relayr keygen prints it)";
  }
  return raw.length === PUBLIC_KEY_BYTES
    ? raw
    : `must be ${PUBLIC_KEY_BYTES} bytes of base64url (relayr keygen prints it)`;
}

/** Whether `sig` (base64url) is `publicKey`'s Ed25519 signature of the UTF-8 bytes of `nonce`. */
export async function verifyNonce(
  publicKey: Uint8Array<ArrayBuffer>,
  nonce: string,
  sig: string,
): Promise<boolean> {
  let s: Uint8Array<ArrayBuffer>;
  try {
    s = Uint8Array.fromBase64(sig, { alphabet: "base64url" });
  } catch {
    return false;
  }
  if (s.length !== SIGNATURE_BYTES) return false;
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, "Ed25519", false, ["verify"]);
    return await crypto.subtle.verify("Ed25519", key, s, new TextEncoder().encode(nonce));
  } catch {
    return false; // a 32-byte string that is not a point on the curve
  }
}

/** A fresh nonce: `bytes` random bytes, base64url. */
export function newNonce(bytes: number): string {
  return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function b64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}
