/**
 * The client's credentials: a token, a user and password, or an Ed25519 key
 * file whose private key signs the nonce of the broker's `INFO` greeting.
 * Key file (as `relayr keygen` writes it):
 * `{"type":"ed25519","public_key":"<base64url raw 32 bytes>","private_key":"<base64url PKCS#8 DER>"}`.
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import { jsonErrorText } from "../config/json_error.ts";

/** A key file's public key and a signer of nonces with its private key. */
export interface KeySigner {
  /** base64url of the raw 32-byte public key (`public_key` in CONNECT). */
  readonly publicKey: string;
  /** The base64url Ed25519 signature of the UTF-8 bytes of `nonce` (`sig` in CONNECT). */
  sign(nonce: string): Promise<string>;
}

/** What the client authenticates with; at most one kind. */
export interface ClientCredentials {
  token?: string;
  user?: string;
  pass?: string;
  key?: KeySigner;
}

/** Reads and checks a key file; the errors name the file, never its contents. */
export async function loadKeyFile(runtime: Runtime, path: string): Promise<KeySigner> {
  const where = `key file ${JSON.stringify(path)}`;
  let json: { type?: unknown; public_key?: unknown; private_key?: unknown };
  let text: string;
  try {
    text = runtime.readTextFile(path);
  } catch (e) {
    throw new TypeError(`cannot read ${where}: ${(e as Error).message.split("\n")[0]}`);
  }
  try {
    json = JSON.parse(text);
  } catch (e) {
    // The runtime's message quotes the text around the mistake: the private key.
    throw new TypeError(`${where} is not JSON: ${jsonErrorText((e as Error).message)}`);
  }
  if (
    json?.type !== "ed25519" || typeof json.public_key !== "string" ||
    typeof json.private_key !== "string"
  ) {
    throw new TypeError(`${where} must hold {"type":"ed25519","public_key":..,"private_key":..}`);
  }
  let key: CryptoKey;
  try {
    const der = Uint8Array.fromBase64(json.private_key, { alphabet: "base64url" });
    key = await crypto.subtle.importKey("pkcs8", der, "Ed25519", false, ["sign"]);
  } catch {
    throw new TypeError(`${where} has no usable Ed25519 private key`);
  }
  const utf8 = new TextEncoder();
  return {
    publicKey: json.public_key,
    async sign(nonce) {
      const sig = await crypto.subtle.sign("Ed25519", key, utf8.encode(nonce));
      return new Uint8Array(sig).toBase64({ alphabet: "base64url", omitPadding: true });
    },
  };
}

/** The credential fields of CONNECT; `sig` is the nonce's signature for a key. */
export function connectFields(
  c: ClientCredentials,
  sig: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (c.token !== undefined) out.auth_token = c.token;
  if (c.user !== undefined) out.user = c.user;
  if (c.pass !== undefined) out.pass = c.pass;
  if (c.key !== undefined && sig !== undefined) {
    out.public_key = c.key.publicKey;
    out.sig = sig;
  }
  return out;
}
