/**
 * One connection's last plain MSG line (`MSG <dest> sub_id:<sid> msg_id:<id>
 * <size>\r\n`), kept whole and counted up in place for the next delivery of
 * the same subscription, so that a delivery copies its line in one
 * `TypedArray.set` instead of two (the head, then the tail): on Deno each
 * `set` is a builtin call, and the two were 4-6% of the broker under the
 * queue bench at 16 B. A connection mostly receives for one subscription in
 * a row (a queue consumer's ids a few apart, a topic subscriber's one apart);
 * anything else (another subscription's head, another size, an older id, a
 * line that would grow a digit) is left to the caller's two-copy path or
 * rebuilt, so the output is the same bytes either way.
 *
 * @module
 */
import { MSG_LINE_SLAB_BYTES } from "../config/limits.ts";
import { digitsEnd } from "./decimal.ts";
import { countUpDigits, PLAIN_TAIL_BYTES_MAX, writePlainTail } from "./encoder.ts";

/** The slab lines are cut from (one ArrayBuffer for many lines: see `msgHead`), and its free part. */
let slab = new Uint8Array(0);
let slabOff = 0;
/** Scratch a line's tail is written into before it is placed after its head. */
const scratch = new Uint8Array(PLAIN_TAIL_BYTES_MAX);
const EMPTY = new Uint8Array(0);
/** ` msg_id:`: the id's digits start this far into a tail. */
const ID_AT = 8;

/** The last plain MSG line of one connection (see the module comment). */
export class MsgLine {
  /** The head the line was built from (compared by identity: a subscription keeps its head). */
  #head: Uint8Array = EMPTY;
  /** The whole line, exactly as long as it is (a view into the slab). */
  #bytes: Uint8Array = EMPTY;
  #id = -1;
  #size = -1;
  /** Where the id's digits start and end in `#bytes`. */
  #idStart = 0;
  #idEnd = 0;

  /**
   * Writes the line of `head` and message `id` of `size` bytes at `buf[pos]`
   * (with `PLAIN_TAIL_BYTES_MAX` bytes of room after the head) and returns
   * its end, or -1 when the caller writes it its own way (a different head
   * than the last: the next call with this head builds its line).
   */
  write(buf: Uint8Array, pos: number, head: Uint8Array, id: number, size: number): number {
    if (head !== this.#head) {
      this.#head = head;
      this.#bytes = EMPTY; // built on its next use, not for one delivery between two others
      return -1;
    }
    if (
      this.#bytes.length === 0 || size !== this.#size ||
      !countUpDigits(this.#bytes, this.#idStart, this.#idEnd, id - this.#id)
    ) {
      this.#build(head, id, size);
    }
    this.#id = id;
    const line = this.#bytes;
    buf.set(line, pos);
    return pos + line.length;
  }

  /** Makes the line of `head`, `id` and `size` in the slab. */
  #build(head: Uint8Array, id: number, size: number): void {
    const tailEnd = writePlainTail(scratch, 0, id, size);
    const n = head.length + tailEnd;
    let b = this.#bytes;
    if (b.length !== n) {
      if (slabOff + n > slab.length) {
        slab = new Uint8Array(Math.max(MSG_LINE_SLAB_BYTES, n));
        slabOff = 0;
      }
      b = this.#bytes = slab.subarray(slabOff, slabOff + n);
      slabOff += n;
    }
    b.set(head, 0);
    b.set(scratch.subarray(0, tailEnd), head.length);
    this.#size = size;
    this.#idStart = head.length + ID_AT;
    this.#idEnd = digitsEnd(b, this.#idStart, n);
  }
}
