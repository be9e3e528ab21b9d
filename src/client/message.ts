/**
 * A delivered message: metadata from the `MSG` line, the body without its
 * header block, and the settle operations (`ack`, `nack`, `respond`).
 *
 * @module
 */
import { decodeHeaders, encodeEnvelope } from "../protocol/mod.ts";
import { type Codec, codecOf, decodeBody } from "./codec.ts";
import type { PublishOptions } from "./options.ts";
import { BadArgumentError } from "./errors.ts";
import { MsgExtra, type MsgFrame } from "./parser.ts";

/** What a message needs from its client; one per subscription, shared by its messages. */
export interface MessageContext {
  /** True when the subscription uses explicit acks (ACK/NACK go on the wire). */
  readonly explicit: boolean;
  ack(msg: Message, confirm: boolean): Promise<void>;
  nack(msg: Message, delayMs: number | undefined, confirm: boolean): Promise<void>;
  publish(dest: string, body: Uint8Array | string, opts: PublishOptions): Promise<string>;
}

/** Options of {@linkcode Message.ack}. */
export interface AckOptions {
  /**
   * Wait for the broker's `OK` and reject with its error (e.g.
   * `UnknownMsgIdError` after an ack timeout). Default false: the ack is
   * batched with others and sent in the next write, and a late failure is
   * reported as a status `error` event; the message is then redelivered, so
   * at-least-once holds either way.
   */
  confirm?: boolean;
}

/** Options of {@linkcode Message.nack}. */
export interface NackOptions extends AckOptions {
  /** Make the message deliverable again after this many ms (default: at once). */
  delayMs?: number;
}

const decoder = new TextDecoder();
/**
 * The promise of every settle nobody waits for: shared, so `await msg.ack()`
 * in a loop allocates nothing (awaiting a settled promise is allowed any
 * number of times).
 */
export const RESOLVED: Promise<void> = Promise.resolve();
/** A message's delivery number in its subscription's ack window (-1: none); for the client only. */
export let seqOf: (msg: Message) => number;
/** Sets a message's delivery number (the subscription, on delivery); for the client only. */
export let setSeq: (msg: Message, n: number) => void;
/** The options of every message that came without any. */
const NO_EXTRA: MsgExtra = new MsgExtra();

/**
 * A message delivered to a subscription.
 *
 * @example
 * ```ts ignore
 * import { connect } from "../client/mod.ts";
 * const client = await connect("localhost:9092");
 * const sub = await client.subscribe("queue:orders");
 * for await (const msg of sub) {
 *   console.log(msg.id, msg.deliveryCount, msg.headers, msg.text());
 *   await msg.ack();
 *   break;
 * }
 * await client.close();
 * ```
 */
export class Message {
  /** Where the message was published (the concrete topic for a wildcard subscription). */
  readonly dest: string;
  /** The subscription id it was delivered to. */
  readonly subId: string;
  /** Which connection delivered it; acks of an older connection are meaningless to the broker. */
  readonly generation: number;
  /** The id while it fits a number exactly (see `MsgFrame.idNum`), else -1. */
  #idNum: number;
  #id: string;
  /** The payload is `#buf[#off, #off + #len)`; `body` makes its view on first use. */
  #buf: Uint8Array;
  #off: number;
  #len: number;
  #body: Uint8Array | undefined;
  #hdrLen: number;
  #headers: Record<string, string> | undefined;
  /** The options most messages lack (shared `NO_EXTRA` when none came). */
  #extra: MsgExtra;
  #ctx: MessageContext;
  #settled = false;
  /**
   * Its delivery number in its subscription's ack window (see
   * `ack_window.ts`), or -1 when not recorded. Private, with `seqOf` and
   * `setSeq` for the client: a user who could change it could make a
   * cumulative ack cover a message nobody acked.
   */
  #seq = -1;

