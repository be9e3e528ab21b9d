/**
 * Destination permissions: a user's `publish`, `subscribe`, `consume` and
 * `admin` rules compiled once into a `Permissions` object, whose answers are
 * cached per destination, so that the publish path costs one map lookup.
 *
 * Rules are patterns with the topic wildcards (`*` one token, `>` one or more
 * trailing tokens) on either prefix: `queue:orders.*`, `topic:events.>`.
 * Deny wins over allow; an action without an `allow` list allows everything
 * its `deny` list does not name.
 *
 * @module
 */
import { PERMISSION_DECISIONS_MAX } from "../config/mod.ts";
import { destinationError, hasWildcard } from "../protocol/mod.ts";
import { limitsError } from "./limits.ts";
import type { PermissionRules, UserEntry, UserPermissions } from "./types.ts";

/** The actions a destination permission governs (an index into the rule sets). */
export const Action = {
  /** `PUB` to a queue or a topic. */
  PUBLISH: 0,
  /** `SUB` to a topic or a topic pattern. */
  SUBSCRIBE: 1,
  /** `SUB` to a queue. */
  CONSUME: 2,
  /** `DECLARE`, `UNSUB forget:true`. */
  ADMIN: 3,
} as const;
/** One of `Action`. */
export type Action = typeof Action[keyof typeof Action];

const ACTION_NAMES = ["publish", "subscribe", "consume", "admin"] as const;
/** The suffix of a dead-letter queue's name (the broker's `deadLetter`). */
const DLQ_SUFFIX = ".dlq";

/** A pattern split into its prefix (`queue:`/`topic:`) and tokens. */
type Pattern = readonly string[];

/** One action's rules, compiled; undefined lists mean "no list". */
interface RuleSet {
  allow: Pattern[] | undefined;
  deny: Pattern[];
  /** No allow list and no deny list: everything, with no lookup at all. */
  open: boolean;
}

/** Why a permission pattern is not valid, or undefined when it is. */
export function patternError(pattern: string): string | undefined {
  if (typeof pattern !== "string") return "a permission pattern must be a string";
  // A queue pattern is checked as the topic pattern of the same name: the
  // grammar is the same, only queue destinations themselves never hold wildcards.
  const asTopic = pattern.startsWith("queue:") ? "topic:" + pattern.slice(6) : pattern;
  return destinationError(asTopic, true)?.replace(asTopic, pattern);
}

/**
 * A user's compiled permissions. Shared by every connection of the same user
 * entry; a reload makes new entries and so new objects, which is how the
 * cache is invalidated (nothing is ever stale, nothing is cleared by hand).
 */
export class Permissions {
  /** Whether a publish the rules deny may still go to a received message's reply-to. */
  readonly allowResponses: boolean;
  /** Whether every `PUB` is allowed (then the connection skips the check). */
  readonly publishOpen: boolean;
  #sets: RuleSet[];
  /**
   * Decisions by destination: two bits per action (known, allowed), so one
   * lookup answers every action. Bounded by `PERMISSION_DECISIONS_MAX`; when
   * full it is cleared and refilled by use, as nats-server prunes its cache.
   */
  #decisions = new Map<string, number>();

  /** Compiles `p`; throws a `TypeError` naming the first bad rule. */
  constructor(p: UserPermissions | undefined) {
    this.#sets = ACTION_NAMES.map((name) => compileRules(name, p?.[name]));
    this.allowResponses = p?.allow_responses === true;
    this.publishOpen = this.#sets[Action.PUBLISH].open;
  }

  /** Decisions cached now (for tests and stats). */
  get cached(): number {
    return this.#decisions.size;
  }

  /**
   * Whether `action` may be done to `dest` (a concrete destination, or for
   * `SUBSCRIBE` a topic pattern: see `decideWildcard`).
   */
  may(action: Action, dest: string): boolean {
    const set = this.#sets[action];
    if (set.open) return true;
    const shift = action << 1;
    const bits = this.#decisions.get(dest);
    if (bits !== undefined && (bits >> shift & 1) !== 0) return (bits >> shift & 2) !== 0;
    const ok = action === Action.SUBSCRIBE && hasWildcard(dest)
      ? decideWildcard(set, split(dest))
      : decide(set, split(dest));
    if (bits === undefined && this.#decisions.size >= PERMISSION_DECISIONS_MAX) {
      this.#decisions.clear();
    }
    this.#decisions.set(dest, (bits ?? 0) | (ok ? 3 : 1) << shift);
    return ok;
  }

