/**
 * `QueueSet`: the queue side of the broker. The live queues by name, their
 * declarations, their capacity policy, dead-lettering, the queue part of the
 * periodic sweep and the operators' actions on queues (purge, peek, replay,
 * delete). The broker owns one and keeps the publish and subscribe paths,
 * which touch topics and queues alike.
 *
 * @module
 */
import { PEEK_MESSAGES_MAX, REPLAY_MESSAGES_MAX } from "../config/mod.ts";
import type { QueueDeclareOptions } from "../protocol/mod.ts";
import type { Message } from "../storage/mod.ts";
import { AdminError, peeked, type PeekedMessage, queueName } from "./admin.ts";
import { copyOf } from "./messages.ts";
import { Queue, type QueueHost } from "./queue.ts";
import { DeclaredQueues, type QueueDeclaration, resolveSettings } from "./queue_settings.ts";
import { byName, type Page, page, type PageOptions, type QueueStats } from "./stats.ts";
import { BrokerError, type BrokerOptions, storeFailed } from "./types.ts";

/** What a `QueueSet` needs of its broker. */
export interface QueueSetHost {
  /** The tick's time (epoch ms). */
  readonly now: number;
  readonly options: BrokerOptions;
  readonly counters: { rejected: number };
  /** A fresh message id. */
  nextId(): number;
  /** Throws `LIMIT` when the broker holds as many destinations as it may. */
  checkRoom(): void;
  /** The first id the tick accepted (see `QueueHost.freshFrom`). */
  readonly freshFrom: number;
  /** Records the publish-to-first-delivery latency of `n` messages that waited as long as `msg`. */
  observeDelivery(msg: Message, n: number): void;
  /** A queue was made (its dedup window rebuilt from what its store holds). */
  queueOpened(q: Queue): void;
}

/** The live queues of one broker. */
export class QueueSet implements QueueHost {
  readonly #host: QueueSetHost;
  readonly #queues = new Map<string, Queue>();
  readonly #declared = new DeclaredQueues();

  constructor(host: QueueSetHost) {
    this.#host = host;
  }

  /** Part of QueueHost: the tick's time. */
  get now(): number {
    return this.#host.now;
  }

  /** Live queues by name. */
  get map(): ReadonlyMap<string, Queue> {
    return this.#queues;
  }

  /** Declared queues, in all. */
  get declaredCount(): number {
    return this.#declared.size;
  }

