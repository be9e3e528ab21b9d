/**
 * A run of plain messages to one topic (a `PubRun`'s payloads, ids one
 * apart) written as MSG frames to each of its subscribers without a
 * `Message` or a call chain per delivery. Small messages are encoded once
 * and each subscriber gets one copy of the frames with the head bytes that
 * differ (its sid) patched per frame; large ones are written straight to
 * each subscriber (a copy of the encoded frames would cost as much as
 * writing them). Fan-out to 4 at 16 B spent ~45% of the broker in the
 * per-delivery writes and the calls around them (perf, Deno).
 *
 * @module
 */
import { FANOUT_RUN_BYTES_MAX } from "../config/limits.ts";
import { PLAIN_TAIL_BYTES_MAX, writePlainTail } from "./encoder.ts";

/**
 * Copies `src[srcOff, srcOff + len)` into `dst` at `dstOff` and returns the
 * end: the runtime's `copyRange` (passed in: protocol/ is also bundled for
 * browsers, and the runtime's copy is not theirs).
 */
export type CopyRange = (
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
) => number;

/** First size of the frame scratch; it doubles up to `FANOUT_RUN_BYTES_MAX`. */
const IMAGE_BYTES_MIN = 64 * 1024;
/**
 * From this mean payload size on, frames are written to each subscriber
 * rather than copied from frames encoded once: the encoded copy would be one
 * more copy of every payload (and up to `FANOUT_RUN_BYTES_MAX` of cache)
 * to save three small writes per frame, which large payloads hardly feel.
 */
const DIRECT_PAYLOAD_BYTES_MIN = 1024;

/** Bytes of a plain tail (` msg_id:<id> <size>\r\n`) and the payload's CRLF besides the digits. */
const TAIL_BYTES_FIXED = " msg_id:".length + 1 + 2 + 2;

const EMPTY = new Uint8Array(0);
const NO_OFFSETS = new Int32Array(0);

/** The MSG frames of one run (one per broker, reused run after run). */
export class MsgRun {
  /** Messages taken by the last `encode`. */
  count = 0;
  /** Their payload bytes. */
  payloadBytes = 0;
  /** Id of the first; the others follow one apart. */
  firstId = 0;
  readonly #copy: CopyRange;
  #buf: Uint8Array = EMPTY;
  /** Offset and length of each payload in `#buf`, as in `PubRun.offs`. */
  #offs: Int32Array = NO_OFFSETS;
  #from = 0;
  #to = 0;
  /** Bytes of the measured frames without their heads. */
  #headless = 0;
  /** Written to each subscriber, not copied from `#image`. */
  #direct = false;
  /** The frames, `#len` bytes, each starting with `#head` (when not `#direct`). */
  #image: Uint8Array = EMPTY;
  #len = 0;
  #head: Uint8Array = EMPTY;
  /** Where each frame starts in `#image`. */
  #starts: Int32Array = NO_OFFSETS;

  constructor(copy: CopyRange) {
    this.#copy = copy;
  }

  /** The payloads the next `encode` takes: `buf[offs[2k], +offs[2k + 1])` for `from <= k < to`. */
  source(buf: Uint8Array, offs: Int32Array, from: number, to: number): void {
    this.#buf = buf;
    this.#offs = offs;
    this.#from = from;
    this.#to = to;
    this.count = 0;
  }

  /**
   * Takes the source's first messages, ids from `firstId`, as many as fit in
   * `FANOUT_RUN_BYTES_MAX` with heads of up to `headMax` bytes (so that any
   * such head fits too), and counts their frames' bytes without encoding
   * them: `bytesFor` answers from here, so that each connection's room is
   * checked before anything is written. Returns how many (0: not one).
   */
  measure(headMax: number, firstId: number): number {
    const offs = this.#offs;
    let bytes = 0; // at most, with heads of `headMax` bytes
    let payload = 0;
    let sizeDigits = 0;
    let k = this.#from;
    for (; k < this.#to; k++) {
      const size = offs[2 * k + 1];
      const frame = headMax + PLAIN_TAIL_BYTES_MAX + size + 2;
      if (bytes + frame > FANOUT_RUN_BYTES_MAX) break;
      bytes += frame;
      payload += size;
      sizeDigits += digits(size);
    }
    const n = k - this.#from;
    this.count = n;
    this.firstId = firstId;
    this.payloadBytes = payload;
    this.#headless = n * TAIL_BYTES_FIXED + idDigits(firstId, n) + sizeDigits + payload;
    return n;
  }

