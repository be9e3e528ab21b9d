/**
 * The outbound byte buffer of one connection. Frames are encoded straight
 * into it and the whole buffer goes out in one socket write per tick.
 *
 * @module
 */

import { grow } from "../protocol/mod.ts";

const encoder = new TextEncoder();
/** Size of a fresh buffer: a burst of small frames fits without growing. */
const BUFFER_BYTES = 16 * 1024;
/** A written buffer larger than this is dropped, not kept as the spare, to give memory back. */
const SPARE_BYTES_MAX = 1024 * 1024;

/**
 * Up to this many bytes a loop copies faster than `set` (measured on Deno and
 * Bun). At 16 (was 15) a 16 B body's PUB encodes in 34-36 against 43-45 ns on
 * Bun, the same 36 on Deno; at 32 Deno's took 45 against 35 (a 29-byte
 * `PUB <dest> <size>` line copied by the loop too).
 */
const COPY_LOOP_BYTES_MAX = 16;

function copy(buf: Uint8Array, at: number, bytes: Uint8Array): number {
  const n = bytes.length;
  if (n <= COPY_LOOP_BYTES_MAX) {
    for (let i = 0; i < n; i++) buf[at + i] = bytes[i];
  } else buf.set(bytes, at);
  return at + n;
}

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
  #buf: Uint8Array<ArrayBuffer> = new Uint8Array(BUFFER_BYTES);
  #pos = 0;
  #spare: Uint8Array<ArrayBuffer> | null = null;

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

  /**
   * Appends `<line><body>\r\n`: one option-less `PUB` whose line `line`
   * (`PUB <dest> <size>\r\n`) the caller keeps, so a message costs two
   * copies and no string. Small copies go byte by byte, which beats
   * `TypedArray.set`'s call overhead at these sizes.
   */
  writeLine(line: Uint8Array, body: Uint8Array): void {
    this.#ensure(line.length + body.length + 2);
    const buf = this.#buf;
    let p = copy(buf, this.#pos, line);
    p = copy(buf, p, body);
    buf[p++] = 13;
    buf[p++] = 10;
    this.#pos = p;
  }

  /**
   * Appends `<prefix><size>\r\n<body>\r\n`, `size` being the body's length:
   * one option-less `PUB` (`prefix` is `PUB <dest> `) without building a
   * string.
   */
  writePub(prefix: Uint8Array, body: Uint8Array): void {
    const size = body.length;
    this.#ensure(prefix.length + body.length + 20);
    const buf = this.#buf;
    let p = this.#pos;
    p = copy(buf, p, prefix);
    if (size === 0) buf[p++] = 48;
    else {
      let digits = 0;
      for (let n = size; n > 0; n = Math.floor(n / 10)) digits++;
      p += digits;
      for (let n = size, q = p - 1; n > 0; n = Math.floor(n / 10)) buf[q--] = 48 + n % 10;
    }
    buf[p++] = 13;
    buf[p++] = 10;
    p = copy(buf, p, body);
    buf[p++] = 13;
    buf[p++] = 10;
    this.#pos = p;
  }

  /** Hands out the buffered bytes and starts a fresh buffer; give them back with `release`. */
  take(): Uint8Array<ArrayBuffer> {
    const out = this.#buf.subarray(0, this.#pos);
    this.#buf = this.#spare ?? new Uint8Array(BUFFER_BYTES);
    this.#spare = null;
    this.#pos = 0;
    return out;
  }

  /** Returns a buffer from `take` once written, to be reused; very large ones are dropped to give memory back. */
  release(bytes: Uint8Array<ArrayBuffer>): void {
    if (bytes.buffer.byteLength <= SPARE_BYTES_MAX) this.#spare = new Uint8Array(bytes.buffer);
  }

  /** Drops everything buffered (the connection is gone). */
  clear(): void {
    this.#pos = 0;
  }

  #ensure(extra: number): void {
    this.#buf = grow(this.#buf, this.#pos, this.#pos + extra);
  }
}
