/**
 * Per-user limits: the user entry's `limits` resolved against the server's
 * defaults, the publish-rate token bucket, the count of each user's open
 * connections, and the reply-to grants of `allow_responses`.
 *
 * @module
 */
import {
  PENDING_BYTES_MAX,
  RESPONSE_GRANT_MS,
  RESPONSE_GRANTS_MAX,
  SUBSCRIPTIONS_PER_CONNECTION_MAX,
} from "../config/mod.ts";
import type { UserLimits } from "./types.ts";

/** A user's limits with every field filled in. */
export interface Limits {
  /** Open connections of the user at once (Infinity: only the server's limit). */
  connections: number;
  subscriptions: number;
  maxPayload: number;
  /** Messages per second; 0: unlimited. */
  publishRate: number;
  /** Token bucket size, in messages. */
  publishBurst: number;
  pendingBytes: number;
}

/** The server-wide values a user's limits default to and may not exceed. */
export interface LimitDefaults {
  maxPayload: number;
}

const FIELDS = [
  "connections",
  "subscriptions",
  "max_payload",
  "publish_rate",
  "publish_burst",
  "pending_bytes",
] as const;

/** Why `l` is not a valid `limits` object, or undefined when it is. */
export function limitsError(l: unknown): string | undefined {
  if (l === undefined) return undefined;
  if (typeof l !== "object" || l === null || Array.isArray(l)) return "limits must be an object";
  for (const [k, v] of Object.entries(l)) {
    if (!(FIELDS as readonly string[]).includes(k)) {
      return `unknown limit ${JSON.stringify(k)} (known: ${FIELDS.join(", ")})`;
    }
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
      return `limits.${k} must be a whole number of at least 1`;
    }
  }
  return undefined;
}

/**
 * `l` resolved: absent fields take the server's values; a user may be held
 * tighter than the server, never looser (a `max_payload` over `--max-payload`
 * is cut to it, as nats-server does).
 */
export function resolveLimits(l: UserLimits | undefined, d: LimitDefaults): Limits {
  const rate = l?.publish_rate ?? 0;
  return {
    connections: l?.connections ?? Infinity,
    subscriptions: Math.min(l?.subscriptions ?? Infinity, SUBSCRIPTIONS_PER_CONNECTION_MAX),
    maxPayload: Math.min(l?.max_payload ?? Infinity, d.maxPayload),
    publishRate: rate,
    publishBurst: l?.publish_burst ?? Math.max(1, rate),
    pendingBytes: Math.min(l?.pending_bytes ?? Infinity, PENDING_BYTES_MAX),
  };
}

/**
 * Server-wide authorization figures, so that a refusal or a pause is a
 * counted event (`/api/stats` `authorization`, `/metrics`), not only a line
 * to one client.
 */
export interface AuthzCounters {
  /** Commands answered `ERR PERMISSION_DENIED`. */
  permission_denied: number;
  /** Times a connection stopped reading for its user's `publish_rate`. */
  publish_paused: number;
  /** Milliseconds connections spent paused so, summed. */
  publish_paused_ms: number;
}

/**
 * A token bucket of messages. It is refilled from the clock the connection
 * reads once per batch, never by a timer; `tokens` goes below 1 and the
 * connection stops reading until `waitMs()` has passed.
 */
export class TokenBucket {
  /** Messages that may be published now; `Infinity` when unlimited, so taking one costs a decrement. */
  tokens: number;
  #rate: number;
  #burst: number;
  #at: number;

  constructor(ratePerS: number, burst: number, now: number) {
    this.#rate = ratePerS;
    this.#burst = burst;
    this.tokens = ratePerS === 0 ? Infinity : burst;
    this.#at = now;
  }

  /** Whether a rate applies at all. */
  get limited(): boolean {
    return this.#rate !== 0;
  }

  /** Adds what `now - last refill` earned, up to the burst. */
  refill(now: number): void {
    if (this.#rate === 0) return;
    const earned = (now - this.#at) * this.#rate / 1000;
    if (earned > 0) {
      this.tokens = Math.min(this.#burst, this.tokens + earned);
      this.#at = now;
    }
  }

  /** How long until a whole token is there again (0: now). */
  waitMs(): number {
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * 1000 / this.#rate);
  }
}

/**
 * Open connections per user across the server, for the `connections` limit.
 * One entry per user with a connection open, so it is bounded by the
 * server's connection limit.
 */
export class UserConnections {
  #open = new Map<string, number>();

  /** Counts one more connection of `user`; false (and nothing counted) when it is at `max`. */
  acquire(user: string, max: number): boolean {
    const n = this.#open.get(user) ?? 0;
    if (n >= max) return false;
    this.#open.set(user, n + 1);
    return true;
  }

  /** Counts one connection of `user` less. */
  release(user: string): void {
    const n = this.#open.get(user) ?? 0;
    if (n <= 1) this.#open.delete(user);
    else this.#open.set(user, n - 1);
  }

  /** Open connections of `user`. */
  count(user: string): number {
    return this.#open.get(user) ?? 0;
  }
}

/**
 * `allow_responses`: the reply-to destinations of messages a connection
 * received, each good for one publish within `RESPONSE_GRANT_MS` (nats-server's
 * default is one response too). At most `RESPONSE_GRANTS_MAX`, the oldest
 * forgotten first, so a flood of requests cannot grow it.
 */
export class ResponseGrants {
  /** Reply-to -> [responses left, expiry (epoch ms)]; insertion order is age order. */
  #grants = new Map<string, [number, number]>();

  /** Number of destinations granted now. */
  get size(): number {
    return this.#grants.size;
  }

  /** A message with `replyTo` was delivered at `now`. */
  grant(replyTo: string, now: number): void {
    const g = this.#grants.get(replyTo);
    if (g !== undefined) this.#grants.delete(replyTo);
    else if (this.#grants.size >= RESPONSE_GRANTS_MAX) {
      this.#grants.delete(this.#grants.keys().next().value!);
    }
    this.#grants.set(replyTo, [(g?.[0] ?? 0) + 1, now + RESPONSE_GRANT_MS]);
  }

  /** Takes one response to `dest` if one is granted and not expired. */
  take(dest: string, now: number): boolean {
    const g = this.#grants.get(dest);
    if (g === undefined) return false;
    if (g[1] < now || --g[0] === 0) this.#grants.delete(dest);
    return g[1] >= now;
  }
}
