/**
 * The users file, validated whole before anything uses it: every mistake is
 * one line naming the user and the field (and never quoting a secret), so a
 * bad file stops start-up (exit 2) or, on a SIGHUP reload, leaves the old
 * users in place.
 *
 * @module
 */
import { AUTH_USERS_MAX, ConfigError, jsonErrorText, TOKEN_BYTES_MAX } from "../config/mod.ts";
import { parsePublicKey } from "./keys.ts";
import { authorizationError } from "./permissions.ts";
import { parsePasswordHash, type PasswordHash } from "./password.ts";
import { TOKEN_USER } from "./principal.ts";
import type { Role, UserEntry } from "./types.ts";

/** One user, with its credential parsed once. */
export interface User {
  readonly entry: UserEntry;
  /** The parsed `password` hash. */
  readonly hash?: PasswordHash;
  /** The raw `public_key`. */
  readonly key?: Uint8Array<ArrayBuffer>;
}

/** The users, indexed by each way a connection can name one. */
export interface UserTable {
  readonly byName: ReadonlyMap<string, User>;
  /** By `public_key` (base64url as written). */
  readonly byKey: ReadonlyMap<string, User>;
  /** By `cert_subject`. */
  readonly byCert: ReadonlyMap<string, User>;
}

const ROLES: readonly Role[] = ["admin", "monitor"];
const ENTRY_KEYS = new Set([
  "user",
  "password",
  "public_key",
  "cert_subject",
  "roles",
  "permissions",
  "limits",
]);
const ACTIONS = new Set(["publish", "subscribe", "consume", "admin"]);

/**
 * Validates the parsed JSON of a users file (`{"users":[...]}`, or the bare
 * list of the `users` key of `--config`) and indexes it. `where` names the
 * source in errors.
 *
 * @example
 * ```ts
 * import { parseUsers } from "./users.ts";
 * const t = parseUsers({ users: [{ user: "svc", cert_subject: "CN=svc" }] }, "users.json");
 * console.assert(t.byCert.get("CN=svc")?.entry.user === "svc");
 * ```
 */
export function parseUsers(json: unknown, where: string): UserTable {
  const list = Array.isArray(json)
    ? json
    : isObject(json) && Array.isArray(json.users)
    ? json.users
    : fail(where, `must be {"users":[...]}`);
  if (list.length > AUTH_USERS_MAX) fail(where, `has over ${AUTH_USERS_MAX} users`);
  const byName = new Map<string, User>();
  const byKey = new Map<string, User>();
  const byCert = new Map<string, User>();
  list.forEach((raw: unknown, i: number) => {
    if (!isObject(raw)) fail(where, `entry ${i + 1} must be an object`);
    const name = raw.user;
    if (typeof name !== "string" || name === "" || name.length > TOKEN_BYTES_MAX) {
      fail(where, `entry ${i + 1}: "user" must be a string of 1 to ${TOKEN_BYTES_MAX} characters`);
    }
    const at = `user ${JSON.stringify(name)}`;
    if (name === TOKEN_USER) {
      fail(where, `${at}: "${TOKEN_USER}" is the --auth-token holder's name`);
    }
    if (byName.has(name)) fail(where, `${at} appears twice`);
    const u = parseEntry(raw, (msg) => fail(where, `${at}: ${msg}`));
    byName.set(name, u);
    if (u.entry.public_key !== undefined) {
      if (byKey.has(u.entry.public_key)) fail(where, `${at}: public_key is another user's too`);
      byKey.set(u.entry.public_key, u);
    }
    if (u.entry.cert_subject !== undefined) {
      if (byCert.has(u.entry.cert_subject)) {
        fail(where, `${at}: cert_subject is another user's too`);
      }
      byCert.set(u.entry.cert_subject, u);
    }
  });
  return { byName, byKey, byCert };
}

/** Reads and validates a users file; throws `ConfigError` (one line, free of secrets). */
export function readUsers(path: string, readFile: (path: string) => string): UserTable {
  const where = `users file ${JSON.stringify(path)}`;
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    throw new ConfigError(`cannot read ${where}: ${(e as Error).message.split("\n")[0]}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${where} is not JSON: ${jsonErrorText((e as Error).message)}`);
  }
  return parseUsers(json, where);
}

function parseEntry(raw: Record<string, unknown>, bad: (msg: string) => never): User {
  for (const k of Object.keys(raw)) {
    if (!ENTRY_KEYS.has(k)) bad(`unknown field ${JSON.stringify(k)}`);
  }
  const creds = ["password", "public_key", "cert_subject"].filter((k) => raw[k] !== undefined);
  if (creds.length !== 1) {
    bad("needs exactly one of password, public_key, cert_subject");
  }
  for (const k of creds) {
    if (typeof raw[k] !== "string" || raw[k] === "") bad(`${k} must be a string`);
  }
  let hash: PasswordHash | undefined;
  let key: Uint8Array<ArrayBuffer> | undefined;
  if (typeof raw.password === "string") {
    const h = parsePasswordHash(raw.password);
    if (typeof h === "string") bad(`password ${h}`);
    hash = h;
  }
  if (typeof raw.public_key === "string") {
    const k = parsePublicKey(raw.public_key);
    if (typeof k === "string") bad(`public_key ${k}`);
    key = k;
  }
  if (raw.roles !== undefined) {
    if (!Array.isArray(raw.roles) || !raw.roles.every((r) => ROLES.includes(r))) {
      bad(`roles must be a list of ${ROLES.map((r) => JSON.stringify(r)).join(", ")}`);
    }
  }
  if (raw.permissions !== undefined) checkPermissions(raw.permissions, bad);
  // The patterns' grammar and the limits, as authorization will read them:
  // a rule that would not compile is refused here, never at a connection's CONNECT.
  const why = authorizationError(raw as unknown as UserEntry);
  if (why !== undefined) bad(why);
  return { entry: raw as unknown as UserEntry, hash, key };
}

function checkPermissions(p: unknown, bad: (msg: string) => never): void {
  if (!isObject(p)) bad("permissions must be an object");
  for (const [action, rules] of Object.entries(p)) {
    if (action === "allow_responses") {
      if (typeof rules !== "boolean") bad("permissions.allow_responses must be true or false");
      continue;
    }
    if (!ACTIONS.has(action)) bad(`unknown permission ${JSON.stringify(action)}`);
    if (!isObject(rules)) bad(`permissions.${action} must be {"allow":[...],"deny":[...]}`);
    for (const [kind, list] of Object.entries(rules)) {
      const field = `permissions.${action}.${kind}`;
      if (kind !== "allow" && kind !== "deny") bad(`unknown field ${field}`);
      if (!Array.isArray(list)) bad(`${field} must be a list of destination patterns`);
      for (const pat of list) {
        if (typeof pat !== "string" || !/^(queue|topic):\S+$/.test(pat)) {
          bad(`${field} holds ${JSON.stringify(pat)}, not a queue:<pattern> or topic:<pattern>`);
        }
      }
    }
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function fail(where: string, msg: string): never {
  throw new ConfigError(`${where}: ${msg}`);
}
