/**
 * Connections ready to be taken by `Listener.accept()`: the listeners whose
 * sockets arrive by callback (Bun) or finish a TLS handshake on their own
 * time (the TLS listeners) push them here, and the server's accept loop takes
 * them one by one.
 *
 * @module
 */
import type { Conn } from "./types.ts";

/** A queue of accepted connections with the `accept()`/`close()` half of a `Listener`. */
export class AcceptQueue {
  /** Connections not yet taken; the server's loop takes them at once, so this stays short. */
  #ready: Conn[] = [];
  /** Pending `accept()` calls, oldest first. */
  #waiting: ((c: Conn | undefined) => void)[] = [];
  #closed = false;

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Hands `conn` to the oldest `accept()`, or keeps it; closes it once the queue is closed. */
  push(conn: Conn): void {
    if (this.#closed) return conn.close();
    const w = this.#waiting.shift();
    if (w === undefined) this.#ready.push(conn);
    else w(conn);
  }

  /** The next connection; undefined once closed. */
  accept(): Promise<Conn | undefined> {
    if (this.#ready.length > 0) return Promise.resolve(this.#ready.shift());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Closes the connections not taken and ends every pending `accept()`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#ready.splice(0)) c.close();
    for (const w of this.#waiting.splice(0)) w(undefined);
  }
}
