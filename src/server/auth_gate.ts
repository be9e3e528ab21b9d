/**
 * The gate in front of a connection that must authenticate: the INFO
 * greeting with the nonce a key user signs, the deadline to authenticate by,
 * and the frames allowed before the verdict (CONNECT, PING, PONG, INFO and
 * the parser's errors; anything else gets `ERR AUTH_REQUIRED`).
 *
 * @module
 */
import { type Authenticator, newNonce, type Principal } from "../auth/mod.ts";
import { AUTH_NONCE_BYTES } from "../config/mod.ts";
import type { ConnectFrame, Frame } from "../protocol/mod.ts";
import type { Clock, Timer } from "../runtime/mod.ts";
import { CloseReason } from "./close_reason.ts";
import type { Replies } from "./replies.ts";

/** What the gate needs from its connection. */
export interface GateHost {
  readonly auth: Authenticator;
  readonly clock: Clock;
  readonly timeoutMs: number;
  readonly replies: Replies;
  readonly remoteAddr: string;
  readonly peerCertSubject: string | undefined;
  isClosed(): boolean;
  /** Handles a frame allowed before authentication. */
  handle(f: Frame): void;
  close(reason: CloseReason, detail: string): void;
  /** The CONNECT succeeded as `p`: apply it (false: the connection was closed instead). */
  authenticated(p: Principal, f: ConnectFrame): void;
}

/** One connection's authentication gate (open once a CONNECT succeeded). */
export class AuthGate {
  readonly #h: GateHost;
  /** The nonce of the INFO greeting, set until the connection authenticates. */
  #nonce: string | undefined;
  #timer: Timer | undefined = undefined;

  constructor(host: GateHost) {
    this.#h = host;
    this.#nonce = newNonce(AUTH_NONCE_BYTES);
  }

  /** Whether a CONNECT has succeeded. */
  get open(): boolean {
    return this.#nonce === undefined;
  }

  /** The INFO JSON with the nonce while the gate is shut. */
  info(info: string): string {
    return this.#nonce === undefined ? info : `${info.slice(0, -1)},"nonce":"${this.#nonce}"}`;
  }

  /** The INFO greeting, and the deadline to authenticate by. */
  greet(info: string): void {
    const h = this.#h;
    h.replies.ascii(`INFO ${this.info(info)}\r\n`);
    const ms = h.timeoutMs;
    this.#timer = h.clock.after(ms, () => {
      h.close(CloseReason.AUTH_TIMEOUT, `no successful CONNECT within ${ms} ms`);
    });
  }

  /** Stops the deadline (the connection closed). */
  cancel(): void {
    this.#timer?.cancel();
  }

  /**
   * The frames of a connection that has not authenticated. A CONNECT is
   * awaited before the next frame, and nothing more is read meanwhile (the
   * read loop waits on this), so no frame is handled before the verdict, and
   * a failed attempt's delay holds the connection's reading too. Returns
   * where the frames behind a successful CONNECT start (the batch's length
   * when none succeeded).
   */
  async filter(frames: Frame[]): Promise<number> {
    const h = this.#h;
    for (let i = 0; i < frames.length && !h.isClosed(); i++) {
      const f = frames[i];
      if (this.#nonce === undefined) return i; // authenticated: the rest under its user's limits
      if (f.op === "CONNECT") await this.#authenticate(f);
      else if (f.op === "PING" || f.op === "PONG" || f.op === "INFO" || f.op === "ERR") {
        h.handle(f);
      } else h.replies.error("AUTH_REQUIRED", "authenticate with CONNECT first");
    }
    return frames.length;
  }

  async #authenticate(f: ConnectFrame): Promise<void> {
    const h = this.#h;
    // The attempt is being judged: its answer is the verdict, however long the failure delay.
    this.#timer?.cancel();
    const p = await h.auth.authenticate(f.options.auth ?? {}, {
      nonce: this.#nonce!,
      remoteAddr: h.remoteAddr,
      peerCertSubject: h.peerCertSubject,
    });
    if (h.isClosed()) return;
    if (p === undefined) return h.close(CloseReason.AUTH_FAILED, "authentication failed");
    this.#nonce = undefined;
    h.authenticated(p, f);
  }
}