  static {
    seqOf = (m) => m.#seq;
    setSeq = (m, n) => void (m.#seq = n);
  }

  /** Built by the client from a parsed `MSG` frame; not meant to be called by users. */
  constructor(frame: MsgFrame, ctx: MessageContext, generation: number) {
    this.dest = frame.dest;
    this.#idNum = frame.idNum;
    this.#id = frame.idText;
    this.subId = frame.subId;
    this.generation = generation;
    this.#buf = frame.buf;
    this.#off = frame.off;
    this.#len = frame.len;
    this.#hdrLen = frame.hdrLen;
    this.#extra = frame.extra ?? NO_EXTRA;
    this.#ctx = ctx;
  }

  /** 0-9. */
  get priority(): number {
    return this.#extra.priority;
  }

  /** 1 on first delivery; n on the nth (a redelivery). */
  get deliveryCount(): number {
    return this.#extra.delivery;
  }

  /** The `ttl` it was published with, if any. */
  get ttlMs(): number | undefined {
    return this.#extra.ttlMs;
  }

  /** The correlation id it was published with, if any. */
  get correlationId(): string | undefined {
    return this.#extra.correlationId;
  }

  /** Where the publisher wants a reply (see `respond`), if anywhere. */
  get replyTo(): string | undefined {
    return this.#extra.replyTo;
  }

  /** The content type it was published with, if any. */
  get contentType(): string | undefined {
    return this.#extra.contentType;
  }

  /** The id as a number while it fits one exactly (ids up to 2^53 - 1), else -1: then use `id`. */
  get idNum(): number {
    return this.#idNum;
  }

  /** The broker's message id (a decimal integer, kept as a string: ids are up to 2^63). */
  get id(): string {
    // Made on first use: a subscriber that never acks never pays for the string.
    if (this.#id === "") this.#id = String(this.#idNum);
    return this.#id;
  }

  /** The body, without the header block (a view, not a copy). */
  get body(): Uint8Array {
    return this.#body ??= this.#buf.subarray(this.#off + this.#hdrLen, this.#off + this.#len);
  }

  /** Payload bytes on the wire (headers + body); what buffer limits count. */
  get size(): number {
    return this.#len;
  }

  /** Headers, decoded on first use (most consumers never look). A repeated key keeps its last value. */
  get headers(): Record<string, string> {
    if (this.#headers === undefined) {
      this.#headers = {};
      if (this.#hdrLen > 0) {
        const block = this.#buf.subarray(this.#off, this.#off + this.#hdrLen);
        for (const [k, v] of decodeHeaders(block)) {
          this.#headers[k] = v;
        }
      }
    }
    return this.#headers;
  }

  /** True when the broker delivered it before (`deliveryCount > 1`). */
  get redelivered(): boolean {
    return this.deliveryCount > 1;
  }

  /** True once `ack` or `nack` was called. */
  get settled(): boolean {
    return this.#settled;
  }

  /** The body as UTF-8 text. */
  text(): string {
    return decoder.decode(this.body);
  }

  /** The body parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /**
   * The whole message (destination, id, delivery count, fields, headers,
   * body) as one binary envelope (docs/PROTOCOL.md, "Binary envelope"), to
   * carry or store it as a single value; `decodeEnvelope` reads it back.
   */
  toEnvelope(): Uint8Array {
    return encodeEnvelope({
      destination: this.dest,
      id: Number(this.id),
      delivery: this.deliveryCount,
      priority: this.priority,
      ttlMs: this.ttlMs,
      correlationId: this.correlationId,
      replyTo: this.replyTo,
      contentType: this.contentType,
      headers: this.#hdrLen === 0 ? undefined : Object.entries(this.headers),
      body: this.body,
    });
  }

  /**
   * The body decoded by the codec its `contentType` names
   * (`application/json`, `application/msgpack`, `application/octet-stream`:
   * the bytes), or by `codec` when given. A message of another or no content
   * type without `codec` is a `BadArgumentError`: its bytes are in `body`.
   */
  decode<T = unknown>(codec?: Codec): T {
    const c = codec ?? codecOf(this.contentType);
    if (c === undefined) {
      throw new BadArgumentError(
        `no codec for content type ${JSON.stringify(this.contentType ?? null)}; give one`,
      );
    }
    return decodeBody(this.body, c) as T;
  }

  /**
   * Settles the message. A no-op for `ack: "none"` subscriptions and after
   * the first `ack`/`nack`.
   */
  ack(options?: AckOptions): Promise<void> {
    if (this.#settled) return RESOLVED;
    this.#settled = true;
    return this.#ctx.ack(this, options?.confirm === true);
  }

  /** Gives the message back to be redelivered (after `delayMs`); a no-op for `ack: "none"` subscriptions. */
  nack(options?: NackOptions): Promise<void> {
    if (this.#settled) return RESOLVED;
    this.#settled = true;
    return this.#ctx.nack(this, options?.delayMs, options?.confirm === true);
  }

  /**
   * Publishes a reply to `replyTo` with this message's `correlationId`;
   * resolves with the reply's msg id. Throws `TypeError` without `replyTo`.
   */
  respond(body: Uint8Array | string, options?: PublishOptions): Promise<string> {
    if (this.replyTo === undefined) {
      return Promise.reject(new TypeError(`Message ${this.id} has no reply_to to respond to`));
    }
    return this.#ctx.publish(this.replyTo, body, {
      ...options,
      correlationId: this.correlationId ?? options?.correlationId,
    });
  }
}
