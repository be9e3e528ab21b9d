/**
 * Failed TLS handshakes: counted (for `/api/stats` and `/metrics`) and
 * logged, one line each up to `TLS_FAILURE_LOGS_PER_S` a second; beyond that
 * one line per second says how many were not logged, so a port scan or a
 * client with a bad certificate retrying in a loop cannot flood the log.
 *
 * @module
 */
import { TLS_FAILURE_LOGS_PER_S } from "../config/mod.ts";
import type { Clock } from "../runtime/mod.ts";

/** Where the lines go: the server's log function. */
export type FailureLog = (
  level: "info",
  message: string,
  props: Record<string, unknown>,
) => void;

/** The count and the rate-limited log of failed handshakes. */
export class HandshakeFailures {
  /** Failed handshakes since start. */
  total = 0;
  #clock: Clock;
  #log: FailureLog;
  #windowStart = -Infinity;
  #logged = 0;
  #suppressed = 0;

  constructor(clock: Clock, log: FailureLog) {
    this.#clock = clock;
    this.#log = log;
  }

  /** One failed handshake from `addr`; `reason` is the TLS error, never key material. */
  record(addr: string, reason: string): void {
    this.total++;
    const now = this.#clock.now();
    if (now - this.#windowStart >= 1000) {
      if (this.#suppressed > 0) {
        this.#log("info", "{n} more TLS handshakes failed (not logged one by one)", {
          n: this.#suppressed,
        });
      }
      this.#windowStart = now;
      this.#logged = 0;
      this.#suppressed = 0;
    }
    if (this.#logged < TLS_FAILURE_LOGS_PER_S) {
      this.#logged++;
      this.#log("info", "TLS handshake from {addr} failed: {reason}", { addr, reason });
    } else {
      this.#suppressed++;
    }
  }
}
