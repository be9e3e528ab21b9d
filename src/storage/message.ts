/**
 * A message as the broker holds it. One class (one hidden shape) for every
 * message keeps the hot path monomorphic.
 *
 * @module
 */

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

/** A published message; immutable but for its delivery state. */
export class Message {
  /** Delivery attempts so far (queues). */
  deliveries = 0;
  state: MessageState = MessageState.READY;
  /** When a DELAYED message is due (epoch ms). */
  dueAt = 0;
  /** When it was last delivered (epoch ms), for ack timeouts. */
  deliveredAt = 0;
  /** Cached first-delivery tail of its MSG line; built by the broker on first send. */
  tail: Uint8Array | undefined = undefined;

  constructor(
    /** Unique, time-ordered id. */
    readonly id: number,
    /** Full destination, `queue:orders`. */
    readonly dest: string,
    /** Header block + body. */
    public payload: Uint8Array,
    /** Length of the header block at the start of the payload (0: none). */
    readonly hdrBytes: number,
    readonly priority: number,
    readonly ttlMs: number,
    /** Epoch ms after which it is never delivered; 0 = never expires. */
    readonly expiresAt: number,
    readonly correlationId: string | undefined,
    readonly replyTo: string | undefined,
    readonly contentType: string | undefined,
    /** Epoch ms when the broker accepted it. */
    readonly acceptedAt: number,
  ) {}

  /** Payload size in bytes. */
  get size(): number {
    return this.payload.length;
  }

  /** Marks the message gone and lets its payload be collected. */
  release(): void {
    this.state = MessageState.DONE;
    this.payload = EMPTY;
    this.tail = undefined;
  }

  /** Whether it has expired at `now`. */
  expired(now: number): boolean {
    return this.expiresAt !== 0 && this.expiresAt <= now;
  }
}
