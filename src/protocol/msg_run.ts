/**
 * A run of plain messages to one topic (a `PubRun`'s payloads, ids one
 * apart) encoded once as MSG frames, and written to each subscriber with its
 * own head: one copy of the whole run and a patch of the head bytes that
 * differ per frame, instead of a head, a tail and a payload written per
 * message and subscriber. Fan-out to 4 at 16 B spent ~45% of the broker in
 * the per-delivery writes and the calls around them (perf, Deno).
 *
 * @module
 */
import { FANOUT_RUN_BYTES_MAX } from "../config/limits.ts";
import { PLAIN_TAIL_BYTES_MAX, writePlainTail } from "./encoder.ts";

/** First size of the frame scratch; it doubles up to `FANOUT_RUN_BYTES_MAX`. */
const IMAGE_BYTES_MIN = 64 * 1024;
/** Payloads shorter than this are copied by a byte loop (cheaper than a `subarray` and a `set`). */
const LOOP_COPY_BYTES_MAX = 64;

const EMPTY = new Uint8Array(0);
const NO_OFFSETS = new Int32Array(0);

/** The MSG frames of one run, encoded once (one per broker, reused run after run). */
export class MsgRun {
  /** Messages encoded by the last `encode`. */
  count = 0;
  /** Their payload bytes. */
  payloadBytes = 0;
  /** Id of the first; the others follow one apart. */
  firstId = 0;
  #buf: Uint8Array = EMPTY;
  /** Offset and length of each payload in `#buf`, as in `PubRun.offs`. */
  #offs: Int32Array = NO_OFFSETS;
  #from = 0;
  #to = 0;
  /** The frames, `#len` bytes, each starting with `#head`. */
  #image: Uint8Array = EMPTY;
  #len = 0;
  #head: Uint8Array = EMPTY;
  /** Where each frame starts in `#image`. */
  #starts: Int32Array = NO_OFFSETS;

  /** The payloads the next `encode` takes: `buf[offs[2k], +offs[2k + 1])` for `from <= k < to`. */
  source(buf: Uint8Array, offs: Int32Array, from: number, to: number): void {
    this.#buf = buf;
    this.#offs = offs;
    this.#from = from;
    this.#to = to;
    this.count = 0;
  }

  /**
   * Encodes the source's first messages with `head`, ids from `firstId`:
   * as many as fit in `FANOUT_RUN_BYTES_MAX` with heads of up to `headMax`
   * bytes (so that any such head fits too). Returns how many (0: not one).
   */
  encode(head: Uint8Array, headMax: number, firstId: number): number {
    const offs = this.#offs;
    let bytes = 0; // at most, with heads of `headMax` bytes
    let k = this.#from;
    for (; k < this.#to; k++) {
      const frame = headMax + PLAIN_TAIL_BYTES_MAX + offs[2 * k + 1] + 2;
      if (bytes + frame > FANOUT_RUN_BYTES_MAX) break;
      bytes += frame;
    }
    const n = k - this.#from;
    this.count = n;
    this.firstId = firstId;
    if (n === 0) return 0;
    if (this.#image.length < bytes) this.#image = new Uint8Array(imageSize(bytes));
    if (this.#starts.length < n) {
      this.#starts = new Int32Array(Math.max(n, 2 * this.#starts.length));
    }
    this.#encode(head);
    return n;
  }

  /** Drops the source (the caller's read chunk) once the run is written. */
  release(): void {
    this.#buf = EMPTY;
    this.#offs = NO_OFFSETS;
  }

  /** Bytes of the frames with `head` as their head. */
  bytesFor(head: Uint8Array): number {
    return this.#len + this.count * (head.length - this.#head.length);
  }

  /**
   * Writes the frames with `head` as their head into `out` at `pos` (which
   * has `bytesFor(head)` bytes of room); returns the end. `head` is at most
   * `encode`'s `headMax` long.
   */
  writeTo(out: Uint8Array, pos: number, head: Uint8Array): number {
    if (head.length !== this.#head.length) this.#encode(head);
    const len = this.#len;
    out.set(this.#image.subarray(0, len), pos);
    // Heads of one topic differ in their sid only: patch the bytes between the first and the
    // last that differ (one byte per frame for sids `s0` to `s9`).
    const img = this.#head;
    const h = head.length;
    let d = 0;
    while (d < h && head[d] === img[d]) d++;
    if (d < h) {
      let e = h;
      while (head[e - 1] === img[e - 1]) e--;
      const starts = this.#starts;
      for (let i = 0; i < this.count; i++) {
        const at = pos + starts[i];
        for (let j = d; j < e; j++) out[at + j] = head[j];
      }
    }
    return pos + len;
  }

  /** Encodes `count` frames with `head` into the image (which has room for them). */
  #encode(head: Uint8Array): void {
    const image = this.#image;
    const starts = this.#starts;
    const src = this.#buf;
    const offs = this.#offs;
    const h = head.length;
    let id = this.firstId;
    let bytes = 0;
    let pos = 0;
    for (let i = 0, k = this.#from; i < this.count; i++, k++) {
      const off = offs[2 * k];
      const size = offs[2 * k + 1];
      starts[i] = pos;
      image.set(head, pos);
      pos = writePlainTail(image, pos + h, id++, size);
      if (size < LOOP_COPY_BYTES_MAX) {
        for (let j = 0; j < size; j++) image[pos++] = src[off + j];
      } else {
        image.set(src.subarray(off, off + size), pos);
        pos += size;
      }
      image[pos++] = 13;
      image[pos++] = 10;
      bytes += size;
    }
    this.#len = pos;
    this.#head = head;
    this.payloadBytes = bytes;
  }
}

/** The image size for `bytes`: doubling from `IMAGE_BYTES_MIN`, at most `FANOUT_RUN_BYTES_MAX`. */
function imageSize(bytes: number): number {
  let size = IMAGE_BYTES_MIN;
  while (size < bytes) size *= 2;
  return Math.min(size, FANOUT_RUN_BYTES_MAX);
}
