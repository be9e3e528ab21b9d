/**
 * One TCP connection to the broker: one reader loop feeding the parser, one
 * writer that coalesces every frame of a tick into a single socket write.
 *
 * @module
 */
import type { Conn } from "../runtime/mod.ts";
import { readChunk } from "../runtime/read_chunk.ts";
import { FLUSH_BYTES_HIGH } from "./limits.ts";
import { OutBuf } from "./outbound.ts";
import { type FrameHandler, FrameParser } from "./parser.ts";

/** What the client hears from a connection. */
export interface WireEvents extends FrameHandler {
  /** Called just before the buffer is written: the place to append batched ACKs. */
  beforeFlush(): void;
  /** The connection ended (error undefined: closed by us or by the peer cleanly). Called once. */
  onClose(wire: Wire, error: Error | undefined): void;
}

/**
 * A connection with a coalescing writer.
 *
 * Writing: callers append frames to `out` and call `schedule()`. The first
 * call of a tick queues a microtask that writes the whole buffer, so a burst
 * of publishes becomes one `write`; a buffer over `FLUSH_BYTES_HIGH` is
 * written at once. One write is in flight at a time: frames appended during
 * it go into the other half of the double buffer and out when it resolves.
 */
export class Wire {
  /** Frames waiting for the socket. */
  readonly out: OutBuf = new OutBuf();
  /** Parses the broker's bytes; the client lowers `maxPayloadBytes` after INFO. */
  readonly parser: FrameParser;
  #conn: Conn;
  #events: WireEvents;
  #writing: Promise<void> | null = null;
  #scheduled = false;
  #closed = false;
  #readDone: Promise<void>;

  /** Starts reading at once. */
  constructor(conn: Conn, events: WireEvents) {
    this.#conn = conn;
    this.#events = events;
    this.parser = new FrameParser(events);
    this.#readDone = this.#readLoop();
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** `host:port` of the broker. */
  get remoteAddr(): string {
    return this.#conn.remoteAddr;
  }

  /** Call after appending to `out`: writes at the end of this tick, or now when the buffer is large. */
  schedule(): void {
    if (this.#closed) return;
    if (this.out.length >= FLUSH_BYTES_HIGH && this.#writing === null) {
      this.#flush();
      return;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#onTick);
    }
  }

  #onTick = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  #flush(): void {
    if (this.#writing !== null || this.#closed) return;
    this.#events.beforeFlush();
    if (this.out.length === 0) return;
    const bytes = this.out.take();
    this.#writing = this.#conn.write(bytes).then(
      () => {
        this.out.release(bytes);
        this.#writing = null;
        this.#flush();
      },
      (err) => {
        this.#writing = null;
        this.close(asError(err));
      },
    );
  }

  /** Resolves once every byte appended so far has been handed to the socket. */
  async settle(): Promise<void> {
    for (let i = 0; i < 1000 && !this.#closed; i++) {
      if (this.#writing === null) this.#flush();
      if (this.#writing === null) return;
      await this.#writing;
    }
  }

  /** Closes the socket; resolves once the reader loop and any write in flight have finished. */
  async close(error?: Error): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.out.clear();
      this.#conn.close();
      this.#events.onClose(this, error);
    }
    await this.#readDone;
    await this.#writing?.catch(() => {});
  }

  async #readLoop(): Promise<void> {
    let error: Error | undefined;
    const conn = this.#conn;
    // A runtime's own `read()` (Deno, Bun TCP) skips the web stream's hop and
    // promises per chunk (~1% of a subscriber's CPU at 16 B); a WebSocket has
    // only the stream. No chunk is handed back for reuse: messages keep views
    // into it (Deno reads the next chunk into the unused tail of its buffer,
    // never over one handed out: src/runtime/read_buffer.ts).
    const reader = conn.read === undefined ? conn.readable.getReader() : undefined;
    try {
      for (;;) {
        const chunk = await readChunk(conn, reader);
        if (chunk == null || this.#closed) break;
        this.parser.push(chunk);
      }
    } catch (err) {
      // A read error after we closed is just the close itself.
      if (!this.#closed) error = asError(err);
    } finally {
      try {
        reader?.releaseLock();
      } catch { /* the stream is already errored */ }
    }
    // close() awaits #readDone; a close from here must not wait on itself.
    if (!this.#closed) {
      this.#closed = true;
      this.out.clear();
      this.#conn.close();
      this.#events.onClose(this, error);
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
