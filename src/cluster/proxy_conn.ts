/**
 * `ProxyConn`: the connection part of a proxy connection to a leader node
 * (`PROXY <node-id>`, docs/CLUSTERING.md), shared by a client connection's
 * `Upstream` and the bindings' `CopyLink`: the dial, the first line, the
 * outbound bytes written once per tick (two buffers taking turns), the read
 * loop, and one end. Its owner speaks the protocol over it: it appends
 * commands to `out`, parses what `received` hands it, and answers what
 * waited when `ended` says why (and whether a byte was written: until then
 * nothing was sent, so nothing was done).
 *
 * @module
 */
import { type Conn, readChunk } from "../runtime/mod.ts";
import { ProxyOut } from "./proxy_wire.ts";

/** What a `ProxyConn` tells its owner. */
export interface ProxyConnOwner {
  /** The leader as texts name it ("the queue's leader n1"). */
  readonly leader: string;
  /** Bytes from the leader; a promise pauses reading until it settles (back-pressure). */
  received(chunk: Uint8Array): Promise<void> | undefined;
  /** Called before each flush: the owner's last words of the tick (a gathered ACK line). */
  flushing?(): void;
  /** It ended, once, for `why`; `sent`: whether any byte was written. */
  ended(why: string, sent: boolean): void;
}

/** One proxy connection to a leader (see the module comment). */
export class ProxyConn {
  /** The bytes waiting to be written; the owner appends its commands. */
  readonly out = new ProxyOut();
  readonly #owner: ProxyConnOwner;
  #conn: Conn | undefined = undefined;
  #writing = false;
  #dead = false;
  #wrote = false;
  /** The read loop (close waits for it). */
  readonly done: Promise<void>;

  constructor(selfId: string, dial: () => Promise<Conn>, owner: ProxyConnOwner) {
    this.#owner = owner;
    this.out.text(`PROXY ${selfId}\r\n`);
    this.done = this.#run(dial);
  }

  /** Whether it is broken or closed. */
  get dead(): boolean {
    return this.#dead;
  }

  /** Writes what `out` holds at the end of this tick (once connected). */
  flushSoon(): void {
    if (this.#writing || this.#conn === undefined) return;
    this.#writing = true;
    queueMicrotask(() => this.#flush());
  }

  /** Ends it for `why` (once): closes the socket, drops what was not written, tells the owner. */
  fail(why: string): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#conn?.close();
    this.out.clear();
    this.#owner.ended(why, this.#wrote);
  }

  async #run(dial: () => Promise<Conn>): Promise<void> {
    const owner = this.#owner;
    let conn: Conn;
    try {
      conn = await dial();
    } catch (e) {
      return this.fail(`cannot reach ${owner.leader}: ${(e as Error).message}`);
    }
    if (this.#dead) return conn.close();
    this.#conn = conn;
    this.flushSoon();
    const reader = conn.read === undefined ? conn.readable.getReader() : undefined;
    try {
      for (;;) {
        const chunk = await readChunk(conn, reader);
        if (chunk == null || this.#dead) break;
        const paused = owner.received(chunk);
        if (paused !== undefined) await paused;
      }
      this.fail(`the connection to ${owner.leader} closed`);
    } catch (e) {
      this.fail(`the connection to ${owner.leader} broke: ${(e as Error).message}`);
    }
  }

  async #flush(): Promise<void> {
    const out = this.out;
    for (;;) {
      // The owner's last words before every write, not only the first: an ACK gathered while a
      // write was on its way (its flushSoon found this loop running) was in no write, and its
      // reply never came (declared_topics_test's binding test, about 1 run in 2 with 256 B reads).
      this.#owner.flushing?.();
      if (out.size === 0 || this.#dead) break;
      const bytes = out.take();
      try {
        this.#wrote = true;
        await this.#conn!.write(bytes);
      } catch (e) {
        this.fail(`cannot write to ${this.#owner.leader}: ${(e as Error).message}`);
      }
      out.release(bytes);
    }
    this.#writing = false;
  }
}
