/**
 * The bulk publish path behind `Broker.publishRun`: a run of plain PUBs to
 * one destination (the parser's `PubRun`) taken as one. Kept apart from
 * broker.ts because it is a path of its own, with its own preconditions and
 * scratch, that a single publish never enters. The per-message loop stays
 * here, one direct call per message as before: what the broker needs back
 * (a pinned chunk, a blocked topic) is kept in fields it reads once per run.
 *
 * @module
 */
import { assert } from "../assert.ts";
import type { BrokerCounters } from "./broker.ts";
import type { Deduplicator } from "./dedup.ts";
import type { IdGenerator } from "./ids.ts";
import { published } from "./messages.ts";
import type { Queue } from "./queue.ts";
import type { QueueSet } from "./queue_set.ts";
import type { Routes } from "./routes.ts";
import type { Topic } from "./topic.ts";
import type { TopicSet } from "./topic_set.ts";
import type { BrokerOptions, SharedQueueDeclarations, TopicInterest } from "./types.ts";
import { MsgRun } from "../protocol/mod.ts";
import { copyRange } from "../runtime/mod.ts";
import { type Message, MessageState } from "../storage/mod.ts";

/** What a run reads of the broker, and its `durable` it clears as a publish does. */
export interface RunHost {
  readonly now: number;
  readonly counters: BrokerCounters;
  readonly options: BrokerOptions;
  readonly interest: TopicInterest | undefined;
  readonly sharedDeclarations: SharedQueueDeclarations | undefined;
  durable: Promise<void> | undefined;
}

/** The broker's parts a run works on. */
export interface RunParts {
  host: RunHost;
  ids: IdGenerator;
  qs: QueueSet;
  ts: TopicSet;
  routes: Routes;
  dedup: Deduplicator;
}

/** Publishes runs of plain messages; the broker owns one. */
export class RunPublisher {
  /** A message of the last run still points into its buffer (the broker's `takePinned`). */
  pinned = false;
  /** A topic the last run found blocked by a stalled subscriber (the broker's `takeBlocked`). */
  blockedBy: Topic | undefined = undefined;
  readonly #host: RunHost;
  readonly #counters: BrokerCounters;
  readonly #ids: IdGenerator;
  readonly #qs: QueueSet;
  readonly #ts: TopicSet;
  readonly #routes: Routes;
  readonly #dedup: Deduplicator;
  /**
   * Scratch of `#queueRun`: the run's messages, between storing and dispatching them. Filled by
   * index and emptied slot by slot, never by `length = 0`: V8 gives an array's storage back on
   * that and grew it again for every run (`GrowFastSmiOrObjectElements`, ~0.7% of the Deno
   * broker under the queue bench). It keeps the length of the longest run, which one read chunk
   * bounds (a PUB takes at least 10 bytes of it).
   */
  #msgs: (Message | undefined)[] = [];
  /** Scratch of `#fanOut`: a topic run's MSG frames, encoded once for all its subscribers. */
  #run = new MsgRun(copyRange);

  constructor(parts: RunParts) {
    this.#host = parts.host;
    this.#counters = parts.host.counters;
    this.#ids = parts.ids;
    this.#qs = parts.qs;
    this.#ts = parts.ts;
    this.#routes = parts.routes;
    this.#dedup = parts.dedup;
  }

