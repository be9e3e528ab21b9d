/**
 * The bench payload and the pipelined batches that carry it.
 *
 * Every payload starts with the message's sequence number (u32, little
 * endian); every `stampEvery`-th also carries its send time (f64 ms on the
 * shared clock) at byte 4. The rest is filler. Receivers check the sequence
 * for loss, duplicates and order, and turn the stamps into latencies.
 *
 * @module
 */
import type { FrameShape } from "./drivers/types.ts";

/** Smallest payload: 4 bytes of sequence number and 8 of timestamp. */
export const PAYLOAD_BYTES_MIN = 12;
/** Bytes of frames one write carries (big writes, few syscalls). */
export const BATCH_BYTES = 256 * 1024;
const FILLER = 0x78; // "x"

/**
 * Milliseconds on a clock shared by every thread and process on this machine
 * (wall-clock origin plus monotonic offset), so one thread can stamp and
 * another measure.
 */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** Sequence number at the start of a payload. */
export function seqAt(buf: Uint8Array, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)) >>> 0;
}

const stampBytes = new Uint8Array(8);
const stampView = new Float64Array(stampBytes.buffer);

/** Send time stamped at byte 4 of a payload (little endian on every platform we run on). */
export function stampAt(buf: Uint8Array, at: number): number {
  for (let i = 0; i < 8; i++) stampBytes[i] = buf[at + 4 + i];
  return stampView[0];
}

/** A payload of `size` bytes carrying `seq` and, when `stamp` is given, a send time. */
export function payload(size: number, seq: number, stamp?: number): Uint8Array {
  const p = new Uint8Array(size).fill(FILLER);
  const v = new DataView(p.buffer);
  v.setUint32(0, seq, true);
  if (stamp !== undefined) v.setFloat64(4, stamp, true);
  return p;
}

/**
 * Pipelined frames of one shape in two alternating buffers: while one is
 * being written, the other is being filled. Frames only differ in the
 * payload's sequence number and stamp, patched in place.
 */
export class Batcher {
  /** Bytes of one frame. */
  readonly frameBytes: number;
  /** Frames in one full batch. */
  readonly framesMax: number;
  #payloadAt: number;
  #bufs: Uint8Array[];
  #views: DataView[];
  #flip = 0;

  /** A head byte cycled per sequence number (Relayr `filter` runs), or none. */
  #variant: { at: number; bytes: number[] } | undefined;

  constructor(
    shape: FrameShape,
    size: number,
    batchBytes = BATCH_BYTES,
    variant?: { at: number; bytes: number[] },
  ) {
    this.#variant = variant;
    this.#payloadAt = shape.head.length;
    this.frameBytes = shape.head.length + size + shape.tail.length;
    this.framesMax = Math.max(1, Math.floor(batchBytes / this.frameBytes));
    const frame = new Uint8Array(this.frameBytes).fill(FILLER);
    frame.set(shape.head, 0);
    frame.set(shape.tail, this.#payloadAt + size);
    this.#bufs = [0, 1].map(() => {
      const b = new Uint8Array(this.frameBytes * this.framesMax);
      for (let i = 0; i < this.framesMax; i++) b.set(frame, i * this.frameBytes);
      return b;
    });
    this.#views = this.#bufs.map((b) => new DataView(b.buffer));
  }

  /**
   * Frames for sequence numbers `seq` to `seq + count - 1` (count at most
   * `framesMax`), those divisible by `stampEvery` stamped with `now`. The
   * returned bytes stay valid until the call after next.
   */
  next(seq: number, count: number, stampEvery: number, now: number): Uint8Array {
    const buf = this.#bufs[this.#flip];
    const view = this.#views[this.#flip];
    this.#flip ^= 1;
    const fb = this.frameBytes;
    let at = this.#payloadAt;
    const v = this.#variant;
    if (v !== undefined) {
      for (let i = 0; i < count; i++) buf[i * fb + v.at] = v.bytes[(seq + i) % v.bytes.length];
    }
    for (let i = 0; i < count; i++, at += fb) {
      const s = seq + i;
      buf[at] = s & 255;
      buf[at + 1] = (s >>> 8) & 255;
      buf[at + 2] = (s >>> 16) & 255;
      buf[at + 3] = s >>> 24;
      if (s % stampEvery === 0) view.setFloat64(at + 4, now, true);
    }
    return buf.subarray(0, count * fb);
  }
}
