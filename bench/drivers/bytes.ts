/**
 * Byte helpers shared by the drivers: an append-only output buffer and ASCII
 * conversions that never go through a `TextDecoder` on the hot path.
 *
 * @module
 */

const encoder = new TextEncoder();
/** Copies up to this long are done byte by byte (see `OutBuf.slice`). */
const SHORT_COPY_BYTES = 64;
/** Most digits `OutBuf.digits` takes: more than any message id or size has. */
const DIGITS_MAX = 20;

/** `\r\n` as bytes. */
export const CRLF: Uint8Array = encoder.encode("\r\n");

/** ASCII/UTF-8 string to bytes. */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Bytes to a Latin-1 string; for control lines on slow paths and error text. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(buf[i]);
  return text;
}

/** Joins byte arrays and strings into one buffer. */
export function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Non-negative decimal number at `buf[start, end)`, or -1 when not all digits. */
export function decimal(buf: Uint8Array, start: number, end: number): number {
  if (start >= end) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Where the decimal digits from `buf[start]` on end: the first other byte, or `end`. */
export function digitsEnd(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && buf[i] >= 48 && buf[i] <= 57) i++;
  return i;
}

/**
 * Where the last token of the line `buf[pos, le)` starts, less one: the space
 * before it (or `pos`). MSG lines of every protocol here end with the payload
 * size, which is read backwards from the line end without scanning the rest.
 */
export function lastSpace(buf: Uint8Array, pos: number, le: number): number {
  let i = le - 1;
  while (i > pos && buf[i] !== 32) i--;
  return i;
}

/** An append-only byte buffer that grows; `take()` hands out a copy and empties it. */
export class OutBuf {
  #buf = new Uint8Array(64 * 1024);
  #len = 0;

  /** Bytes appended since the last `take()`. */
  get length(): number {
    return this.#len;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** Appends one byte. */
  byte(b: number): void {
    this.#room(1);
    this.#buf[this.#len++] = b;
  }

  /** Appends `src[start, end)`. */
  slice(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.#room(n);
    if (n <= SHORT_COPY_BYTES) {
      // A byte loop beats creating a subarray for short copies such as message ids.
      const buf = this.#buf;
      let at = this.#len;
      for (let i = start; i < end; i++) buf[at++] = src[i];
    } else {
      this.#buf.set(src.subarray(start, end), this.#len);
    }
    this.#len += n;
  }

  /**
   * Appends `src[start]` and the bytes after it up to the next space or
   * `end`, whichever comes first (a token with the space before it): one
   * pass where finding the end and then copying takes two.
   */
  token(src: Uint8Array, start: number, end: number): void {
    this.#room(end - start);
    const buf = this.#buf;
    let at = this.#len;
    buf[at++] = src[start];
    for (let i = start + 1; i < end; i++) {
      const c = src[i];
      if (c === 32) break;
      buf[at++] = c;
    }
    this.#len = at;
  }

  /**
   * Appends the decimal digits from `src[start]` on (at most `DIGITS_MAX`),
   * up to the first other byte or `end`, and returns where they end: one pass
   * where finding the end and then copying takes two. Undone by `truncate`.
   */
  digits(src: Uint8Array, start: number, end: number): number {
    this.#room(DIGITS_MAX);
    const buf = this.#buf;
    let at = this.#len;
    const stop = Math.min(end, start + DIGITS_MAX);
    let i = start;
    for (; i < stop; i++) {
      const c = src[i];
      if (c < 48 || c > 57) break;
      buf[at++] = c;
    }
    this.#len = at;
    return i;
  }

  /** Drops what was appended after the first `length` bytes. */
  truncate(length: number): void {
    if (length < this.#len) this.#len = length;
  }

  /** Appends all of `src`. */
  bytes(src: Uint8Array): void {
    this.slice(src, 0, src.length);
  }

  /** Appends an ASCII string. */
  ascii(text: string): void {
    this.#room(text.length);
    for (let i = 0; i < text.length; i++) this.#buf[this.#len++] = text.charCodeAt(i);
  }

  /** A copy of the contents (safe to write asynchronously), or null when empty; empties the buffer. */
  take(): Uint8Array | null {
    if (this.#len === 0) return null;
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    return out;
  }
}
