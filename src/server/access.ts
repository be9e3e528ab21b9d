/**
 * What a connection's user may do, and how much: its compiled permissions,
 * the reply-tos it may answer, its resolved limits and its publish-rate
 * bucket. `Connection` asks; this file answers, with the per-destination
 * caches that keep the checks off the per-message path.
 *
 * @module
 */
import {
  Action,
  type Limits,
  type Permissions,
  permissionsOf,
  resolveLimits,
  ResponseGrants,
  TokenBucket,
  type UserEntry,
} from "../auth/mod.ts";

/** One connection's permissions and limits (undefined permissions: everything allowed, no check). */
export class Access {
  /** Its user's compiled permissions; undefined: everything allowed (and no check at all). */
  perms: Permissions | undefined = undefined;
  /** Reply-tos it may answer (`allow_responses` with publish restricted), else undefined. */
  grants: ResponseGrants | undefined = undefined;
  limits: Limits;
  /** Publish-rate bucket: `tokens` is Infinity when unlimited, so a PUB costs one decrement. */
  bucket: TokenBucket;
  /**
   * The destination its last allowed PUB went to: the parser hands a run of
   * PUBs to one destination the same string, so they are checked by identity,
   * without even the cache's map lookup.
   */
  #pubAllowed: string | undefined = undefined;
  readonly #payloadBytesMax: number;

  constructor(payloadBytesMax: number, now: number) {
    this.#payloadBytesMax = payloadBytesMax;
    this.limits = this.limitsOf(undefined);
    this.bucket = new TokenBucket(0, 0, now);
  }

  /** Applies a user's entry (undefined: anonymous): new permissions, limits and bucket. */
  apply(entry: UserEntry | undefined, now: number): void {
    const perms = entry === undefined ? undefined : permissionsOf(entry);
    this.perms = perms;
    this.#pubAllowed = undefined;
    this.grants = perms?.allowResponses && !perms.publishOpen
      ? this.grants ?? new ResponseGrants()
      : undefined;
    const l = this.limits = this.limitsOf(entry);
    this.bucket = new TokenBucket(l.publishRate, l.publishBurst, now);
  }

  /** A user's limits (undefined: anonymous) against this server's defaults. */
  limitsOf(entry: UserEntry | undefined): Limits {
    return resolveLimits(entry?.limits, { maxPayload: this.#payloadBytesMax });
  }

  /** Whether it may publish to `dest` (its own rules, or a reply-to grant, which it uses up). */
  mayPublish(dest: string, now: number): boolean {
    const perms = this.perms;
    if (perms === undefined || dest === this.#pubAllowed) return true;
    if (perms.may(Action.PUBLISH, dest)) {
      this.#pubAllowed = dest;
      return true;
    }
    return this.grants?.take(dest, now) === true;
  }

  /**
   * Whether it may publish to `dest` without using anything up: its own
   * rules, or (leniently) any reply-to grants at all.
   */
  mightPublish(dest: string): boolean {
    return this.perms === undefined || this.grants !== undefined ||
      this.perms.may(Action.PUBLISH, dest);
  }

  /** Whether it may do `action` to `dest`. */
  may(action: Action, dest: string): boolean {
    return this.perms === undefined || this.perms.may(action, dest);
  }

  /** Whether it may subscribe to `dest` (a pattern: refused if nothing it matches is allowed). */
  maySubscribe(dest: string): boolean {
    return this.perms === undefined || this.perms.maySubscribe(dest);
  }

  /** Whether it may do `action` to every destination `pattern` matches. */
  mayAll(action: Action, pattern: string): boolean {
    return this.perms === undefined || this.perms.mayAll(action, pattern);
  }
}
