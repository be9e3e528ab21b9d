/**
 * The outbound byte buffer of one connection. Frames are encoded straight
 * into it and the whole buffer goes out in one socket write per tick.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * A growable byte buffer with a spare for double buffering: while one buffer
 * is being written, frames go into the other, so bytes handed to
 * `Conn.write` are never touched until the write resolves.
 *
 * @example
 * ```ts
 * import { OutBuf } from "./outbound.ts";
 * const out = new OutBuf();
 * out.writeString("PING\r\n");
 * const bytes = out.take();
 * console.assert(bytes.length === 6 && out.length === 0);
 * out.release(bytes);
 * ```
 */
export class OutBuf {
  #buf: Uint8Array = new Uint8Array(16 * 1024);
  #pos = 0;
  #spare: Uint8Array | null = null;

  /** Bytes waiting to be written. */
  get length(): number {
    return this.#pos;
  }

  /** Appends a string as UTF-8. */
  writeString(s: string): void {
    // encodeInto needs room for the worst case: 3 bytes per UTF-16 unit.
    this.#ensure(s.length * 3);
    this.#pos += encoder.encodeInto(s, this.#buf.subarray(this.#pos)).written;
  }

  /** Appends bytes. */
  writeBytes(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  /** Hands out the buffered bytes and starts a fresh buffer; give them back with `release`. */
  take(): Uint8Array {
    const out = this.#buf.subarray(0, this.#pos);
    this.#buf = this.#spare ?? new Uint8Array(16 * 1024);
    this.#spare = null;
    this.#pos = 0;
    return out;
  }

  /** Returns a buffer from `take` once written, to be reused; very large ones are dropped to give memory back. */
  release(bytes: Uint8Array): void {
    if (bytes.buffer.byteLength <= 1024 * 1024) this.#spare = new Uint8Array(bytes.buffer);
  }

  /** Drops everything buffered (the connection is gone). */
  clear(): void {
    this.#pos = 0;
  }

  #ensure(extra: number): void {
    if (this.#pos + extra <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }
}
