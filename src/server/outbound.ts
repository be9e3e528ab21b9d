/**
 * A connection's outbound side: frames are appended to a buffer and written
 * in one socket write per tick (one write per frame is ~25x slower, measured
 * here). Two buffers take turns: one is being written while the other fills,
 * so exactly one write is in flight and no byte is copied twice. Buffers of
 * the smallest size go to a pool shared by all connections once written with
 * nothing more to write, as nats-server pools its small ones: a quiet
 * connection holds no outbound buffer, a chatty one takes and returns one per
 * write without allocating.
 *
 * @module
 */
import { OUTBOUND_POOL_BUFFERS_MAX, PENDING_BYTES_HIGH, PENDING_BYTES_MAX } from "../config/mod.ts";
import {
  grow,
  type MsgFields,
  MsgLine,
  type MsgRun,
  msgTail,
  PLAIN_TAIL_BYTES_MAX,
  writePlainTail,
} from "../protocol/mod.ts";
import { type Conn, copyRange } from "../runtime/mod.ts";

/**
 * Smallest buffer a connection's writer allocates. Both buffers start empty
 * and grow with the traffic (doubling), so an idle connection costs no
 * buffer at all: with 64 KiB each up front, 10,000 idle connections held
 * 1.3 GB. 512 B holds a CONNECT's and a SUB's `OK`s and a PONG; with 4 KiB, a
 * storm of 10,000 connections (each answered two `OK`s) held 70 MiB of
 * buffers, and after they closed the allocator kept ~100 MiB of RSS for them.
 */
const BUFFER_BYTES_MIN = 512;
/**
 * Buffers up to this size are kept between writes whatever they carry (at
 * most two per connection): below it, shrinking would trade a few KiB for
 * re-growing on every burst.
 */
const BUFFER_BYTES_KEEP_ALWAYS = 64 * 1024;
/** A buffer grown past this is replaced by a small one once written, to give memory back. */
const BUFFER_BYTES_KEEP = 1024 * 1024;
/**
 * A buffer above `BUFFER_BYTES_KEEP_ALWAYS` is dropped once a write fills
 * less than this fraction of it: the burst that grew it is over, and a
 * subscriber back to light traffic should not keep two 1 MiB buffers.
 */
const BUFFER_UNDERUSED_FRACTION = 1 / 4;

/** What the owner hears from its outbound side. */
export interface OutboundEvents {
  /** Pending bytes fell below the high mark after a sender was turned away. */
  onDrain(): void;
  /** Pending bytes would pass `PENDING_BYTES_MAX`: the client is not reading. */
  onOverflow(): void;
  /** The socket write failed. */
  onWriteError(err: unknown): void;
  /** Just before bytes go to the socket: the store writes the records they report on. */
  beforeWrite(): void;
}

const EMPTY = new Uint8Array(0);

/** Buffers of `BUFFER_BYTES_MIN` bytes no writer holds, none being written. */
const pool: Uint8Array<ArrayBuffer>[] = [];

/** Gives a smallest-size buffer to the pool (or to the collector when the pool is full). */
function giveBack(buf: Uint8Array<ArrayBuffer>): void {
  if (pool.length < OUTBOUND_POOL_BUFFERS_MAX) pool.push(buf);
}

/** Coalescing writer for one connection. */
export class Outbound {
  #conn: Conn;
  #events: OutboundEvents;
  #buf: Uint8Array<ArrayBuffer> = EMPTY;
  #spare: Uint8Array<ArrayBuffer> = EMPTY;
  #len = 0;
  #writing = 0;
  #scheduled = false;
  #wantDrain = false;
  #dead = false;
  #idle: (() => void)[] = [];
  #max = PENDING_BYTES_MAX;
  /** Size of the next buffer allocated from empty (at least `BUFFER_BYTES_MIN`). */
  #startBytes = BUFFER_BYTES_MIN;
  #high = PENDING_BYTES_HIGH;
  /** The last plain MSG line, for the next one (`MsgLine`); made on the first, dropped by `trim`. */
  #line: MsgLine | undefined = undefined;

  constructor(conn: Conn, events: OutboundEvents) {
    this.#conn = conn;
    this.#events = events;
  }

  /**
   * Sets the pending bytes past which the client is a slow consumer (its
   * user's `pending_bytes`); fan-out pauses at half of a limit below the
   * usual high mark, so that a small limit still leaves room to pause.
   */
  set pendingBytesMax(n: number) {
    this.#max = n;
    this.#high = Math.min(PENDING_BYTES_HIGH, Math.floor(n / 2));
  }

  /** Bytes of buffer this writer holds (both buffers, used or not). */
  get capacity(): number {
    return this.#buf.length + this.#spare.length;
  }

  /**
   * Gives both buffers back when nothing is pending (called for idle
   * connections): the next frame allocates a small one again.
   */
  trim(): void {
    if (this.pending !== 0) return;
    this.#buf = this.#spare = EMPTY;
    this.#line = undefined;
    this.#startBytes = BUFFER_BYTES_MIN;
  }

  /** Bytes appended and not yet written. */
  get pending(): number {
    return this.#len + this.#writing;
  }

