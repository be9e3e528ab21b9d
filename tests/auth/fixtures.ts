/**
 * Auth test fixtures: a users file written to a temp dir (hashes made with a
 * cheap scrypt cost, so tests stay fast; one test checks the default cost),
 * key pairs, nonce signatures, and a broker started with them.
 */
import { generateKeyPair, hashPassword } from "../../src/auth/mod.ts";
import { startTestBroker } from "../helpers.ts";
export { relayr } from "../client_helpers.ts";

/** scrypt parameters cheap enough for tests (the format and code path are the same). */
export const CHEAP = { N: 2 ** 10, r: 8, p: 1 };

/** Secrets the tests use, so the log grep can look for every one. */
export const SECRETS = {
  token: "tok-3f9a7c1e5b",
  alicePass: "alice-pw-8d2e6f",
  monitorPass: "mon-pw-41b7c9",
} as const;

/** A key pair as the key file holds it. */
export type KeyPair = { public_key: string; private_key: string };

/** Signs `nonce` with a key file's private key; base64url, as CONNECT's `sig`. */
export async function sign(pair: KeyPair, nonce: string): Promise<string> {
  const der = Uint8Array.fromBase64(pair.private_key, { alphabet: "base64url" });
  const key = await crypto.subtle.importKey("pkcs8", der, "Ed25519", false, ["sign"]);
  const sig = new Uint8Array(
    await crypto.subtle.sign("Ed25519", key, new TextEncoder().encode(nonce)),
  );
  return sig.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** The users of most tests: a password user, a monitor, a key user, a certificate user. */
export async function makeUsers(): Promise<
  { users: Record<string, unknown>[]; bob: KeyPair; mallory: KeyPair }
> {
  const bob = await generateKeyPair();
  const mallory = await generateKeyPair();
  const users = [
    { user: "alice", password: await hashPassword(SECRETS.alicePass, CHEAP) },
    {
      user: "mon",
      password: await hashPassword(SECRETS.monitorPass, CHEAP),
      roles: ["monitor"],
    },
    { user: "bob", public_key: bob.public_key },
    { user: "svc", cert_subject: "CN=svc,O=Acme" },
  ];
  return { users, bob, mallory };
}

/** Writes `{"users": users}` to a new temp file; returns its path. */
export async function writeUsers(users: unknown[], path?: string): Promise<string> {
  const p = path ?? await Deno.makeTempFile({ prefix: "relayr-users-", suffix: ".json" });
  await Deno.writeTextFile(p, JSON.stringify({ users }));
  return p;
}

/** `serve` arguments of a broker child process with the token and the users at `path`, logging everything. */
export function serveArgs(path: string): string[] {
  return ["--users", path, "--auth-token", SECRETS.token, "--log-level", "debug"];
}

/** A broker with the token and the users file at `path`. */
export function startAuthBroker(path: string, args: string[] = []) {
  return startTestBroker(["--users", path, "--auth-token", SECRETS.token, ...args]);
}

const ROOT = new URL("../..", import.meta.url).pathname;

/** The path of main.ts, for a broker child process. */
export const MAIN = `${ROOT}main.ts`;
