/**
 * The inbound side of a callback-driven socket (Bun's `data` handler, a
 * `node:tls` socket's `data` events) as `Conn.read()` and, when asked for,
 * `Conn.readable`, with the socket paused while its reader is behind.
 *
 * @module
 */

/** Inbound bytes queued for a reader that is behind before the socket is paused (TCP back-pressure). */
export const READ_BUFFER_BYTES_HIGH = 1024 * 1024;

/** The connection it serves: what back-pressure and a cancelled stream need of it. */
export interface InboundOwner {
  /** Stops reading from the socket. */
  pause(): void;
  /** Reads from the socket again. */
  resume(): void;
  /** Closes the connection (the stream's reader cancelled it). */
  close(): void;
}

/**
 * Chunks from a socket's callbacks to one reader. `read()` is the broker's
 * way: a chunk that comes while a read waits settles it at once, others
 * queue. This replaced a `ReadableStream` per connection (its controller,
 * queue and reader were heap on every idle connection, and each chunk took a
 * stream hop); the stream is made only when `readable` is asked for (the SDK
 * and the cluster links read it), and from then on chunks go straight into it.
 */
export class Inbound {
  readonly #owner: InboundOwner;
  #paused = false;
  /** No more chunks will come: the peer ended, the socket failed, or the reader closed it. */
  #ended = false;
  /** Why the socket failed, once `#ended`; undefined: a clean end. */
  #failure: Error | undefined = undefined;
  /** Chunks that came while no read waited, oldest first (made on first need). */
  #chunks: Uint8Array[] | undefined = undefined;
  /** Bytes in `#chunks`. */
  #queued = 0;
  /** The waiting `read()`'s settlers. */
  #resolve: ((chunk: Uint8Array | null) => void) | undefined = undefined;
  #reject: ((err: Error) => void) | undefined = undefined;
  #readable: ReadableStream<Uint8Array> | undefined = undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined = undefined;

  constructor(owner: InboundOwner) {
    this.#owner = owner;
  }

  /**
   * The chunks as a web stream that pauses the socket when its reader falls
   * behind and resumes it when the reader pulls again; chunks queued for
   * `read()` before it was made come first. Use one of the two, not both.
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
        for (const chunk of this.#chunks ?? []) c.enqueue(chunk);
        this.#chunks = undefined;
        this.#queued = 0;
        if (this.#ended) this.#endStream();
      },
      pull: () => this.#resume(),
      cancel: () => this.#owner.close(),
    }, { highWaterMark: READ_BUFFER_BYTES_HIGH, size: (chunk) => chunk.byteLength });
  }

  /**
   * Whether `read()` would wait: nothing queued, not ended, no stream. Only
   * then may the owner read the socket itself (see bun.ts `#readFd`): every
   * byte the runtime already handed over is read first, in order.
   */
  get empty(): boolean {
    return !this.#ended && this.#chunks === undefined && this.#controller === undefined;
  }

  /** The next chunk (owned by the caller), or null at the end; rejects with the socket's error. */
  read(): Promise<Uint8Array | null> {
    const q = this.#chunks;
    if (q !== undefined && q.length !== 0) {
      const chunk = q.shift()!;
      this.#queued -= chunk.length;
      if (q.length === 0) this.#chunks = undefined; // an idle connection keeps no array
      if (this.#queued < READ_BUFFER_BYTES_HIGH) this.#resume();
      return Promise.resolve(chunk);
    }
    if (this.#ended) {
      return this.#failure === undefined ? Promise.resolve(null) : Promise.reject(this.#failure);
    }
    return new Promise(this.#wait);
  }

  /** The executor of a waiting read's promise: one closure per connection, not one per read. */
  #wait = (resolve: (chunk: Uint8Array | null) => void, reject: (err: Error) => void): void => {
    this.#resolve = resolve;
    this.#reject = reject;
  };

  /** A chunk from the socket. */
  push(chunk: Uint8Array): void {
    if (this.#ended) return;
    const c = this.#controller;
    if (c !== undefined) {
      c.enqueue(chunk);
      if ((c.desiredSize ?? 1) <= 0) this.#pause();
      return;
    }
    const resolve = this.#resolve;
    if (resolve !== undefined) {
      this.#resolve = this.#reject = undefined;
      return resolve(chunk);
    }
    (this.#chunks ??= []).push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= READ_BUFFER_BYTES_HIGH) this.#pause();
  }

  /** The peer ended (`error`: the socket failed): what is queued is still read, then the end. */
  end(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = error;
    if (this.#controller !== undefined) return this.#endStream();
    const resolve = this.#resolve;
    const reject = this.#reject;
    this.#resolve = this.#reject = undefined;
    if (error === undefined) resolve?.(null);
    else reject?.(error);
  }

  /** Its reader closed the connection: what was not read is dropped, a waiting read ends. */
  close(): void {
    this.#chunks = undefined;
    this.#queued = 0;
    this.end(undefined);
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#owner.pause();
  }

  #resume(): void {
    if (!this.#paused || this.#ended) return;
    this.#paused = false;
    this.#owner.resume();
  }

  /** Closes (or fails) the stream: its reader reads what is queued first. */
  #endStream(): void {
    try {
      if (this.#failure !== undefined) this.#controller!.error(this.#failure);
      else this.#controller!.close();
    } catch { /* the reader cancelled the stream already */ }
  }
}
