/**
 * The log of connections the cluster port refuses (a failed TLS or HMAC
 * handshake): at most one line per peer host per
 * `CLUSTER_AUTH_LOG_INTERVAL_MS`, saying how many were refused since, so a
 * misconfigured or hostile peer redialling in a loop cannot flood the log.
 *
 * @module
 */
import { CLUSTER_AUTH_LOG_INTERVAL_MS, CLUSTER_AUTH_LOG_PEERS_MAX } from "../config/mod.ts";

/** Rate-limited refusal lines, per peer host (see the module comment). */
export class RefusalLog {
  readonly #log: (level: "warn", message: string) => void;
  /** Per peer host: when its last refusal was logged, and refusals since. */
  #logged = new Map<string, { at: number; since: number }>();

  constructor(log: (level: "warn", message: string) => void) {
    this.#log = log;
  }

  /** A connection from `addr` (`host:port`) was refused for `reason` (which names no secret). */
  refused(addr: string, reason: string): void {
    const host = addr.slice(0, Math.max(0, addr.lastIndexOf(":"))) || addr;
    const now = Date.now();
    let l = this.#logged.get(host);
    if (l === undefined) {
      if (this.#logged.size >= CLUSTER_AUTH_LOG_PEERS_MAX) this.#logged.clear();
      this.#logged.set(host, l = { at: -Infinity, since: 0 });
    }
    l.since++;
    if (now - l.at < CLUSTER_AUTH_LOG_INTERVAL_MS) return;
    const more = l.since > 1 ? ` (${l.since} refusals from ${host} since the last log)` : "";
    this.#log("warn", `cluster connection from ${addr} refused: ${reason}${more}`);
    l.at = now;
    l.since = 0;
  }
}