  /** The queue of that name, created (with its declaration's settings) if new. */
  open(name: string): Queue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      this.#host.checkRoom();
      const o = this.#host.options;
      q = new Queue(
        o.store.openQueue(name),
        this,
        resolveSettings(name, this.#declared.get(name), o),
      );
      this.#queues.set(name, q);
      this.#host.queueOpened(q);
    }
    return q;
  }

  /** Applies its declaration (if any) to a queue. */
  settle(q: Queue): void {
    q.settings = resolveSettings(q.name, this.#declared.get(q.name), this.#host.options);
    if (q.dedup !== undefined) q.dedup.windowMs = q.settings.dedupWindowMs;
  }

  /**
   * Declares queue `name` with settings over the server's defaults; the same
   * settings again are fine, others throw `DECLARE_CONFLICT`.
   */
  declare(name: string, d: QueueDeclareOptions): void {
    this.#declared.declare(name, d);
    this.settle(this.open(name));
  }

  /** Whether declaring `name` with `d` would be new; throws `DECLARE_CONFLICT` or `LIMIT`. */
  check(name: string, d: QueueDeclareOptions): boolean {
    return this.#declared.check(name, d);
  }

  /**
   * (cluster) The cluster's declaration of `name`: set over any held here, and
   * applied to the queue if this node has it (a queue is not opened for it).
   */
  adoptDeclaration(name: string, d: QueueDeclareOptions): void {
    if (!this.#declared.set(name, d)) return;
    const q = this.#queues.get(name);
    if (q !== undefined) this.settle(q);
  }

  /** Restores the declarations of the state record. */
  restoreDeclarations(record: QueueDeclaration[] | undefined): void {
    this.#declared.restore(record);
  }

  /** The declarations, for the state record. */
  declarations(): QueueDeclaration[] {
    return this.#declared.record();
  }

  /** Applies the capacity policy before a message of `bytes` enters `q`: drops the oldest, or throws `QUEUE_FULL`. */
  makeRoom(q: Queue, bytes: number): void {
    const o = q.settings;
    const s = q.store;
    while (s.size + 1 > o.messagesMax || s.bytes + bytes > o.bytesMax) {
      if (o.overflow === "reject" || s.dropOldest() === undefined) {
        q.counters.rejected++;
        this.#host.counters.rejected++;
        throw new BrokerError(
          "QUEUE_FULL",
          `${q.name} is full (${s.size} messages, ${s.bytes} bytes)`,
        );
      }
    }
  }

  /** Part of QueueHost: moves a message to its dead-letter queue (`dlq:none`: drops it); false when that queue is full. */
  deadLetter(queue: Queue, msg: Message): boolean {
    const to = queue.settings.dlq;
    if (to === null) return true;
    let dlq: Queue;
    try {
      dlq = this.open(to);
      this.makeRoom(dlq, msg.len);
    } catch {
      return false;
    }
    const copy = copyOf(msg, this.#host.nextId(), dlq.name, this.now);
    try {
      void dlq.store.push(copy);
    } catch {
      return false;
    }
    dlq.counters.published++;
    dlq.dispatch();
    return true;
  }

  /** Part of QueueHost. */
  get freshFrom(): number {
    return this.#host.freshFrom;
  }

  /** Part of QueueHost. */
  observeDelivery(msg: Message, n: number): void {
    this.#host.observeDelivery(msg, n);
  }

  /** The queue part of the periodic sweep: expiry, delays, ack timeouts, idle queues forgotten. */
  sweep(now: number): void {
    for (const q of this.#queues.values()) {
      if (q.store.nextDueAt() <= now) {
        q.store.sweep(now);
        q.dispatch();
      }
      for (const c of q.consumers) if (c.inflight.size > 0) c.expireAcks(now);
      q.dedup?.sweep(now);
      // A declared queue stays (its stats show it), and one whose dedup window holds ids.
      if (
        q.consumers.length === 0 && q.store.size === 0 && q.settings.declared === undefined &&
        (q.dedup === undefined || q.dedup.size === 0)
      ) {
        this.#queues.delete(q.name);
        this.#host.options.store.dropQueue(q.name);
      }
    }
  }

  // --- admin actions (src/broker/admin.ts; the HTTP API and the CLI call these) ---

  /**
   * Removes every ready and delayed message of a queue; messages in flight
   * stay with their consumers, to be acked (or, when given back, delivered
   * again: they were taken before the purge). Returns how many were removed.
   */
  purge(name: string): number {
    const q = this.#existing(name);
    const n = q.store.purge();
    q.counters.purged += n;
    return n;
  }

  /**
   * The first `n` messages a consumer would get next (priority, then FIFO),
   * without taking them: nothing is delivered, counted or reordered.
   */
  peek(name: string, n: number): PeekedMessage[] {
    if (!Number.isSafeInteger(n) || n < 1 || n > PEEK_MESSAGES_MAX) {
      throw new AdminError("BAD_REQUEST", `n must be an integer from 1 to ${PEEK_MESSAGES_MAX}`);
    }
    const q = this.#existing(name);
    const out: PeekedMessage[] = [];
    for (const m of q.store.messages()) {
      if (m.expired(this.now)) continue; // never delivered again; the sweep takes it
      out.push(peeked(m));
      if (out.length === n) break;
    }
    return out;
  }

  /**
   * Moves the ready messages of a queue's dead-letter queue back to the
   * queue (`name` may be either), oldest first, each as a new message of the
   * queue with a fresh delivery count. Stops at the queue's capacity or after
   * `max`; returns how many moved and how many ready ones are left in the DLQ.
   */
  replayDeadLetters(name: string, max = REPLAY_MESSAGES_MAX): { moved: number; left: number } {
    const { target, source } = this.#deadLetterRoute(queueName(name));
    const dlq = this.#queues.get(source);
    if (dlq === undefined) throw new AdminError("NOT_FOUND", `${target} has no dead letters`);
    const q = this.open(target);
    const take: Message[] = [];
    for (const m of dlq.store.messages()) {
      if (take.length >= Math.min(max, REPLAY_MESSAGES_MAX)) break;
      if (!m.expired(this.now)) take.push(m);
    }
    // Ready order is priority first; a replay keeps the order they died in.
    take.sort((a, b) => a.id - b.id);
    let moved = 0;
    for (const m of take) {
      // The queue's own limits, whatever its overflow policy: a replay never drops live messages.
      const st = q.settings;
      if (q.store.size + 1 > st.messagesMax || q.store.bytes + m.len > st.bytesMax) break;
      const copy = copyOf(m, this.#host.nextId(), target, this.now);
      try {
        // The copy's PUB is appended before the DLQ's REMOVE, and written first (see
        // LogQueueStore.#removed): a crash in between duplicates a message, never loses one.
        void q.store.push(copy);
      } catch (e) {
        if (moved === 0) throw storeFailed(e);
        break;
      }
      dlq.store.remove(m, "replayed");
      q.counters.published++;
      moved++;
    }
    q.dispatch();
    return { moved, left: dlq.store.ready };
  }

  /**
   * Which queue `name` is in a replay: a queue with a dead-letter queue
   * (its `dlq` setting), or the dead-letter queue of one, or `<q>.dlq`.
   */
  #deadLetterRoute(name: string): { target: string; source: string } {
    const dlq = this.#queues.get(name)?.settings.dlq;
    if (dlq != null && this.#queues.has(dlq)) return { target: name, source: dlq };
    for (const q of this.#queues.values()) {
      if (q.settings.dlq === name) return { target: q.name, source: name };
    }
    if (name.endsWith(".dlq")) return { target: name.slice(0, -4), source: name };
    return { target: name, source: dlq ?? `${name}.dlq` };
  }

  /** Deletes a queue that holds no message and has no consumer (else `CONFLICT`). */
  delete(name: string): void {
    const q = this.#existing(name);
    if (q.consumers.length > 0) {
      throw new AdminError("CONFLICT", `${q.name} has ${q.consumers.length} consumers`);
    }
    if (q.store.size > 0) {
      throw new AdminError("CONFLICT", `${q.name} holds ${q.store.size} messages; purge it first`);
    }
    this.#queues.delete(q.name);
    this.#host.options.store.dropQueue(q.name);
  }

  /** Queues by name, a page of them. */
  stats(o: PageOptions): Page<QueueStats> {
    return page(byName(this.#queues), o, (q) => q.stats());
  }

  #existing(name: string): Queue {
    const q = this.#queues.get(queueName(name));
    if (q === undefined) throw new AdminError("NOT_FOUND", `no queue ${queueName(name)}`);
    return q;
  }
}
