/**
 * Failed logins per remote address, for the growing delay before a failed
 * `CONNECT` is answered. An address's failures are answered in turn, each
 * `delayFor(n)` after the previous answer, so opening many connections at
 * once does not guess faster: the rate is one failure per delay, at most
 * one per `AUTH_FAIL_DELAY_MS_MAX` once warmed up. While more than
 * `AUTH_FAIL_BACKLOG_MS_MAX` of answers wait, the address is refused at
 * once without its credentials being checked (`blocked`). The map is bounded (`AUTH_FAILED_ADDRESSES_MAX`,
 * the least recently failing address forgotten first: a `Map` keeps
 * insertion order, and a failure moves its address to the end), so a flood
 * of addresses costs the broker a fixed amount of memory, and a million
 * wrong guesses from one address cost it the capped delay each: time, not
 * memory.
 *
 * @module
 */
import {
  AUTH_FAIL_BACKLOG_MS_MAX,
  AUTH_FAIL_DELAY_MS_MAX,
  AUTH_FAIL_DELAY_MS_MIN,
  AUTH_FAIL_FORGET_MS,
  AUTH_FAILED_ADDRESSES_MAX,
} from "../config/mod.ts";

interface Entry {
  failures: number;
  last: number;
  /** When the latest failure of the address is answered. */
  answerAt: number;
}

/** Failed attempts by address, bounded. */
export class FailedAttempts {
  /** Failed attempts ever, those refused unchecked (backlog full), and addresses forgotten to keep the map in bounds. */
  failures = 0;
  lockouts = 0;
  evicted = 0;
  #map = new Map<string, Entry>();
  #max: number;

  /** @param max addresses remembered at most */
  constructor(max: number = AUTH_FAILED_ADDRESSES_MAX) {
    this.#max = max;
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * Whether `address` has more than `AUTH_FAIL_BACKLOG_MS_MAX` of failures
   * waiting for their answer: then a login is refused unchecked (counted).
   */
  blocked(address: string, now: number): boolean {
    const e = this.#map.get(address);
    if (e === undefined || e.answerAt - now <= AUTH_FAIL_BACKLOG_MS_MAX) return false;
    this.lockouts++;
    this.failures++;
    return true;
  }

  /**
   * Records a failure of `address` at `now`; returns how long to wait
   * before answering it: `AUTH_FAIL_DELAY_MS_MIN` doubled per earlier failure
   * of the address, capped at `AUTH_FAIL_DELAY_MS_MAX`, after the answer to
   * its previous failure.
   *
   * @example
   * ```ts
   * import { FailedAttempts } from "./attempts.ts";
   * const a = new FailedAttempts(2);
   * console.assert(a.fail("10.0.0.1", 0) < a.fail("10.0.0.1", 0));
   * ```
   */
  fail(address: string, now: number): number {
    let e = this.#map.get(address);
    if (e !== undefined) {
      this.#map.delete(address); // re-inserted at the end: the most recent
      if (now - e.last > AUTH_FAIL_FORGET_MS) e.failures = 0;
    } else {
      e = { failures: 0, last: now, answerAt: now };
      if (this.#map.size >= this.#max) {
        this.#map.delete(this.#map.keys().next().value!);
        this.evicted++;
      }
    }
    e.failures++;
    e.last = now;
    e.answerAt = Math.max(e.answerAt, now) + delayFor(e.failures);
    this.#map.set(address, e);
    this.failures++;
    return e.answerAt - now;
  }

  /** Forgets the failures of `address` (an operator unblocking a host after fixing its credentials). */
  forget(address: string): void {
    this.#map.delete(address);
  }

  /** Failures of `address` that still count. */
  failuresOf(address: string, now: number): number {
    const e = this.#map.get(address);
    return e === undefined || now - e.last > AUTH_FAIL_FORGET_MS ? 0 : e.failures;
  }
}

/** The delay before answering the `n`th failure (1-based) of one address. */
export function delayFor(n: number): number {
  return Math.min(AUTH_FAIL_DELAY_MS_MIN * 2 ** Math.min(n - 1, 30), AUTH_FAIL_DELAY_MS_MAX);
}

/**
 * The key the failures of `host:port` count under (`addressKey` of its host):
 * failures count per address, not per socket.
 */
export function hostOf(remoteAddr: string): string {
  const colon = remoteAddr.lastIndexOf(":");
  return addressKey(colon > 0 ? remoteAddr.slice(0, colon) : remoteAddr);
}

/**
 * The key the failures of an IP address count under: an IPv4 address itself
 * (also written IPv4-mapped, `::ffff:1.2.3.4`), an IPv6 address's /64. One
 * IPv6 host is usually given a whole /64 and can pick a new address from it
 * for every attempt; counted per address it would start afresh at the
 * smallest delay each time, and could flush the bounded map of everyone
 * else's failures. The price: hosts sharing a /64 share one count, as hosts
 * behind one IPv4 NAT do (docs/SECURITY.md).
 *
 * @example
 * ```ts
 * import { addressKey } from "./attempts.ts";
 * console.assert(addressKey("2001:db8:1:2::5") === addressKey("2001:db8:1:2:ffff::9"));
 * ```
 */
export function addressKey(ip: string): string {
  let a = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  const zone = a.indexOf("%");
  if (zone >= 0) a = a.slice(0, zone);
  if (!a.includes(":")) return a;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped !== null) return mapped[1];
  const gap = a.indexOf("::");
  const head = (gap < 0 ? a : a.slice(0, gap)).split(":").filter((g) => g !== "");
  if (gap >= 0) {
    const tail = a.slice(gap + 2).split(":").filter((g) => g !== "");
    const tailGroups = tail.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
    while (head.length < 8 - tailGroups) head.push("0");
    head.push(...tail);
  }
  return head.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":") + "::/64";
}
