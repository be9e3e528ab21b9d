/**
 * Decides who a `CONNECT` (or an HTTP request) is: the `--auth-token`, a
 * user's password, a user's Ed25519 signature of the connection's nonce, or
 * a user's client-certificate subject. A failure is answered only after a
 * delay that grows with the failures of the remote address (attempts.ts), so
 * guessing costs the guesser time. Reload swaps the token and users in one
 * step and says, for each authenticated connection, whether it stays, gets a
 * new entry, or is revoked.
 *
 * Nothing here logs, and no error text carries a credential.
 *
 * @module
 */
import { AUTH_CHECKS_PER_ADDRESS_MAX, AUTH_SECRET_BYTES_MAX } from "../config/mod.ts";
import { type Clock, sha256, type Timer, timingSafeEqual } from "../runtime/mod.ts";
import { addressKey, FailedAttempts, hostOf } from "./attempts.ts";
import { verifyNonce } from "./keys.ts";
import { type PasswordHash, SCRYPT_DEFAULT, verifyPassword } from "./password.ts";
import { type AuthMethod, type Principal, TOKEN_PRINCIPAL } from "./principal.ts";
import type { User, UserTable } from "./users.ts";

/** The credential fields of a `CONNECT`. */
export interface Credentials {
  auth_token?: string;
  user?: string;
  pass?: string;
  public_key?: string;
  sig?: string;
}

/** What the connection knows about itself when it authenticates. */
export interface AuthContext {
  /** The nonce of its `INFO` greeting. */
  nonce: string;
  /** `host:port` of the peer; failures count per host. */
  remoteAddr: string;
  /** The verified client certificate's subject (mTLS). */
  peerCertSubject?: string;
}

/** The token and users in force. */
export interface AuthConfig {
  token: string | undefined;
  users: UserTable | undefined;
}

/** Authentication figures for `/api/stats` and `/metrics`. */
export interface AuthStats {
  users: number;
  successes: number;
  failures: number;
  revoked: number;
  failed_addresses: number;
  failed_addresses_evicted: number;
  /** Logins refused unchecked because their address's backlog of failures was full. */
  lockouts: number;
}

/** A reload's verdict on one principal: itself (unchanged), a new one (new entry), or null (revoked). */
export type Review = (p: Principal) => Principal | null;

const EMPTY: UserTable = { byName: new Map(), byKey: new Map(), byCert: new Map() };
/** The salt and hash of the stand-in hash an unknown name is verified against (never matched). */
const ZEROS = new Uint8Array(32);

/**
 * What an unknown user name is verified against, so that it costs what a
 * wrong password does: a hash with the scrypt parameters of the users'
 * own hashes (those of the first password user; all made by `relayr passwd`
 * share them). With fixed parameters, users hashed at another cost answered
 * at another speed than unknown names, and timing told which names exist.
 */
export function standInFor(users: UserTable): PasswordHash {
  let params = SCRYPT_DEFAULT;
  for (const u of users.byName.values()) {
    if (u.hash !== undefined) {
      params = u.hash.params;
      break;
    }
  }
  return { params, salt: ZEROS.subarray(0, 16), hash: ZEROS };
}
const utf8 = new TextEncoder();

/** Authentication, on when a token or a users file is configured. */
export class Authenticator {
  readonly attempts: FailedAttempts = new FailedAttempts();
  successes = 0;
  revoked = 0;
  #clock: Clock;
  #token: Uint8Array | undefined;
  #users: UserTable;
  #standIn: PasswordHash;
  /** Failure answers waiting out their delay; `close()` ends them at once. */
  #waits = new Set<{ timer: Timer; done: () => void }>();
  #closed = false;
  /** Addresses with checks running: how many, and the logins waiting for a turn (one entry per connection at most). */
  #checking = new Map<string, { running: number; waiting: (() => void)[] }>();
  /**
   * The verdict of the latest reload, for a login judged across it: a
   * password or signature check awaits, and a reload in between must apply to
   * its principal too (the server reviews only connections already in).
   */
  #review: Review = (p) => p;