  /**
   * Makes the frames of the measured messages ready for `subscribers`
   * connections, most of which have heads of `head`'s length (the others are
   * written to directly, see `writeTo`): encoded once with `head`, unless
   * they are written to each (large payloads, or one subscriber: a copy of
   * frames encoded once is then only a copy more).
   */
  encode(head: Uint8Array, subscribers: number): void {
    const n = this.count;
    this.#direct = subscribers === 1 || this.payloadBytes >= n * DIRECT_PAYLOAD_BYTES_MIN;
    if (n === 0 || this.#direct) return;
    const bytes = this.bytesFor(head);
    if (this.#image.length < bytes) this.#image = new Uint8Array(imageSize(bytes));
    if (this.#starts.length < n) {
      this.#starts = new Int32Array(Math.max(n, 2 * this.#starts.length));
    }
    this.#len = this.#frames(this.#image, 0, head, this.#starts);
    this.#head = head;
  }

  /** The chunk the payloads are in (the last `source`'s `buf`). */
  get buf(): Uint8Array {
    return this.#buf;
  }

  /** Where the payload of the run's message `i` (`0 <= i < count`) starts in `buf`. */
  offsetOf(i: number): number {
    return this.#offs[2 * (this.#from + i)];
  }

  /** The payload size of the run's message `i`. */
  sizeOf(i: number): number {
    return this.#offs[2 * (this.#from + i) + 1];
  }

  /** Drops the source (the caller's read chunk) once the run is written. */
  release(): void {
    this.#buf = EMPTY;
    this.#offs = NO_OFFSETS;
  }

  /** Bytes of the measured frames with `head` as their head (exactly what `writeTo` writes). */
  bytesFor(head: Uint8Array): number {
    return this.#headless + this.count * head.length;
  }

  /**
   * Writes the frames with `head` as their head into `out` at `pos` (which
   * has `bytesFor(head)` bytes of room); returns the end. `head` is at most
   * `measure`'s `headMax` long. A head of another length than the encoded
   * frames' is written straight into `out`: encoding the frames again for it
   * cost as much, plus the copy, and again for the next head of the first
   * length.
   */
  writeTo(out: Uint8Array, pos: number, head: Uint8Array): number {
    if (this.#direct || head.length !== this.#head.length) {
      return this.#frames(out, pos, head, undefined);
    }
    const len = this.#len;
    this.#copy(out, pos, this.#image, 0, len);
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

  /** Writes the `count` frames with `head` into `out` at `pos`, noting where each starts in `starts`. */
  #frames(out: Uint8Array, pos: number, head: Uint8Array, starts: Int32Array | undefined): number {
    const src = this.#buf;
    const offs = this.#offs;
    const copy = this.#copy;
    const h = head.length;
    let id = this.firstId;
    for (let i = 0, k = this.#from; i < this.count; i++, k++) {
      const off = offs[2 * k];
      const size = offs[2 * k + 1];
      if (starts !== undefined) starts[i] = pos;
      out.set(head, pos);
      pos = writePlainTail(out, pos + h, id++, size);
      pos = copy(out, pos, src, off, size);
      out[pos++] = 13;
      out[pos++] = 10;
    }
    return pos;
  }
}

/** Digits of a non-negative int32 in decimal (compares, no division: once per message). */
function digits(v: number): number {
  if (v < 10000) return v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : 4;
  let n = 5;
  for (let p = 100000; v >= p && n < 10; p *= 10) n++;
  return n;
}

/** Digits of the ids `first` to `first + n - 1` (below 1e16) together, in decimal. */
function idDigits(first: number, n: number): number {
  if (n === 0) return 0;
  let total = 0;
  let id = first;
  let d = String(first).length;
  let next = 10 ** d; // the first id with a digit more
  const end = first + n;
  while (next < end) {
    total += (next - id) * d;
    id = next;
    d++;
    next *= 10;
  }
  return total + (end - id) * d;
}

/** The image size for `bytes`: doubling from `IMAGE_BYTES_MIN`, at most `FANOUT_RUN_BYTES_MAX`. */
function imageSize(bytes: number): number {
  let size = IMAGE_BYTES_MIN;
  while (size < bytes) size *= 2;
  return Math.min(size, FANOUT_RUN_BYTES_MAX);
}
