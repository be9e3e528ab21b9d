/**
 * The deduplication window of one destination (`PUB ... dedup_id:<id>`): the
 * ids seen in the last `windowMs`, each with the message id it was answered
 * with. A `Map` keeps insertion order, which is age order (the message id
 * holds its accept time), so expiry and eviction both take from the front:
 * O(1) per id, no timer and no scan. Bounded in count and in bytes of ids
 * (`DEDUP_ENTRIES_MAX`, `DEDUP_BYTES_MAX`): past either the oldest id is
 * forgotten first, and counted.
 *
 * @module
 */
import {
  DEDUP_BYTES_MAX,
  DEDUP_ENTRIES_MAX,
  DEDUP_TOPICS_MAX,
  DEDUP_WINDOW_MS,
} from "../config/mod.ts";
import { ID_SEQ_PER_MS } from "../storage/mod.ts";
import type { Queue } from "./queue.ts";

/** Dedup ids of one destination within its window. */
export class DedupWindow {
  windowMs: number;
  /** Ids forgotten before their window ended, to stay within the limits. */
  evicted = 0;
  #ids = new Map<string, number>();
  #bytes = 0;

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.#ids.size;
  }

  /** The message id first published with `dedupId`, if that was within the window at `now`. */
  seen(dedupId: string, now: number): number | undefined {
    const id = this.#ids.get(dedupId);
    if (id === undefined) return undefined;
    if (acceptedAt(id) + this.windowMs > now) return id;
    this.sweep(now);
    return undefined;
  }

  /** Whether `dedupId` is remembered (within its window or not yet swept). */
  has(dedupId: string): boolean {
    return this.#ids.has(dedupId);
  }

  /** Remembers `dedupId` for message `id` (the newest message: ids only grow). */
  add(dedupId: string, id: number): void {
    const ids = this.#ids;
    ids.set(dedupId, id);
    this.#bytes += dedupId.length;
    while (ids.size > DEDUP_ENTRIES_MAX || this.#bytes > DEDUP_BYTES_MAX) {
      this.#dropFirst();
      this.evicted++;
    }
  }

  /** Forgets the ids whose window ended by `now`. */
  sweep(now: number): void {
    for (const id of this.#ids.values()) {
      if (acceptedAt(id) + this.windowMs > now) return;
      this.#dropFirst();
    }
  }

  #dropFirst(): void {
    const first = this.#ids.keys().next();
    if (first.done) return;
    this.#ids.delete(first.value);
    this.#bytes -= first.value.length;
  }
}

/** Epoch ms a message id was taken in (ids are `ms * ID_SEQ_PER_MS + seq`). */
function acceptedAt(id: number): number {
  return Math.floor(id / ID_SEQ_PER_MS);
}

/**
 * Deduplication for one broker: the topics' windows (a queue keeps its own,
 * `Queue.dedup`), the answer to a duplicate, and the first publishes whose
 * store is still pending (`--fsync always`), by message id: a duplicate is
 * answered when the first is, so its `OK` never comes before the message is
 * on disk. That map holds a tick or two of publishes; each leaves when its
 * store settles.
 */
export class Deduplicator {
  /** Whether the last publish was a duplicate (reset by the broker before each). */
  duplicate = false;
  /** Publishes answered as duplicates. */
  duplicates = 0;
  #topics = new Map<string, DedupWindow>();
  #pending = new Map<number, Promise<number>>();

  /** The answer to publishing `key` to queue `q` at `now` if it is a duplicate, else undefined. */
  ofQueue(q: Queue, key: string, now: number): number | Promise<number> | undefined {
    if (q.settings.dedupWindowMs === 0) return undefined;
    const first = q.dedup?.seen(key, now);
    if (first === undefined) return undefined;
    q.counters.duplicates++;
    return this.#answer(first);
  }

  /** The answer to publishing `key` to topic `dest` at `now` if it is a duplicate, else undefined. */
  ofTopic(dest: string, key: string, now: number): number | Promise<number> | undefined {
    const first = this.#topics.get(dest)?.seen(key, now);
    return first === undefined ? undefined : this.#answer(first);
  }

  /** Remembers `key` of queue `q` for message `id`, whose publish answers `r`. */
  rememberQueue(q: Queue, key: string, id: number, r: number | Promise<number>): void {
    const windowMs = q.settings.dedupWindowMs;
    if (windowMs === 0) return;
    (q.dedup ??= new DedupWindow(windowMs)).add(key, id);
    if (typeof r !== "number") this.#pendingFirst(id, r);
  }

  /** Remembers `key` of topic `dest` for message `id`, whose publish answers `r`. */
  rememberTopic(dest: string, key: string, id: number, r: number | Promise<number>): void {
    let w = this.#topics.get(dest);
    if (w === undefined) {
      if (this.#topics.size >= DEDUP_TOPICS_MAX) return; // no window: published, not deduplicated
      this.#topics.set(dest, w = new DedupWindow(DEDUP_WINDOW_MS));
    }
    w.add(key, id);
    if (typeof r !== "number") this.#pendingFirst(id, r);
  }

  /**
   * Rebuilds a recovered queue's window from the ids its log holds (in a
   * cluster, also its copy's, when the node starts to lead it); ids it has are kept.
   */
  restoreQueue(q: Queue, now: number): void {
    const ids = q.store.recoveredDedupIds();
    if (ids.length === 0 || q.settings.dedupWindowMs === 0) return;
    const w = q.dedup ??= new DedupWindow(q.settings.dedupWindowMs);
    for (const x of [...ids].sort((a, b) => a.id - b.id)) {
      if (!w.has(x.dedupId)) w.add(x.dedupId, x.id);
    }
    w.sweep(now);
  }

  /** Forgets the topics' ids whose window ended, and the emptied windows. */
  sweep(now: number): void {
    for (const [name, w] of this.#topics) {
      w.sweep(now);
      if (w.size === 0) this.#topics.delete(name);
    }
  }

  /** The first message's id, flagged; a promise of it while the first is not yet stored. */
  #answer(first: number): number | Promise<number> {
    this.duplicates++;
    this.duplicate = true;
    return this.#pending.get(first) ?? first;
  }

  #pendingFirst(id: number, r: Promise<number>): void {
    this.#pending.set(id, r);
    const settled = () => this.#pending.delete(id);
    r.then(settled, settled);
  }
}
