/**
 * A message as the broker holds it. One class (one hidden shape) for every
 * message keeps the hot path monomorphic, and the shape is kept small because
 * a queue may hold millions:
 * - the payload is a range (`buf`, `off`, `len`) of a buffer: the read chunk
 *   while the message is passing through, a shared slab once it is retained
 *   (`retain()`), so a queued message owns no ArrayBuffer of its own;
 * - the rarely used options (TTL and expiry among them) live in one optional object;
 * - state, priority and delivery count share one small integer, and the due
 *   time of a delayed message shares a field with the delivery time of an
 *   in-flight one (a message is never both);
 * - the accept time is not stored: the id holds it (`id = ms * 1024 + seq`).
 *
 * @module
 */
import { headerMap } from "../protocol/mod.ts";
import { copyRange } from "../runtime/mod.ts";

/** Where a message is in its queue's life. */
export const MessageState = {
  /** Waiting in a priority level for a consumer. */
  READY: 0,
  /** Delivered, waiting for ACK/NACK. */
  INFLIGHT: 1,
  /** NACKed with a delay; waiting for its due time. */
  DELAYED: 2,
  /** Acked, expired, dropped or dead-lettered: gone; its payload is released. */
  DONE: 3,
} as const;
export type MessageState = typeof MessageState[keyof typeof MessageState];

const EMPTY = new Uint8Array(0);

/** Ids are `ms * ID_SEQ_PER_MS + seq` (see broker/ids.ts). */
export const ID_SEQ_PER_MS = 1024;

/** Bytes of one slab that retained payloads are packed into. */
const SLAB_BYTES = 64 * 1024;
/** Payloads larger than this get a buffer of their own rather than a slab slot. */
const SLAB_PAYLOAD_BYTES_MAX = 8 * 1024;

/**
 * Packs retained payloads into 64 KiB slabs. A slab is freed by the garbage
 * collector once no message points into it; in FIFO use slabs empty in order.
 * The worst case, one long-lived message per slab, pins 64 KiB for it.
 */
class Slabs {
  #slab = new Uint8Array(SLAB_BYTES);
  #pos = 0;
  /** Offset of the last copy in the slab it returned. */
  offset = 0;

  /** Copies `src[off, off+len)` into a slab and returns the slab (the copy is at `offset`). */
  copy(src: Uint8Array, off: number, len: number): Uint8Array {
    if (this.#pos + len > SLAB_BYTES) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#pos = 0;
    }
    const slab = this.#slab;
    copyRange(slab, this.#pos, src, off, len);
    this.offset = this.#pos;
    this.#pos += len;
    return slab;
  }
}

const slabs = new Slabs();

/** Options of a message that has any (most have none). */
export class MessageOptions {
  /** Cached first-delivery tail of the MSG line, built on first send. */
  tail: Uint8Array | undefined = undefined;
  /** The header block parsed, on the first filter that reads a header (at most once per message). */
  headers: ReadonlyMap<string, string> | undefined = undefined;
  /** `dedup_id` it was published with: a durable store logs it, so a restart rebuilds the window. */
  dedupId: string | undefined = undefined;
  constructor(
    readonly hdrBytes: number,
    readonly ttlMs: number,
    readonly expiresAt: number,
    readonly correlationId: string | undefined,
    readonly replyTo: string | undefined,
    readonly contentType: string | undefined,
  ) {}
}

const STATE_MASK = 0b11;
const PRIORITY_SHIFT = 2;
const PRIORITY_MASK = 0b1111;
const DELIVERIES_SHIFT = 6;

/**
 * A published message; immutable but for its delivery state. Its destination
 * is not stored: the queue or topic holding it knows it.
 */
export class Message {
  /** State (2 bits), priority (4 bits) and delivery count packed in one small integer. */
  #flags: number;
  /** Due time while DELAYED, delivery time otherwise (epoch ms): a message is never both. */
  #at = 0;
  /** The buffer holding the payload at `off`, `len` bytes long. */
  buf: Uint8Array;
  off: number;
  len: number;
  /** Options; undefined for a plain message (set once by `setDedupId`). */
  opts: MessageOptions | undefined;

  constructor(
    /** Unique, time-ordered id. */
    readonly id: number,
    /** Full destination, `queue:orders`: not stored (the holder knows it). */
    _dest: string,
    /** Header block + body. */
    payload: Uint8Array,
    hdrBytes: number,
    priority: number,
    ttlMs: number,
    /** Epoch ms after which it is never delivered; 0 = never expires. */
    expiresAt: number,
    correlationId: string | undefined,
    replyTo: string | undefined,
    contentType: string | undefined,
    /** Epoch ms when the broker accepted it: ignored, the id holds it (kept for the stores' call sites). */
    _acceptedAt?: number,
  ) {
    this.#flags = (priority & PRIORITY_MASK) << PRIORITY_SHIFT;
    this.buf = payload;
    this.off = 0;
    this.len = payload.length;
    this.opts = hdrBytes === 0 && ttlMs === 0 && expiresAt === 0 && correlationId === undefined &&
        replyTo === undefined && contentType === undefined
      ? undefined
      : new MessageOptions(hdrBytes, ttlMs, expiresAt, correlationId, replyTo, contentType);
  }

