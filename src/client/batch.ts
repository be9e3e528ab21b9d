/**
 * Batched settlement of publishes: many messages, one promise. The batch is
 * itself the pending entry of each of its publishes (the same object pushed
 * once per message), so a publish costs no promise and no closure, and the
 * broker's `OK`s and `ERR`s, which come in publish order, are counted into
 * one result.
 *
 * @module
 */
import type { PublishOptions } from "./options.ts";
import { type Pending, Reply } from "./link.ts";

/** What a {@linkcode PublishBatch} settled to. */
export interface BatchResult {
  /** Messages published in the batch. */
  sent: number;
  /** Messages the broker accepted (`sent - errors.length`). */
  accepted: number;
  /** The broker's id of the last message it accepted, if any. */
  lastId: string | undefined;
  /**
   * The messages that failed, by their index in the batch (publish order),
   * with the broker's typed error (e.g. `QueueFullError`) or
   * `ConnectionLostError` / `ConnectionClosedError` for one in flight when
   * the connection dropped (it may or may not have been accepted).
   */
  errors: { index: number; error: Error }[];
}

/** How a batch hands a publish to its client: queue it with `pending`, or throw. */
export type BatchPublish = (
  dest: string,
  body: Uint8Array | string,
  opts: PublishOptions | undefined,
  pending: Pending,
) => void;

/**
 * Publishes whose broker answers are settled together: `publish` queues a
 * message and returns at once; `done()` resolves once the broker has
 * answered every one of them. Made by `Client.batch()`.
 *
 * @example
 * ```ts ignore
 * const batch = client.batch();
 * for (let i = 0; i < 10_000; i++) batch.publish("queue:jobs", `${i}`);
 * const { accepted, errors } = await batch.done();
 * ```
 */
export class PublishBatch implements Pending {
  /** Its entries wait for `OK`s. */
  readonly kind: Reply = Reply.OK;
  #send: BatchPublish;
  #sent = 0;
  #settled = 0;
  #lastArg: string | undefined;
  #errors: { index: number; error: Error }[] = [];
  #closed = false;
  #done = Promise.withResolvers<BatchResult>();

  /** Use `Client.batch()`. */
  constructor(send: BatchPublish) {
    this.#send = send;
  }

  /** Messages published so far. */
  get sent(): number {
    return this.#sent;
  }

  /**
   * Queues one message (as `Client.publish`, without a promise). Throws at
   * once on invalid arguments, a full buffer (`BufferFullError`) or a closed
   * client; the message is then not part of the batch.
   */
  publish(dest: string, body: Uint8Array | string, options?: PublishOptions): void {
    if (this.#closed) throw new TypeError("publish after done(): start a new batch");
    this.#send(dest, body, options, this);
    this.#sent++;
  }

  /** Ends the batch; resolves once the broker answered each of its messages. Never rejects. */
  done(): Promise<BatchResult> {
    this.#closed = true;
    this.#check();
    return this.#done.promise;
  }

  /**
   * The broker accepted the next message (`arg`: `msg_id:<id>`, with
   * ` duplicate:true` for a dedup id seen before); called by the client.
   * Bound once per batch: a retried publish (`dedupId`) calls it from its own entry.
   */
  readonly resolve = (arg: string): void => {
    this.#lastArg = arg;
    this.#settled++;
    this.#check();
  };

  /** The next message failed; called by the client (bound, as `resolve`). */
  readonly reject = (error: Error): void => {
    this.#errors.push({ index: this.#settled, error });
    this.#settled++;
    this.#check();
  };

  #check(): void {
    if (!this.#closed || this.#settled < this.#sent) return;
    const arg = this.#lastArg;
    this.#done.resolve({
      sent: this.#sent,
      accepted: this.#sent - this.#errors.length,
      lastId: arg === undefined
        ? undefined
        : arg.startsWith("msg_id:")
        ? arg.slice(7).split(" ", 1)[0]
        : arg,
      errors: this.#errors,
    });
  }
}
