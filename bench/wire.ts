/**
 * A TCP connection for the drivers: reads straight into one growing buffer
 * (no per-chunk allocation), writes serialized through one promise chain so
 * frames from the sender loop and answers from the reader never interleave.
 * Bench is Deno-only tooling, so this uses `Deno.connect` directly.
 *
 * @module
 */

/** Initial read buffer; grows to fit a frame larger than it. */
const READ_BYTES = 1024 * 1024;

/** One client connection. */
export class Wire {
  /** Read buffer; `buf[0, end)` holds bytes not yet consumed. */
  buf = new Uint8Array(READ_BYTES);
  /** End of the unconsumed bytes in `buf`. */
  end = 0;
  /** Bytes handed to `write` and not yet written. */
  pendingBytes = 0;
  /** First read or write failure, unless it came after `close()`. */
  failure: string | null = null;
  #conn: Deno.Conn;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /**
   * Connects to `hostname:port` with Nagle off; with `ca` (PEM) over TLS.
   * NATS 2.9 greets in plain text and then expects the TLS handshake
   * (`infoFirst`): its INFO line is read first and kept for the parser.
   */
  static async dial(
    port: number,
    hostname = "127.0.0.1",
    ca?: string,
    infoFirst = false,
  ): Promise<Wire> {
    const tcp = await Deno.connect({ hostname, port });
    tcp.setNoDelay(true);
    if (ca === undefined) return new Wire(tcp);
    // TLS over the TCP socket (startTls), so that Nagle stays off.
    const greeting = new Uint8Array(64 * 1024);
    let n = 0;
    while (infoFirst && !new TextDecoder().decode(greeting.subarray(0, n)).includes("\r\n")) {
      const got = await tcp.read(greeting.subarray(n));
      if (got === null) throw new Error("closed before its INFO");
      n += got;
    }
    const conn = await Deno.startTls(tcp, { hostname, caCerts: [ca] });
    await conn.handshake();
    const wire = new Wire(conn);
    wire.buf.set(greeting.subarray(0, n));
    wire.end = n;
    return wire;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Reads more bytes after `end`; false at end of stream or after a failure. */
  async fill(): Promise<boolean> {
    if (this.end === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    try {
      const n = await this.#conn.read(this.buf.subarray(this.end));
      if (n === null) return false;
      this.end += n;
      return true;
    } catch (err) {
      if (!this.#closed) this.failure ??= `read: ${(err as Error).message}`;
      return false;
    }
  }

  /** Drops the first `n` bytes, moving what is left (at most one partial frame) to the front. */
  shift(n: number): void {
    if (n === 0) return;
    this.buf.copyWithin(0, n, this.end);
    this.end -= n;
  }

  /** Queues all of `bytes` after earlier writes; `bytes` must not change until it resolves. */
  write(bytes: Uint8Array | string): Promise<void> {
    const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    if (b.length === 0) return this.#chain;
    this.pendingBytes += b.length;
    this.#chain = this.#chain.then(async () => {
      let off = 0;
      try {
        while (off < b.length && !this.#closed) off += await this.#conn.write(b.subarray(off));
      } catch (err) {
        if (!this.#closed) this.failure ??= `write: ${(err as Error).message}`;
      } finally {
        this.pendingBytes -= b.length;
      }
    });
    return this.#chain;
  }

  /** Resolves once every write queued so far is done (or has failed). */
  flushed(): Promise<void> {
    return this.#chain;
  }

  /** Closes the connection; pending reads end, pending writes are dropped. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
