/**
 * Per-user limits on the gRPC listener. A gRPC call is no connection (a
 * client may open a call per publish, over one HTTP/2 session or many), so
 * what TCP holds per connection is held here per user, across the whole
 * listener: one publish-rate bucket, one count of open subscriptions, one
 * set of `allow_responses` grants. A user may therefore not escape a limit
 * by opening more calls. The token holder and anonymous callers (no
 * users-file entry) have no per-user state: the server's limits apply.
 *
 * @module
 */
import {
  type AuthzCounters,
  type Limits,
  type Principal as AuthPrincipal,
  resolveLimits,
  ResponseGrants,
  TokenBucket,
  type UserEntry,
} from "../auth/mod.ts";
import type { Clock, Timer } from "../runtime/mod.ts";
import type { Principal } from "./auth.ts";

/** One user's state on the gRPC listener. */
export class UserState {
  /** The users-file entry the limits were resolved from (a reload replaces it). */
  entry: UserEntry;
  /** The Authenticator's principal it was last seen with, which a reload reviews. */
  of: AuthPrincipal;
  limits: Limits;
  bucket: TokenBucket;
  /** Reply-to destinations it received on a Subscribe stream (allow_responses); undefined when it has none. */
  grants: ResponseGrants | undefined;
  /** Its open Subscribe subscriptions. */
  subscriptions = 0;

  constructor(entry: UserEntry, p: Principal, maxPayload: number, now: number) {
    this.entry = entry;
    this.of = p.of!;
    this.limits = resolveLimits(entry.limits, { maxPayload });
    this.bucket = new TokenBucket(this.limits.publishRate, this.limits.publishBurst, now);
    this.grants = grantsFor(p);
  }

  /** Takes a reloaded entry: new limits and bucket, the grants kept while still allowed. */
  update(entry: UserEntry, p: Principal, maxPayload: number, now: number): void {
    this.entry = entry;
    this.of = p.of!;
    this.limits = resolveLimits(entry.limits, { maxPayload });
    this.bucket = new TokenBucket(this.limits.publishRate, this.limits.publishBurst, now);
    this.grants = grantsFor(p) === undefined ? undefined : this.grants ?? new ResponseGrants();
  }
}

function grantsFor(p: Principal): ResponseGrants | undefined {
  return p.perms?.allowResponses && !p.perms.publishOpen ? new ResponseGrants() : undefined;
}

/**
 * The users' states, by name: at most one per users-file entry
 * (`AUTH_USERS_MAX`), kept while the server runs, since a bucket forgotten
 * between two calls would hand out a fresh burst.
 */
export class UserStates {
  #users = new Map<string, UserState>();
  #maxPayload: number;

  constructor(maxPayload: number) {
    this.#maxPayload = maxPayload;
  }

  /** The state of `p`'s user, up to date with its entry; undefined without one. */
  of(p: Principal, now: number): UserState | undefined {
    const entry = p.of?.entry;
    if (entry === undefined || p.user === undefined) return undefined;
    let u = this.#users.get(p.user);
    if (u === undefined) {
      this.#users.set(p.user, u = new UserState(entry, p, this.#maxPayload, now));
    } else if (u.entry !== entry) u.update(entry, p, this.#maxPayload, now);
    return u;
  }

  /** Forgets the users a reload removed (their streams have been ended). */
  retain(keep: (p: AuthPrincipal) => boolean): void {
    for (const [user, u] of this.#users) if (!keep(u.of)) this.#users.delete(user);
  }
}

/**
 * Waits until `bucket` holds a token, one timer per wait (never one per
 * message), reading the clock once per wake-up; stops early when the call
 * ends (`gone()`, and `ended` settles then, so no timer outlives the call).
 * Counted as a pause, as TCP's.
 */
export async function untilToken(
  bucket: TokenBucket,
  clock: Clock,
  tick: () => number,
  gone: () => boolean,
  ended: Promise<void>,
  authz: AuthzCounters | undefined,
): Promise<void> {
  bucket.refill(tick());
  if (bucket.tokens >= 1) return;
  const from = clock.now();
  if (authz) authz.publish_paused++;
  for (let ms = bucket.waitMs(); ms > 0 && !gone(); ms = bucket.waitMs()) {
    let timer: Timer | undefined;
    await Promise.race([new Promise<void>((r) => timer = clock.after(ms, r)), ended]);
    timer?.cancel();
    bucket.refill(tick());
  }
  if (authz) authz.publish_paused_ms += clock.now() - from;
}
