/**
 * Decimal digits on the wire to a number, read straight from the bytes: both
 * parsers (the broker's of client frames, the client's of server frames) read
 * byte counts, numeric options and message ids with these. They run several
 * times per frame, so they are plain loops over the bytes: no string, no
 * allocation.
 *
 * Message ids have their own reader, {@linkcode decimalId}: the broker makes
 * every id from `ms * 1024 + seq`, 16 digits from 2000 to 2286, and an id is
 * read once per delivery (the client) and once per ack (the broker). Sixteen
 * digits take {@linkcode digits16} (four at a time through a `DataView`, or
 * eight a branch); other lengths {@linkcode decimal}'s loop. Both parsers
 * call these, so an id means the same number on both sides of the wire.
 *
 * @module
 */

/** Powers of ten up to the digits of one int32 run. */
const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/** Digits of a message id: 16 hold every safe integer (2^53 - 1 has 16), checked next. */
export const ID_DIGITS_MAX = 16;

/**
 * The number the ASCII digits `buf[s, e)` write, or -1 when there is no digit,
 * more than `digitsMax` of them, or a byte that is not a digit. Up to 15
 * digits the result is exact; a caller that allows 16 checks
 * `Number.isSafeInteger` on it (or reads ids with {@linkcode decimalId}).
 *
 * The digits are summed in runs of at most 9, each in int32 arithmetic, and
 * the runs joined with one float multiply: a float multiply-add per digit is
 * a dependency chain ~3.5x slower for a 16-digit message id (measured on the
 * ACK line scan). Exact within 2^53 either way; beyond it both round up past
 * `Number.MAX_SAFE_INTEGER`, so the callers' check is unchanged.
 *
 * @example
 * ```ts
 * import { decimal } from "./decimal.ts";
 * const line = new TextEncoder().encode("PUB topic:a 1024");
 * console.assert(decimal(line, 12, 16, 10) === 1024);
 * console.assert(decimal(line, 4, 9, 10) === -1); // "topic" is no number
 * ```
 */
export function decimal(buf: Uint8Array, s: number, e: number, digitsMax: number): number {
  if (e === s || e - s > digitsMax) return -1;
  let v = 0;
  for (let k = s; k < e;) {
    const m = Math.min(e, k + 9);
    const n = m - k;
    let run = 0;
    for (; k < m; k++) {
      const d = buf[k] - 0x30;
      if (d < 0 || d > 9) return -1;
      run = run * 10 + d;
    }
    v = v * POW10[n] + run;
  }
  return v;
}

/**
 * Where the run of ASCII digits that starts at `s` ends: the index of the
 * first byte in `[s, limit)` that is not a digit, or `limit`. How a caller
 * finds an id's end when it is not 16 digits long.
 */
export function digitsEnd(buf: Uint8Array, s: number, limit: number): number {
  let k = s;
  while (k < limit) {
    const d = buf[k] - 0x30;
    if (d < 0 || d > 9) return k;
    k++;
  }
  return k;
}

/**
 * The message id the digits `buf[s, e)` write, or -1 when they are not 1 to
 * {@linkcode ID_DIGITS_MAX} digits or write more than
 * `Number.MAX_SAFE_INTEGER` (the protocol allows ids up to 2^63; a reader
 * that must keep those keeps their text). Leading zeros are read as written
 * (`007` is 7): a caller that must give the text back checks them itself.
 *
 * `view` is a `DataView` of `buf`'s bytes (`buf.buffer`, `buf.byteOffset`,
 * `buf.byteLength`), made once per chunk or line by the caller, or null: see
 * {@linkcode digits16}. Measured in a loop over 4,096 ids of 16 digits, ns
 * an id, Deno / Bun: the byte loop 26 / 20, two runs of eight 21 / 14, SWAR
 * through a view 11 / 9.
 *
 * @example
 * ```ts
 * import { decimalId } from "./decimal.ts";
 * const buf = new TextEncoder().encode("msg_id:1839783748263936");
 * const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
 * console.assert(decimalId(buf, view, 7, 23) === 1839783748263936);
 * console.assert(decimalId(buf, null, 7, 23) === 1839783748263936);
 * console.assert(decimalId(buf, view, 0, 6) === -1); // "msg_id" is no id
 * ```
 */
export function decimalId(buf: Uint8Array, view: DataView | null, s: number, e: number): number {
  const v = e - s === ID_DIGITS_MAX ? digits16(buf, view, s) : decimal(buf, s, e, ID_DIGITS_MAX);
  // Beyond 2^53 the value is rounded (to 2^53 or more): refused, never mistaken for another id.
  return v <= Number.MAX_SAFE_INTEGER ? v : -1;
}

