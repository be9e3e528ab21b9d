/**
 * Where a publish goes: straight into the link's outbound buffer while
 * connected, or into a bounded buffer of frames while reconnecting, sent
 * first thing after the subscriptions are renewed on the next link.
 *
 * @module
 */
import type { PublishOptions } from "./options.ts";
import { encodePub } from "./pub_frame.ts";
import { BufferFullError, ConnectionLostError } from "./errors.ts";
import { OUTBOUND_BYTES_MAX } from "./limits.ts";
import { type Link, NO_WAIT, type Pending } from "./link.ts";
import { OutBuf } from "./outbound.ts";

type Buffered = { bytes: Uint8Array; pending: Pending };

/** Where publishes go: the link that is up (null while reconnecting) and the broker's `max_payload`. */
export interface PublishTarget {
  readonly link: Link | null;
  readonly maxPayload: number;
}

/** The publish path of one client, and its reconnect buffer. */
export class Publisher {
  #target: PublishTarget;
  #buffered: Buffered[] = [];
  #bufferedBytes = 0;
  #bufferedMax: number;
  /** Encodes frames while reconnecting; each is copied out, so one buffer serves them all. */
  #scratch = new OutBuf();
  /** Prefix of the dedup ids made for `retryPublishes` (the client id), or undefined when off. */
  #autoDedup: string | undefined;
  #autoSeq = 0;

  /**
   * @param target the connection
   * @param bufferedMax publish bytes kept while reconnecting
   * @param autoDedup with a prefix, every publish without a dedup id gets `<prefix>.<n>` and is retried after a drop
   */
  constructor(target: PublishTarget, bufferedMax: number, autoDedup?: string) {
    this.#target = target;
    this.#bufferedMax = bufferedMax;
    this.#autoDedup = autoDedup;
  }

  /**
   * Validates and queues one `PUB`, with `pending` waiting for its reply, on
   * the link or (while reconnecting) in the reconnect buffer. Throws on
   * invalid arguments and `BufferFullError` when the buffer in use is full;
   * nothing is queued then. Positional arguments, not an options object:
   * this runs for every message.
   */
  publish(
    dest: string,
    body: Uint8Array,
    opts: PublishOptions | undefined,
    pending: Pending,
  ): void {
    const { link, maxPayload } = this.#target;
    if (opts?.dedupId !== undefined || this.#autoDedup !== undefined) {
      return this.#publishRetried(dest, body, opts, pending);
    }
    if (link !== null) {
      checkOutbound(link);
      // A fire-and-forget publish of a quiet run gets no reply, so no entry.
      let entry = true;
      if (pending === NO_WAIT) entry = !link.noWait();
      else link.loud();
      encodePub(link.wire.out, dest, body, opts, maxPayload);
      if (entry) link.pending.push(pending);
      link.wire.schedule();
      return;
    }
    encodePub(this.#scratch, dest, body, opts, maxPayload);
    const frame = this.#scratch.take();
    const copy = frame.slice();
    this.#scratch.release(frame);
    this.#buffer(dest, copy, pending);
  }

  /**
   * A publish with a dedup id: its frame is kept until the broker answers,
   * and a connection lost before that puts it back in the reconnect buffer,
   * to be sent again on the next link. The broker answers a copy that did
   * arrive as a duplicate (`OK msg_id:<first> duplicate:true`), so the
   * message is stored once either way. Costs a copy of the frame per publish.
   */
  #publishRetried(
    dest: string,
    body: Uint8Array,
    opts: PublishOptions | undefined,
    pending: Pending,
  ): void {
    const { link, maxPayload } = this.#target;
    if (opts?.dedupId === undefined) {
      opts = { ...opts, dedupId: `${this.#autoDedup}.${++this.#autoSeq}` };
    }
    encodePub(this.#scratch, dest, body, opts, maxPayload);
    const frame = this.#scratch.take();
    const bytes = frame.slice();
    this.#scratch.release(frame);
    const retried: Pending = {
      kind: pending.kind,
      resolve: pending.resolve,
      reject: (err) => {
        if (!(err instanceof ConnectionLostError)) return pending.reject?.(err);
        if (this.#bufferedBytes + bytes.length > this.#bufferedMax) return pending.reject?.(err);
        this.#buffered.push({ bytes, pending: retried });
        this.#bufferedBytes += bytes.length;
      },
    };
    if (link === null) return this.#buffer(dest, bytes, retried);
    checkOutbound(link);
    link.loud(); // its reply decides whether to send it again: never inside a quiet run
    link.wire.out.writeBytes(bytes);
    link.pending.push(retried);
    link.wire.schedule();
  }

  #buffer(dest: string, copy: Uint8Array, pending: Pending): void {
    if (this.#bufferedBytes + copy.length > this.#bufferedMax) {
      throw new BufferFullError(
        `Reconnect buffer is full (${this.#bufferedMax} bytes); publish to ${dest} rejected`,
      );
    }
    this.#buffered.push({ bytes: copy, pending });
    this.#bufferedBytes += copy.length;
  }

  /** Writes the buffered publishes to a new link, in order, and empties the buffer. */
  sendTo(link: Link): void {
    for (const b of this.#buffered) {
      link.wire.out.writeBytes(b.bytes);
      link.pending.push(b.pending);
    }
    this.#clear();
  }

  /** The client closed: every buffered publish fails with `err`. */
  failAll(err: Error): void {
    for (const b of this.#buffered) b.pending.reject?.(err);
    this.#clear();
  }

  #clear(): void {
    this.#buffered = [];
    this.#bufferedBytes = 0;
  }
}

/** Throws `BufferFullError` when the link's outbound buffer is over its bound (a publisher far ahead of the socket). */
function checkOutbound(link: Link): void {
  if (link.wire.out.length > OUTBOUND_BYTES_MAX) {
    throw new BufferFullError(
      `Outbound buffer holds over ${OUTBOUND_BYTES_MAX} bytes; wait for earlier publishes`,
    );
  }
}