  /**
   * Whether `action` is allowed on every destination `pattern` can match: no
   * deny rule overlaps it and an allow rule covers it. Stricter than `may` on
   * a pattern (which admits a pattern that merely overlaps an allow rule and
   * then decides per topic): for a `BIND`, whose copies would otherwise move
   * messages of topics the user may not read into a queue. Not cached: a
   * `BIND` is rare.
   */
  mayAll(action: Action, pattern: string): boolean {
    const set = this.#sets[action];
    if (set.open) return true;
    const p = split(pattern);
    for (const d of set.deny) if (overlaps(d, p)) return false;
    if (set.allow === undefined) return true;
    for (const a of set.allow) if (covers(a, p)) return true;
    return false;
  }

  /**
   * Whether a `SUB` to `dest` is allowed: `consume` for a queue, `subscribe`
   * for a topic or pattern. A dead-letter queue `<q>.dlq` holds `<q>`'s
   * messages, so consuming it needs `consume` of `<q>` as well: a user kept
   * from `queue:x` must not read x's messages once they fail.
   */
  maySubscribe(dest: string): boolean {
    if (dest.charCodeAt(0) !== 0x71 /* q */) return this.may(Action.SUBSCRIBE, dest);
    for (let q = dest;; q = q.slice(0, -DLQ_SUFFIX.length)) {
      if (!this.may(Action.CONSUME, q)) return false;
      if (!q.endsWith(DLQ_SUFFIX) || q.length <= 6 + DLQ_SUFFIX.length) return true;
    }
  }
}

/**
 * Why a users-file entry's `permissions` or `limits` cannot be used, or
 * undefined when they can: what loading the users file reports (exit 2, or a
 * refused reload), so a bad pattern never reaches a connection.
 */
export function authorizationError(
  entry: Pick<UserEntry, "permissions" | "limits">,
): string | undefined {
  try {
    new Permissions(entry.permissions);
  } catch (e) {
    return (e as Error).message;
  }
  return limitsError(entry.limits);
}

const compiled = new WeakMap<UserEntry, Permissions>();

/** The compiled permissions of a user entry, made on first use and then shared. */
export function permissionsOf(entry: UserEntry): Permissions {
  let p = compiled.get(entry);
  if (p === undefined) compiled.set(entry, p = new Permissions(entry.permissions));
  return p;
}

function compileRules(action: string, r: PermissionRules | undefined): RuleSet {
  const list = (which: "allow" | "deny"): Pattern[] | undefined => {
    const l = r?.[which];
    if (l === undefined) return undefined;
    if (!Array.isArray(l)) throw new TypeError(`permissions.${action}.${which} must be a list`);
    return l.map((p) => {
      const why = patternError(p);
      if (why !== undefined) throw new TypeError(`permissions.${action}.${which}: ${why}`);
      return split(p);
    });
  };
  const allow = list("allow");
  const deny = list("deny") ?? [];
  return { allow, deny, open: allow === undefined && deny.length === 0 };
}

/** `queue:a.b` -> `["queue:", "a", "b"]`: the prefix is a token that must be equal. */
function split(dest: string): string[] {
  const t = dest.slice(6).split(".");
  t.unshift(dest.slice(0, 6));
  return t;
}

/** A concrete destination: denied by any deny match, else allowed by an allow match (or no list). */
function decide(set: RuleSet, dest: Pattern): boolean {
  for (const d of set.deny) if (covers(d, dest)) return false;
  if (set.allow === undefined) return true;
  for (const a of set.allow) if (covers(a, dest)) return true;
  return false;
}

/**
 * A subscription pattern is refused when everything it could match is
 * denied (a deny pattern covers it), or when it overlaps no allow pattern.
 * Otherwise it is accepted, and each topic it binds to is decided on its own
 * (`decide`), so the subscription only ever receives topics the user may read.
 */
function decideWildcard(set: RuleSet, pattern: Pattern): boolean {
  for (const d of set.deny) if (covers(d, pattern)) return false;
  if (set.allow === undefined) return true;
  for (const a of set.allow) if (overlaps(a, pattern)) return true;
  return false;
}

/** Whether every destination `inner` matches is matched by `outer` (for a concrete `inner`: whether it matches). */
export function covers(outer: Pattern, inner: Pattern): boolean {
  for (let i = 0; i < outer.length; i++) {
    const o = outer[i];
    if (i >= inner.length) return false;
    const t = inner[i];
    if (o === ">") return true;
    if (t === ">") return false;
    if (o !== "*" && (t === "*" || o !== t)) return false;
  }
  return outer.length === inner.length;
}

/** Whether some destination matches both patterns. */
export function overlaps(a: Pattern, b: Pattern): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === ">" || y === ">") return true;
    if (x !== "*" && y !== "*" && x !== y) return false;
  }
  return a.length === b.length;
}

/** `split` for tests and callers that hold a pattern string. */
export function tokens(dest: string): Pattern {
  return split(dest);
}