  /** `Broker.publishRun`: false when nothing was done (publish one by one). */
  publish(dest: string, buf: Uint8Array, offs: Int32Array, from: number, to: number): boolean {
    const host = this.#host;
    if (host.interest !== undefined) return false;
    if (dest.charCodeAt(0) !== 0x74 /* t */) return this.#queueRun(dest, buf, offs, from, to);
    if (this.#routes.size !== 0) return false;
    let topic: Topic | undefined;
    try {
      topic = this.#ts.forPublish(dest);
    } catch {
      return false; // no room for the topic a wildcard wanted: each publish gets its refusal
    }
    if (topic?.store !== undefined) return false;
    this.#dedup.duplicate = false;
    host.durable = undefined;
    const c = this.#counters;
    const now = host.now;
    if (topic === undefined) {
      let bytes = 0;
      for (let k = from; k < to; k++) bytes += offs[2 * k + 1];
      c.published += to - from;
      c.publishedBytes += bytes;
      c.unrouted += to - from;
      this.#ids.take(to - from, now);
      return true;
    }
    let k = topic.bindings.length === 0 ? from : this.#fanOut(topic, buf, offs, from, to, now);
    for (; k < to; k++) this.#publishTo(topic, dest, buf, offs[2 * k], offs[2 * k + 1], now);
    return true;
  }

  /**
   * Publishes the run, or its first part, through `Topic.publishRun` (no
   * `Message` made, the frames encoded once); returns where the rest starts,
   * to be published one by one.
   */
  #fanOut(
    topic: Topic,
    buf: Uint8Array,
    offs: Int32Array,
    from: number,
    to: number,
    now: number,
  ): number {
    const run = this.#run;
    const ids = this.#ids;
    const c = this.#counters;
    let k = from;
    while (k < to) {
      run.source(buf, offs, k, to);
      // The ids `take` gives: `floor` is the next, and the rest follow one apart.
      const first = ids.floor(now);
      const n = topic.publishRun(run, first);
      if (n === 0) break;
      if (topic.blocked) this.blockedBy = topic; // a laggard's lag, as `#publishTo` finds it
      const last = ids.take(n, now);
      assert(last === first + n - 1, () => `ids ${first}..${last} for ${n} messages`);
      c.published += n;
      c.publishedBytes += run.payloadBytes;
      k += n;
    }
    run.release();
    return k;
  }

  /** A run to a queue, when all of it fits: each message as `Broker.#publishQueue` takes it. */
  #queueRun(dest: string, buf: Uint8Array, offs: Int32Array, from: number, to: number): boolean {
    const host = this.#host;
    // A store that may wait (a durable log, a replicated copy) answers each publish on its own.
    if (host.options.store.syncs !== undefined || host.sharedDeclarations !== undefined) {
      return false;
    }
    let q: Queue;
    try {
      q = this.#qs.open(dest);
    } catch {
      return false; // no room for another queue: each publish gets its refusal
    }
    let bytes = 0;
    for (let k = from; k < to; k++) bytes += offs[2 * k + 1];
    const o = q.settings;
    const s = q.store;
    if (s.size + (to - from) > o.messagesMax || s.bytes + bytes > o.bytesMax) return false;
    this.#dedup.duplicate = false;
    host.durable = undefined;
    // All stored, then one dispatch: the consumers get them in the same order and turns as
    // with a dispatch per publish. What waits for a consumer is then retained (copied out of
    // `buf`), what is in flight pins `buf`, as `#publishQueue` decides for each.
    const now = host.now;
    const ttlMs = o.ttlMs;
    const msgs = this.#msgs;
    // The run's ids, taken at once: `floor` is the first, and the rest follow one apart (an id
    // per message from `next` was 2.2% of the broker under the queue bench).
    const first = this.#ids.floor(now);
    const last = this.#ids.take(to - from, now);
    assert(last === first + (to - from) - 1, () => `ids ${first}..${last} for ${to - from}`);
    let m = 0;
    for (let k = from; k < to; k++) {
      const msg = published(
        first + (k - from),
        dest,
        buf,
        offs[2 * k],
        offs[2 * k + 1],
        undefined,
        now,
        ttlMs,
      );
      void s.push(msg);
      msgs[m++] = msg;
    }
    const n = to - from;
    this.#counters.published += n;
    this.#counters.publishedBytes += bytes;
    q.counters.published += n;
    q.dispatch();
    for (let i = 0; i < m; i++) {
      const msg = msgs[i]!;
      msgs[i] = undefined;
      if (msg.state === MessageState.READY) msg.retain();
      else if (msg.buf === buf) this.pinned = true;
    }
    return true;
  }

  /**
   * A plain publish (no options) to `topic`, which has no store, with no
   * bindings anywhere: `Broker.#publishTopic`'s path for it.
   */
  #publishTo(
    topic: Topic,
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
  ): void {
    const c = this.#counters;
    const msg = published(this.#ids.next(now), dest, buf, off, len, undefined, now);
    c.published++;
    c.publishedBytes += len;
    if (topic.bindings.length === 0 && topic.retention === undefined) c.unrouted++;
    else {
      topic.publish(msg);
      if (topic.blocked) this.blockedBy = topic;
    }
    if (msg.buf === buf && keepsAsIs(topic)) this.pinned = true;
  }
}

/** Whether a message `topic` just published may still point into its read chunk. */
export function keepsAsIs(topic: Topic): boolean {
  if (topic.store !== undefined) return true;
  const bs = topic.bindings;
  for (let i = 0; i < bs.length; i++) if (bs[i].sub.explicit) return true;
  return false;
}
