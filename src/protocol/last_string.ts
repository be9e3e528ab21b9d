/**
 * The last string decoded from some bytes, reused while the bytes repeat. A
 * publisher sends the same destination, and a subscriber receives the same
 * destination and sub_id, frame after frame: comparing ~20 bytes is much
 * cheaper than decoding them again. Used by the server's and the client's
 * parsers.
 *
 * @module
 */

/** Shared by every empty cache: a `Uint8Array(0)` each was ~0.2 KiB of heap per connection. */
const EMPTY = new Uint8Array(0);

/** A one-entry cache from bytes to their decoded string. */
export class LastString {
  #bytes: Uint8Array = EMPTY;
  #text = "";
  #decode: (buf: Uint8Array, s: number, e: number) => string;
  /** Whether the last `get` decoded anew (a caller may then refresh what it derives from the string). */
  fresh = false;

  constructor(decode: (buf: Uint8Array, s: number, e: number) => string) {
    this.#decode = decode;
  }

  /** The string of `buf[s, e)`. */
  get(buf: Uint8Array, s: number, e: number): string {
    const last = this.#bytes;
    if (last.length === e - s) {
      let same = true;
      for (let k = 0; k < last.length; k++) {
        if (last[k] !== buf[s + k]) {
          same = false;
          break;
        }
      }
      if (same) {
        this.fresh = false;
        return this.#text;
      }
    }
    this.#bytes = buf.slice(s, e);
    this.#text = this.#decode(buf, s, e);
    this.fresh = true;
    return this.#text;
  }
}