  constructor(config: AuthConfig, clock: Clock) {
    this.#clock = clock;
    this.#token = digest(config.token);
    this.#users = config.users ?? EMPTY;
    this.#standIn = standInFor(this.#users);
  }

  /**
   * The principal of a `CONNECT`, or undefined once the failure delay of its
   * address has passed. Explicit credentials are judged first; without any,
   * a client certificate whose subject names a user logs in as that user.
   */
  async authenticate(c: Credentials, ctx: AuthContext): Promise<Principal | undefined> {
    const host = hostOf(ctx.remoteAddr);
    if (this.attempts.blocked(host, this.#clock.now())) return undefined;
    // A few checks of one address at a time, and the backlog asked again
    // after the wait: the failures of the checks before it count by then.
    const turn = this.#turn(host);
    if (turn !== true && !await turn) return undefined;
    const review = this.#review;
    let p: Principal | undefined;
    try {
      p = await this.#judge(c, ctx);
    } finally {
      this.#done(host);
    }
    if (p !== undefined) {
      // Reloaded meanwhile: judged against the old users, so reviewed as an
      // open connection is (a removed user or changed credential: refused,
      // at once and uncounted: the credential was right when it was checked).
      const now = this.#review === review ? p : this.#review(p);
      if (now !== null) this.successes++;
      return now ?? undefined;
    }
    await this.#wait(this.attempts.fail(host, this.#clock.now()));
    return undefined;
  }

  /**
   * Waits until fewer than `AUTH_CHECKS_PER_ADDRESS_MAX` checks of `host`
   * run, and takes a turn; false (nothing taken) when, meanwhile, the
   * address's backlog of failures filled up. `true` at once when there is
   * room (no await: the check starts in the same turn of the event loop).
   */
  #turn(host: string): true | Promise<boolean> {
    let c = this.#checking.get(host);
    if (c === undefined) this.#checking.set(host, c = { running: 0, waiting: [] });
    if (c.running < AUTH_CHECKS_PER_ADDRESS_MAX) {
      c.running++;
      return true;
    }
    return new Promise<void>((resolve) => c.waiting.push(resolve)).then(() => {
      // `#done` handed its turn over: `running` already counts this one.
      if (!this.attempts.blocked(host, this.#clock.now())) return true;
      this.#done(host);
      return false;
    });
  }

  /** A check of `host` ended: its turn goes to the next waiting login, if any. */
  #done(host: string): void {
    const c = this.#checking.get(host)!;
    const next = c.waiting.shift();
    if (next !== undefined) return next(); // the turn passes on; `running` stays
    if (--c.running === 0) this.#checking.delete(host);
  }

  /** Waits `ms` on the clock, unless `close()` comes first. */
  #wait(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const w = {
        timer: this.#clock.after(ms, () => w.done()),
        done: () => {
          this.#waits.delete(w);
          w.timer.cancel();
          resolve();
        },
      };
      this.#waits.add(w);
    });
  }

  /**
   * The server is stopping: failure answers waiting out their delay are
   * given now (their connections are closing anyway), and later ones do
   * not wait, so no delay holds up a shutdown or outlives the server.
   */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#waits]) w.done();
  }

  async #judge(c: Credentials, ctx: AuthContext): Promise<Principal | undefined> {
    if (c.auth_token !== undefined) {
      return this.#tokenMatches(c.auth_token) ? TOKEN_PRINCIPAL : undefined;
    }
    if (c.pass !== undefined) {
      return c.user === undefined ? undefined : await this.#password(c.user, c.pass);
    }
    if (c.public_key !== undefined || c.sig !== undefined) {
      const u = c.public_key === undefined ? undefined : this.#users.byKey.get(c.public_key);
      if (u?.key === undefined || c.sig === undefined) return undefined;
      if (c.user !== undefined && c.user !== u.entry.user) return undefined;
      return await verifyNonce(u.key, ctx.nonce, c.sig) ? principalOf(u, "key") : undefined;
    }
    if (ctx.peerCertSubject !== undefined) {
      const u = this.#users.byCert.get(ctx.peerCertSubject);
      if (u === undefined || (c.user !== undefined && c.user !== u.entry.user)) return undefined;
      return principalOf(u, "cert");
    }
    return undefined;
  }

  /** A password user, checked in constant work whether or not the name exists. */
  async #password(user: string, pass: string): Promise<Principal | undefined> {
    const u = this.#users.byName.get(user);
    const ok = await verifyPassword(pass, u?.hash ?? this.#standIn);
    return ok && u?.hash !== undefined ? principalOf(u, "password") : undefined;
  }

  #tokenMatches(token: string): boolean {
    const want = this.#token;
    if (want === undefined || token.length > AUTH_SECRET_BYTES_MAX) return false;
    return timingSafeEqual(sha256(utf8.encode(token)), want);
  }

  /**
   * The principal of an HTTP `Authorization` header: `Bearer <auth-token>`,
   * or `Basic` with a password user's `user:password`. A failure waits out
   * the failure delay of the client's address `peer`, so guessing over HTTP
   * is slowed as over TCP, and one guesser does not lock every monitor out
   * (all of HTTP counted as one address did). A request without the header
   * guessed nothing: it is refused at once and not counted.
   */
  async httpPrincipal(header: string | null, peer: string): Promise<Principal | undefined> {
    if (header === null) return undefined;
    const host = addressKey(peer); // one count per address across the client and HTTP ports
    if (this.attempts.blocked(host, this.#clock.now())) return undefined;
    const review = this.#review;
    let p: Principal | undefined;
    if (header?.startsWith("Bearer ")) {
      if (this.#tokenMatches(header.slice(7).trim())) p = TOKEN_PRINCIPAL;
    } else if (header?.startsWith("Basic ")) {
      let pair = "";
      try {
        pair = new TextDecoder().decode(Uint8Array.fromBase64(header.slice(6).trim()));
      } catch { /* not base64: fails below */ }
      const colon = pair.indexOf(":");
      if (colon > 0) {
        // A scrypt check: in turn with the address's other checks, as over TCP.
        const turn = this.#turn(host);
        if (turn !== true && !await turn) return undefined;
        try {
          p = await this.#password(pair.slice(0, colon), pair.slice(colon + 1));
        } finally {
          this.#done(host);
        }
      }
    }
    if (p !== undefined) return (this.#review === review ? p : this.#review(p)) ?? undefined;
    await this.#wait(this.attempts.fail(host, this.#clock.now()));
    return undefined;
  }

  /**
   * Puts a new token and users in force; returns the verdict on each
   * authenticated connection: revoked when its user is gone or the
   * credential it used changed (or, for the token holder, the token
   * changed), a new principal when only its entry changed, else itself.
   */
  reload(config: AuthConfig): Review {
    const tokenChanged = !sameDigest(this.#token, digest(config.token));
    this.#token = digest(config.token);
    this.#users = config.users ?? EMPTY;
    this.#standIn = standInFor(this.#users);
    const users = this.#users;
    return this.#review = (p) => {
      if (p.method === "token") return tokenChanged ? null : p;
      const u = users.byName.get(p.user);
      if (u === undefined || credentialOf(u.entry, p.method) !== credentialOf(p.entry!, p.method)) {
        return null;
      }
      return JSON.stringify(u.entry) === JSON.stringify(p.entry) ? p : principalOf(u, p.method);
    };
  }

  /** Its figures. */
  stats(): AuthStats {
    return {
      users: this.#users.byName.size,
      successes: this.successes,
      failures: this.attempts.failures,
      revoked: this.revoked,
      failed_addresses: this.attempts.size,
      failed_addresses_evicted: this.attempts.evicted,
      lockouts: this.attempts.lockouts,
    };
  }
}

function principalOf(u: User, method: AuthMethod): Principal {
  return { user: u.entry.user, roles: u.entry.roles ?? [], entry: u.entry, method };
}

function credentialOf(e: User["entry"], method: AuthMethod): string | undefined {
  return method === "password" ? e.password : method === "key" ? e.public_key : e.cert_subject;
}

function digest(token: string | undefined): Uint8Array | undefined {
  return token === undefined ? undefined : sha256(utf8.encode(token));
}

function sameDigest(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a === undefined || b === undefined ? a === b : timingSafeEqual(a, b);
}
