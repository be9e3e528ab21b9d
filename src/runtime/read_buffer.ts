/**
 * The buffer a connection reads its socket into, and how it is sized: one
 * policy for Deno's `Conn.read` and Bun's reads of a bulk sender's socket.
 *
 * @module
 */
import {
  CONN_READ_BYTES_MAX,
  CONN_READ_BYTES_MIN,
  CONN_READ_POOL_BUFFERS_MAX,
} from "../config/limits.ts";

/**
 * A read of at least this share of its buffer (1/16: 16 KiB of 256) keeps the
 * buffer for the next read; a smaller one (an idle or chatty connection)
 * shrinks it, so an idle connection holds little. Sizing from every read
 * instead reallocated on a bulk publisher's reads of 32-256 KiB into 256 KiB
 * (one in three reads under publish-only 4 KiB, each a zeroed 128-256 KiB:
 * `memset` was 11.7% of the Deno broker's CPU in `perf`).
 */
const READ_KEEP_SHARE = 16;

/**
 * Full-size read buffers no connection holds, for the next connection that
 * reads a bulk sender's socket (Bun: one thread reads one socket at a time).
 * Takes back at most `buffersMax`; more are left to the collector. A buffer
 * is given back only when nothing points into it, so handing it out again
 * never rewrites a chunk someone kept.
 */
export class ReadBufferPool {
  readonly #free: Uint8Array[] = [];
  readonly #buffersMax: number;
  /** The one size it keeps (`ReadBuffer`'s max: what a bulk sender's reads grow to). */
  readonly size: number;

  constructor(size = CONN_READ_BYTES_MAX, buffersMax = CONN_READ_POOL_BUFFERS_MAX) {
    this.size = size;
    this.#buffersMax = buffersMax;
  }

  /** Buffers waiting in the pool. */
  get buffers(): number {
    return this.#free.length;
  }

  /** A pooled buffer of `size` bytes, or undefined (none pooled, or another size). */
  take(size: number): Uint8Array | undefined {
    return size === this.size ? this.#free.pop() : undefined;
  }

  /** Takes `buf` back (nothing may point into it any more) if it is of its size and there is room. */
  give(buf: Uint8Array): void {
    if (buf.length === this.size && this.#free.length < this.#buffersMax) this.#free.push(buf);
  }
}

/**
 * One connection's read buffer. `take(free)` gives the buffer to read into:
 * the last one again, whole, when the caller hands its last chunk back
 * (`free`: nothing points into it) and nothing before it was kept; else the
 * last one's unused tail, when it is at least a `READ_KEEP_SHARE`th of it;
 * else a new one. A chunk the caller kept is never rewritten: a tail starts
 * after every chunk that may be kept. `got(n)` turns a read of `n` bytes into
 * the chunk and sizes the next buffer from it: a read that filled a whole
 * buffer doubles it (up to its `max`), one that filled a `READ_KEEP_SHARE`th
 * or more of what it was given keeps it, a smaller one sizes the next from
 * itself (twice it, at least `CONN_READ_BYTES_MIN`). Allocating (and zeroing)
 * a fresh 64 KiB per read halved a bulk sender's read rate (1.1-1.7 GB/s
 * against 2.1-2.6 GB/s for a reused buffer, one Deno reader process); the
 * tail is for a reader that keeps its chunks (the SDK's messages view them):
 * it read every chunk into a new, zeroed buffer of 64-256 KiB.
 */
export class ReadBuffer {
  readonly #max: number;
  #size = CONN_READ_BYTES_MIN;
  /** The buffer `take` gave last (or the one whose tail it gave), whole. */
  #last: Uint8Array | undefined = undefined;
  /** Where in `#last` the last read went: the bytes before it may be kept. */
  #at = 0;
  /** Where in `#last` the last read's chunk ends. */
  #end = 0;
  /** The last read read nothing (`unused`): `#last` from `#at` on holds nothing anyone kept. */
  #unused = false;
  /** Where `release` gives the buffer back and `take` looks first, if anywhere. */
  readonly #pool: ReadBufferPool | undefined;
  /** Over 0: the quiet rule's threshold (see the constructor). */
  readonly #quietMax: number;
  /** The last read did not fill what it was given: the socket ran dry, the next read may wait. */
  #dry = false;
  /** The buffer given last is a probe (`CONN_READ_BYTES_MIN`): its read leaves the size alone. */
  #probing = false;
  /** The probe buffer, while no chunk read into it was kept: the next probe reads into it again. */
  #spare: Uint8Array | undefined = undefined;

  /**
   * `max`: the largest buffer it grows to; `pool`: shared with other
   * connections. `quietMax` (Deno, whose pending read pins its buffer until
   * bytes come): a buffer over it is `max` (one size, the pool's), and once a
   * read into one leaves the socket dry, the buffer goes back to the pool and
   * the next read waits in a probe of `CONN_READ_BYTES_MIN`; a probe that
   * fills takes the big one again. So a bulk sender that went quiet holds 256
   * B, not up to 256 KiB. Except while the big buffer holds a kept chunk
   * (`#pinnedTail`): it is held anyway, so the next read goes into its tail.
   */
  constructor(max = CONN_READ_BYTES_MAX, pool?: ReadBufferPool, quietMax = 0) {
    this.#max = max;
    this.#pool = pool;
    this.#quietMax = quietMax;
  }