  /** Where the message is in its queue's life. */
  get state(): MessageState {
    return (this.#flags & STATE_MASK) as MessageState;
  }
  set state(s: MessageState) {
    this.#flags = (this.#flags & ~STATE_MASK) | s;
  }
  /** 0-9, higher first. */
  get priority(): number {
    return (this.#flags >> PRIORITY_SHIFT) & PRIORITY_MASK;
  }
  /** Delivery attempts so far (queues). */
  get deliveries(): number {
    return this.#flags >>> DELIVERIES_SHIFT;
  }
  set deliveries(n: number) {
    this.#flags = (this.#flags & ((1 << DELIVERIES_SHIFT) - 1)) | (n << DELIVERIES_SHIFT);
  }
  /** When a DELAYED message is due (epoch ms); shares its field with `deliveredAt`. */
  get dueAt(): number {
    return this.#at;
  }
  set dueAt(t: number) {
    this.#at = t;
  }
  /** When an INFLIGHT message was delivered (epoch ms), for ack timeouts; shares its field with `dueAt`. */
  get deliveredAt(): number {
    return this.#at;
  }
  set deliveredAt(t: number) {
    this.#at = t;
  }
  /** Epoch ms after which it is never delivered; 0 = never expires. */
  get expiresAt(): number {
    return this.opts === undefined ? 0 : this.opts.expiresAt;
  }

  /** The payload (a view; allocates when the message lives in a slab). */
  get payload(): Uint8Array {
    const b = this.buf;
    return this.off === 0 && this.len === b.length ? b : b.subarray(this.off, this.off + this.len);
  }

  /** Epoch ms (whole) when the broker accepted it, from the id. */
  get acceptedAt(): number {
    return Math.floor(this.id / ID_SEQ_PER_MS);
  }

  /** Payload size in bytes. */
  get size(): number {
    return this.len;
  }

  get hdrBytes(): number {
    return this.opts?.hdrBytes ?? 0;
  }
  get ttlMs(): number {
    return this.opts?.ttlMs ?? 0;
  }
  get correlationId(): string | undefined {
    return this.opts?.correlationId;
  }
  get replyTo(): string | undefined {
    return this.opts?.replyTo;
  }
  get contentType(): string | undefined {
    return this.opts?.contentType;
  }
  /**
   * The first value of header `name`, or undefined. The header block is
   * parsed on the first call and kept: a message no filter asks about is
   * never parsed, one that many filters ask about is parsed once.
   */
  header(name: string): string | undefined {
    const o = this.opts;
    if (o === undefined || o.hdrBytes === 0 || this.len === 0) return undefined;
    const h = o.headers ??= headerMap(this.buf.subarray(this.off, this.off + o.hdrBytes));
    return h.get(name);
  }

  /** The `dedup_id` it was published with, if any. */
  get dedupId(): string | undefined {
    return this.opts?.dedupId;
  }
  /** Records the `dedup_id` it was published with (gives a plain message its options object). */
  setDedupId(id: string): void {
    (this.opts ??= new MessageOptions(0, 0, 0, undefined, undefined, undefined)).dedupId = id;
  }

  /** Cached first-delivery MSG tail (messages with options only). */
  get tail(): Uint8Array | undefined {
    return this.opts?.tail;
  }
  set tail(t: Uint8Array | undefined) {
    if (this.opts !== undefined) this.opts.tail = t;
  }

  /**
   * Moves the payload out of the read chunk it points into, before the
   * message is kept for long: a small view must not pin a large chunk, and a
   * slab slot costs no ArrayBuffer of its own.
   */
  retain(): void {
    const len = this.len;
    // `off` first: a message in a read chunk is past its start, and `.buffer` is no plain field
    // read (on a small on-heap array it makes the ArrayBuffer).
    if (len === 0 || (this.off === 0 && this.buf.buffer.byteLength === len)) return;
    if (len > SLAB_PAYLOAD_BYTES_MAX) {
      this.buf = this.buf.slice(this.off, this.off + len);
      this.off = 0;
      return;
    }
    this.buf = slabs.copy(this.buf, this.off, len);
    this.off = slabs.offset;
  }

  /** Marks the message gone and lets its payload be collected. */
  release(): void {
    this.state = MessageState.DONE;
    this.buf = EMPTY;
    this.off = 0;
    this.len = 0;
    if (this.opts !== undefined) {
      this.opts.tail = undefined;
      this.opts.headers = undefined;
    }
  }

  /** Whether it has expired at `now`. */
  expired(now: number): boolean {
    const o = this.opts;
    return o !== undefined && o.expiresAt !== 0 && o.expiresAt <= now;
  }
}
