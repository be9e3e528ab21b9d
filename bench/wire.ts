/**
 * A connection for the drivers, over TCP or a WebSocket: reads straight into
 * one growing buffer (no per-chunk allocation for TCP), writes serialized
 * through one promise chain so frames from the sender loop and answers from
 * the reader never interleave. Bench is Deno-only tooling, so this uses
 * `Deno.connect` and Deno's `WebSocket` directly.
 *
 * @module
 */

/** Initial read buffer; grows to fit a frame larger than it. */
const READ_BYTES = 1024 * 1024;
/** A WebSocket write waits while the socket buffers more than this (a standard WebSocket never refuses). */
const WS_BUFFERED_BYTES_HIGH = 1024 * 1024;
/** Largest WebSocket message the bench sends (the broker takes at least 1 MiB). */
const WS_SEND_BYTES_MAX = 256 * 1024;

/** What a wire reads from and writes to: a `Deno.TcpConn`, or a WebSocket made to look like one. */
interface Transport {
  read(into: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * A WebSocket as a byte stream: messages are queued as they arrive and
 * copied into the reader's buffer (frames may span messages, as the
 * protocols allow); a write is one message, waiting while the socket is backed up.
 */
class WebSocketTransport implements Transport {
  #ws: WebSocket;
  #queue: Uint8Array[] = [];
  #wake: (() => void) | null = null;
  #ended = false;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      this.#queue.push(
        typeof e.data === "string" ? new TextEncoder().encode(e.data) : new Uint8Array(e.data),
      );
      this.#wake?.();
    };
    ws.onclose = () => {
      this.#ended = true;
      this.#wake?.();
    };
  }

  static open(url: string): Promise<WebSocketTransport> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(new WebSocketTransport(ws));
      ws.onerror = () => reject(new Error(`WebSocket ${url} failed`));
    });
  }

  async read(into: Uint8Array): Promise<number | null> {
    while (this.#queue.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = null;
    }
    let n = 0;
    while (this.#queue.length > 0 && n < into.length) {
      const head = this.#queue[0];
      const take = Math.min(head.length, into.length - n);
      into.set(head.subarray(0, take), n);
      n += take;
      if (take === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(take);
    }
    return n;
  }

  async write(bytes: Uint8Array): Promise<number> {
    if (this.#ws.readyState !== WebSocket.OPEN) throw new Error("WebSocket closed");
    const n = Math.min(bytes.length, WS_SEND_BYTES_MAX);
    this.#ws.send(bytes.subarray(0, n));
    for (let ms = 1; this.#ws.bufferedAmount > WS_BUFFERED_BYTES_HIGH; ms = Math.min(ms * 2, 20)) {
      if (this.#ws.readyState !== WebSocket.OPEN) throw new Error("WebSocket closed");
      await new Promise((r) => setTimeout(r, ms));
    }
    return n;
  }

  close(): void {
    this.#ended = true;
    this.#wake?.();
    this.#ws.close();
  }
}

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
  #conn: Transport;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(conn: Transport) {
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

  /** Opens a WebSocket to `url` (`ws://127.0.0.1:<port>/...`). */
  static async dialWebSocket(url: string): Promise<Wire> {
    return new Wire(await WebSocketTransport.open(url));
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