  /**
   * Whether senders may add more. A refusal is remembered, so that `onDrain`
   * follows once the pending bytes fall below the high mark again.
   */
  wantsMore(): boolean {
    if (this.#len + this.#writing < this.#high) return true;
    this.#wantDrain = true;
    return false;
  }

  /** Whether `bytes` more stay below the high mark (a "no" asks for no drain: see `wantsMore`). */
  roomFor(bytes: number): boolean {
    return this.#len + this.#writing + bytes <= this.#high;
  }

  /** Appends a run's MSG frames with `head` as their head, `bytes` long (`run.bytesFor(head)`). */
  appendRun(head: Uint8Array, run: MsgRun, bytes: number): void {
    if (!this.#room(bytes)) return;
    this.#len = run.writeTo(this.#buf, this.#len, head);
  }

  /** Appends bytes. */
  append(bytes: Uint8Array): void {
    if (!this.#room(bytes.length)) return;
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  /** Appends an ASCII string without an encoder. */
  appendAscii(s: string): void {
    if (!this.#room(s.length)) return;
    const buf = this.#buf;
    let len = this.#len;
    for (let i = 0; i < s.length; i++) buf[len++] = s.charCodeAt(i);
    this.#len = len;
  }

  /** Appends a MSG frame: head, tail (written in place when the message has no options), payload, CRLF. */
  appendMsg(head: Uint8Array, m: MsgFields, delivery: number): void {
    const size = m.len;
    const plain = m.opts === undefined && delivery <= 1 && m.priority === 0;
    const tail = plain
      ? undefined
      : delivery === 1
      ? (m.tail ??= msgTail(m, 1))
      : msgTail(m, delivery);
    const n = head.length + (tail === undefined ? PLAIN_TAIL_BYTES_MAX : tail.length) + size + 2;
    if (!this.#room(n)) return;
    const buf = this.#buf;
    let len = this.#len;
    const lined = tail === undefined
      ? (this.#line ??= new MsgLine()).write(buf, len, head, m.id, size)
      : -1;
    if (lined >= 0) len = lined;
    else {
      buf.set(head, len);
      len += head.length;
      if (tail === undefined) len = writePlainTail(buf, len, m.id, size);
      else {
        buf.set(tail, len);
        len += tail.length;
      }
    }
    len = copyRange(buf, len, m.buf, m.off, size);
    buf[len++] = 13;
    buf[len++] = 10;
    this.#len = len;
  }

  /** Resolves when everything appended so far is written (or the socket failed). */
  idle(): Promise<void> {
    if (this.pending === 0 || this.#dead) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops writing; later appends are dropped. */
  kill(): void {
    this.#dead = true;
    this.#len = 0;
    // A closed connection may stay reachable a while (a pending promise, a stats page): not its buffers.
    this.#buf = this.#spare = EMPTY;
    for (const r of this.#idle.splice(0)) r();
  }

  #room(n: number): boolean {
    if (this.#dead) return false;
    const need = this.#len + n;
    if (need + this.#writing > this.#max) {
      this.#dead = true;
      this.#events.onOverflow();
      return false;
    }
    if (need > this.#buf.length) {
      const size = Math.max(need, this.#startBytes);
      this.#buf = size === BUFFER_BYTES_MIN && pool.length !== 0
        ? pool.pop()! // #len is 0: a buffer of the smallest size grows from nothing
        : grow(this.#buf, this.#len, size);
    }
    if (!this.#scheduled && this.#writing === 0) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
    return true;
  }

  #flush = (): void => {
    this.#scheduled = false;
    if (this.#writing !== 0 || this.#len === 0 || this.#dead) return;
    const full = this.#buf;
    const data = full.subarray(0, this.#len);
    this.#buf = this.#spare;
    if (keep(full, data.length)) this.#spare = full;
    else {
      // A new buffer starts at about what this write carried, not at the smallest size: a
      // subscriber whose writes vary by more than 4x regrows in one step instead of ten.
      this.#spare = EMPTY;
      this.#startBytes = Math.max(BUFFER_BYTES_MIN, Math.min(data.length, BUFFER_BYTES_KEEP));
    }
    this.#writing = data.length;
    this.#len = 0;
    this.#events.beforeWrite();
    this.#conn.write(data).then(this.#written, this.#failed);
  };

  #written = (): void => {
    this.#writing = 0;
    if (this.#len > 0) this.#flush();
    else {
      // Nothing more to write: small buffers go to the pool until this connection writes again.
      if (this.#spare.length === BUFFER_BYTES_MIN) {
        giveBack(this.#spare);
        this.#spare = EMPTY;
      }
      if (this.#buf.length === BUFFER_BYTES_MIN) {
        giveBack(this.#buf);
        this.#buf = EMPTY;
      }
    }
    if (this.#wantDrain && this.pending < this.#high) {
      this.#wantDrain = false;
      this.#events.onDrain();
    }
    if (this.pending === 0) { for (const r of this.#idle.splice(0)) r(); }
  };

  #failed = (err: unknown): void => {
    this.#writing = 0;
    this.kill();
    this.#events.onWriteError(err);
  };
}

/** Whether a buffer that just carried `used` bytes is worth keeping for the next write. */
function keep(buf: Uint8Array, used: number): boolean {
  if (buf.length <= BUFFER_BYTES_KEEP_ALWAYS) return true;
  return buf.length <= BUFFER_BYTES_KEEP && used >= buf.length * BUFFER_UNDERUSED_FRACTION;
}