/**
 * The value of the 16 ASCII digits at `buf[at, at + 16)`, or -1 when a byte
 * is not a digit. Exact below 2^53; above, rounded (a caller checks
 * `Number.MAX_SAFE_INTEGER`). With `view` (a `DataView` of `buf`'s bytes),
 * four little-endian uint32 reads, each checked and summed in a few int32
 * steps (SWAR, as simdjson reads numbers); without, two runs of eight bytes,
 * each checked with one branch and summed in int32 arithmetic.
 *
 * Why both: Bun's socket chunks (Buffers) take a `DataView` badly (the
 * SDK's client CPU per message went from 0.38 to 0.67 µs on Bun with one per
 * chunk in `bench:sdk`). So the SDK makes a view only of a plain Uint8Array
 * (Deno's reads, WebSocket messages) and reads Bun's chunks from the bytes;
 * the broker's ACK line scan makes one view per line. (SWAR words assembled from four byte loads each, without a view,
 * read a loop of ids alone faster than the two runs, 16 against 21 ns an id
 * on Deno; called from the SDK's `MSG` fast path they parsed a 64 KiB chunk
 * of 16 B frames at 39 against 43-44 ns a frame on Bun but 62-73, from run
 * to run, against 62-66 on Deno: the runs stay.)
 */
export function digits16(buf: Uint8Array, view: DataView | null, at: number): number {
  return view === null ? runs16(buf, at) : words16(view, at);
}

/** {@linkcode digits16} through a view: four uint32 words (the SDK's `MSG` fast path calls it). */
export function words16(view: DataView, at: number): number {
  const a = digits4(view.getUint32(at, true));
  const b = digits4(view.getUint32(at + 4, true));
  const c = digits4(view.getUint32(at + 8, true));
  const d = digits4(view.getUint32(at + 12, true));
  return (a | b | c | d) < 0 ? -1 : (a * 1e4 + b) * 1e8 + (c * 1e4 + d);
}

/**
 * {@linkcode digits16} from the bytes: two runs of eight. The SDK's `MSG`
 * fast path calls it directly: through `decimalId` (its length branch and
 * loop compiled in with it) the path cost Deno 10-15% more per frame.
 */
export function runs16(buf: Uint8Array, at: number): number {
  const hi = digits8(buf, at);
  const lo = digits8(buf, at + 8);
  return (hi | lo) < 0 ? -1 : hi * 1e8 + lo;
}

/**
 * The value of the 8 ASCII digits at `buf[k, k + 8)`, or -1 when one is not
 * a digit. One branch for all eight: `d | (d + 6)` stays within 0-15 for a
 * digit's value d (0-9) and sets a higher bit for anything else (10-15 carry
 * into bit 4; a byte below `0` is negative).
 */
function digits8(buf: Uint8Array, k: number): number {
  const d0 = buf[k] - 0x30, d1 = buf[k + 1] - 0x30, d2 = buf[k + 2] - 0x30;
  const d3 = buf[k + 3] - 0x30, d4 = buf[k + 4] - 0x30, d5 = buf[k + 5] - 0x30;
  const d6 = buf[k + 6] - 0x30, d7 = buf[k + 7] - 0x30;
  const bad = d0 | (d0 + 6) | d1 | (d1 + 6) | d2 | (d2 + 6) | d3 | (d3 + 6) | d4 | (d4 + 6) |
    d5 | (d5 + 6) | d6 | (d6 + 6) | d7 | (d7 + 6);
  if ((bad & ~15) !== 0) return -1;
  return ((((((d0 * 10 + d1) * 10 + d2) * 10 + d3) * 10 + d4) * 10 + d5) * 10 + d6) * 10 + d7;
}

/**
 * The value (0-9999) of the four ASCII digits of `x`, the first in its low
 * byte, or -1 if any of the four bytes is not a digit. The broker's ACK scan
 * reads its four words with it in place (through `digits16` its call cost
 * Bun a quarter more per id).
 */
export function digits4(x: number): number {
  // Every byte 0x30-0x39: its high nibble is 3, and still 3 with 6 added to it.
  if ((x & 0xf0f0f0f0) !== 0x30303030 || ((x + 0x06060606) & 0xf0f0f0f0) !== 0x30303030) {
    return -1;
  }
  const d = x & 0x0f0f0f0f;
  // Bytes 0 and 2 become the two-digit values d0d1 and d2d3.
  const pairs = (Math.imul(d, 10) + (d >>> 8)) & 0x00ff00ff;
  return (pairs & 0xff) * 100 + (pairs >>> 16);
}