  /** Bytes of the buffer it holds between reads (0 after `release`). */
  get bytes(): number {
    return this.#last?.length ?? 0;
  }

  /**
   * Bytes at the start of `#last` someone may still point into: up to the
   * last read, or up to its chunk's end unless that chunk is `free`.
   */
  #kept(last: Uint8Array, free: Uint8Array | undefined): number {
    const at = this.#at;
    if (this.#unused) return at;
    return free?.buffer === last.buffer && free.byteOffset === last.byteOffset + at
      ? at
      : this.#end;
  }

  /** The buffer for the next read. */
  take(free: Uint8Array | undefined): Uint8Array {
    if (
      this.#dry && this.#quietMax > 0 && this.#size > this.#quietMax && !this.#pinnedTail(free)
    ) return this.#probe(free);
    const last = this.#last;
    if (last !== undefined && last === this.#spare && this.#kept(last, free) !== 0) {
      this.#spare = undefined; // a probe's chunk someone kept: the next probe is a new one
    }
    if (last !== undefined && last !== this.#spare && last.length === this.#size) {
      const kept = this.#kept(last, free);
      this.#unused = false;
      if (kept === 0) {
        this.#at = 0;
        return last;
      }
      const tail = last.length - kept;
      if (tail >= CONN_READ_BYTES_MIN && tail * READ_KEEP_SHARE >= last.length) {
        this.#at = kept;
        return last.subarray(kept);
      }
    }
    this.#unused = false;
    this.#at = 0;
    return this.#last = this.#pool?.take(this.#size) ?? new Uint8Array(this.#size);
  }

  /**
   * The quiet rule's exception: `#last` holds a chunk someone kept (a queue
   * delivery in flight, a retained message), so letting it go frees nothing,
   * and its unused tail is big enough for the next read. Reading into that
   * tail packs the next burst beside the last; a probe would make the next
   * burst take a whole new big buffer while this one stays pinned (80 bursts
   * of 40 KiB held in flight: 50 MiB of buffers instead of 8).
   */
  #pinnedTail(free: Uint8Array | undefined): boolean {
    const last = this.#last;
    if (last === undefined || last === this.#spare || last.length !== this.#size) return false;
    const kept = this.#kept(last, free);
    const tail = last.length - kept;
    return kept !== 0 && tail >= CONN_READ_BYTES_MIN && tail * READ_KEEP_SHARE >= last.length;
  }

  /** A probe for the read after one that left the socket dry; the big buffer to the pool if free. */
  #probe(free: Uint8Array | undefined): Uint8Array {
    const last = this.#last;
    if (last === this.#spare && this.#kept(last!, free) !== 0) this.#spare = undefined;
    if (last !== this.#spare) this.release(free);
    this.#unused = false;
    this.#at = 0;
    this.#probing = true;
    return this.#last = this.#spare ??= new Uint8Array(CONN_READ_BYTES_MIN);
  }

  /**
   * The connection went quiet: gives its buffer to the pool when nothing
   * points into it (its read read nothing, or `free` is its last chunk handed
   * back, and nothing before it was kept), else just lets go of it (its
   * chunks belong to whoever kept them). The next `take` gets a pooled or new
   * buffer of the size it had.
   */
  release(free: Uint8Array | undefined): void {
    const last = this.#last;
    if (last === undefined) return;
    if (this.#kept(last, free) === 0) this.#pool?.give(last);
    this.#last = undefined;
    this.#unused = false;
    this.#at = this.#end = 0;
  }

  /**
   * The socket ran dry (Bun, between wake-ups): `release`, unless the buffer
   * holds a kept chunk and a tail worth reading into (`#pinnedTail`): it is
   * held anyway, so it keeps it for the next burst instead of that burst
   * taking a new buffer beside it.
   */
  rest(free: Uint8Array | undefined): void {
    if (!this.#pinnedTail(free)) this.release(free);
  }

  /** The read into the buffer `take` gave read nothing: the next `take` may give it again. */
  unused(): void {
    this.#unused = true;
  }

  /** The chunk of a read of `n` (> 0) bytes into the buffer `take` gave. */
  got(n: number): Uint8Array {
    const buf = this.#last!;
    const at = this.#at;
    const whole = buf.length;
    const cap = whole - at;
    const max = this.#max;
    this.#end = at + n;
    this.#dry = n < cap;
    if (this.#probing) {
      this.#probing = false;
      return n === whole ? buf : buf.subarray(0, n);
    }
    if (n === cap) this.#size = at === 0 ? Math.min(whole * 2, max) : whole;
    else if (n * READ_KEEP_SHARE >= cap) this.#size = whole;
    else {
      let want = CONN_READ_BYTES_MIN;
      while (want < 2 * n && want < max) want *= 2;
      this.#size = want;
    }
    if (this.#quietMax > 0 && this.#size > this.#quietMax) this.#size = max;
    return n === whole ? buf : buf.subarray(at, at + n);
  }
}
