/**
 * The durable store: one log per queue under `<dir>/queues/<name>/`, written
 * with group commit. Every record appended during a tick goes out in one
 * write per queue at the end of the tick (a microtask); under
 * `fsync: "always"` one fdatasync per queue then covers every publish of
 * that tick and of the ticks that ran while the previous fsync was in flight,
 * and only then are their publishers confirmed. See docs/PERSISTENCE.md for
 * what each policy can lose.
 *
 * @module
 */
import { FSYNC_INTERVAL_MS, SEGMENT_BYTES_MAX, STORE_RETRY_MS } from "../../config/mod.ts";
import { type Clock, type FileSystem, systemClock, type Timer } from "../../runtime/mod.ts";
import type { QueueStore, Store, SyncStats } from "../store.ts";
import { LogQueueStore, type QueueLogHost } from "./queue_log.ts";
import { recoverLog } from "./recovery.ts";
import type { FsyncPolicy, LogFn } from "./types.ts";

/** How to open a log store. */
export interface LogStoreOptions {
  /** The data directory. */
  dir: string;
  /** File access: `nodeFileSystem` from src/runtime/mod.ts (tests wrap it to inject failures). */
  fs: FileSystem;
  fsync?: FsyncPolicy;
  /** Time between fdatasyncs under `interval` (default `FSYNC_INTERVAL_MS`). */
  fsyncIntervalMs?: number;
  /** Size past which a segment is sealed (default `SEGMENT_BYTES_MAX`). */
  segmentBytes?: number;
  /** Wait before a failed write is retried (default `STORE_RETRY_MS`). */
  retryMs?: number;
  log?: LogFn;
  /** Time and timers: the fsync interval, retries, segment headers, the restore (default `systemClock`). */
  clock?: Clock;
}

/** What `open` found on disk. */
export interface RecoveryStats {
  queues: number;
  messages: number;
  records: number;
  truncatedBytes: number;
  ms: number;
}

const SAFE_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Directory name of a queue: its name without `queue:`, or a hex form for anything unusual. */
function dirName(name: string): string {
  const bare = name.startsWith("queue:") ? name.slice(6) : "";
  if (SAFE_NAME.test(bare)) return bare;
  let hex = "%";
  for (const b of new TextEncoder().encode(name)) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** Queue name of a directory (the inverse of `dirName`). */
function queueName(dir: string): string | undefined {
  if (SAFE_NAME.test(dir)) return `queue:${dir}`;
  if (!/^%([0-9a-f]{2})+$/.test(dir)) return undefined;
  const bytes = new Uint8Array((dir.length - 1) / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(dir.slice(1 + 2 * i, 3 + 2 * i), 16);
  return new TextDecoder().decode(bytes);
}

/** Queues on disk; they survive a crash as the fsync policy says. */
export class LogStore implements Store, QueueLogHost {
  readonly kind = "log" as const;
  readonly dir: string;
  readonly fs: FileSystem;
  readonly policy: FsyncPolicy;
  readonly segmentBytes: number;
  readonly log: LogFn;
  readonly clock: Clock;
  readonly recovery: RecoveryStats;
  readonly syncs: SyncStats = { count: 0, totalMs: 0, lastMs: 0 };
  #retryMs: number;
  #queues = new Map<string, LogQueueStore>();
  /** Dropped while a sync ran; deleted after it (a descriptor is never closed under a sync). */
  #retiring = new Map<string, LogQueueStore>();
  #dirty = new Set<LogQueueStore>();
  #written = new Set<LogQueueStore>();
  #failed = new Set<LogQueueStore>();
  /** `synced()`'s promise over several dirty queues, and how many it covers (reset by each write). */
  #tickSynced: Promise<void> | undefined;
  #tickSyncedQueues = 0;
  #scheduled = false;
  #syncing: Promise<void> | undefined;
  #timer: Timer | undefined;
  #retryTimer: Timer | undefined;
  #lastId = 0;
  #closed: Promise<void> | undefined;
  #unlock: () => void;

  /** Opens the store in `options.dir`, recovering every queue found there. */
  static open(options: LogStoreOptions): LogStore {
    return new LogStore(options);
  }

  private constructor(o: LogStoreOptions) {
    this.clock = o.clock ?? systemClock;
    const started = this.clock.now();
    this.dir = o.dir;
    this.fs = o.fs;
    this.policy = o.fsync ?? "interval";
    this.segmentBytes = o.segmentBytes ?? SEGMENT_BYTES_MAX;
    this.log = o.log ?? (() => {});
    this.#retryMs = o.retryMs ?? STORE_RETRY_MS;
    this.fs.mkdirp(`${this.dir}/queues`);
    // Two brokers appending to the same logs would corrupt them.
    this.#unlock = this.fs.lock(`${this.dir}/LOCK`);
    const stats: RecoveryStats = { queues: 0, messages: 0, records: 0, truncatedBytes: 0, ms: 0 };
    for (const entry of this.fs.readDir(`${this.dir}/queues`).sort()) {
      const name = queueName(entry);
      const path = `${this.dir}/queues/${entry}`;
      if (name === undefined || !this.fs.isDir(path)) continue;
      const r = recoverLog(this.fs, path, name, this.log);
      if (r.maxId > this.#lastId) this.#lastId = r.maxId;
      stats.records += r.records;
      stats.truncatedBytes += r.truncatedBytes;
      const q = new LogQueueStore(name, path, this, r);
      if (q.size === 0) {
        q.retire();
        continue;
      }
      stats.queues++;
      stats.messages += q.size;
      this.#queues.set(name, q);
    }
    stats.ms = Math.round(this.clock.now() - started);
    this.recovery = stats;
    if (this.policy === "interval") {
      this.#timer = this.clock.every(
        o.fsyncIntervalMs ?? FSYNC_INTERVAL_MS,
        () => this.#startSync(),
      );
    }
  }

  openQueue(name: string): QueueStore {
    let q = this.#queues.get(name);
    if (q !== undefined) return q;
    q = this.#retiring.get(name);
    if (q !== undefined) {
      this.#retiring.delete(name); // opened again before its files went: keep them
    } else {
      const path = `${this.dir}/queues/${dirName(name)}`;
      let r;
      try {
        // Files left by a queue whose deletion failed are recovered, not overwritten.
        r = recoverLog(this.fs, path, name, this.log);
      } catch (e) {
        this.log("error", `cannot read ${path}: ${e instanceof Error ? e.message : e}`);
      }
      if (r !== undefined && r.maxId > this.#lastId) this.#lastId = r.maxId;
      q = new LogQueueStore(name, path, this, r);
    }
    this.#queues.set(name, q);
    return q;
  }

  dropQueue(name: string): void {
    const q = this.#queues.get(name);
    if (q === undefined || q.size > 0) return;
    this.#queues.delete(name);
    this.#dirty.delete(q);
    this.#written.delete(q);
    if (this.#syncing !== undefined) this.#retiring.set(name, q);
    else this.#retire(q);
  }

  queueNames(): string[] {
    const names: string[] = [];
    for (const [name, q] of this.#queues) if (q.size > 0) names.push(name);
    return names;
  }

  lastId(): number {
    let max = this.#lastId;
    for (const q of this.#queues.values()) if (q.maxId > max) max = q.maxId;
    return max;
  }

  /** Bytes of all segment files. */
  diskBytes(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.diskBytes;
    return n;
  }

  close(): Promise<void> {
    return this.#closed ??= (async () => {
      this.#timer?.cancel();
      this.#retryTimer?.cancel();
      await this.#syncing;
      for (const q of this.#retiring.values()) this.#retire(q);
      this.#retiring.clear();
      for (const q of this.#queues.values()) q.close();
      this.#dirty.clear();
      this.#unlock();
    })();
  }

  // --- QueueLogHost ---

  floorId(): number {
    return this.lastId();
  }

  dirty(q: LogQueueStore): void {
    this.#dirty.add(q);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  writeDirty(): void {
    for (const q of this.#dirty) if (q.write()) this.#written.add(q);
    this.#dirty.clear();
    this.#tickSynced = undefined;
  }

  /** Part of Store: called before every socket write (see `Store.writePending`). */
  writePending(): void {
    if (this.#dirty.size > 0 && this.#closed === undefined) this.writeDirty();
  }

  /** Part of Store (see `Store.synced`): the dirty queues' batches, which the tick's fsyncs settle. */
  get waitsForSync(): boolean {
    return this.policy === "always";
  }

  synced(): void | Promise<void> {
    const dirty = this.#dirty;
    if (this.policy !== "always" || dirty.size === 0 || this.#closed !== undefined) return;
    if (dirty.size === 1) { for (const q of dirty) return q.synced(); }
    // The dirty set only grows until the next write: the same size is the same queues.
    if (this.#tickSynced === undefined || this.#tickSyncedQueues !== dirty.size) {
      const all: Promise<void>[] = [];
      for (const q of dirty) all.push(q.synced());
      const p = this.#tickSynced = Promise.all(all).then(() => {});
      p.catch(() => {}); // a caller may drop it
      this.#tickSyncedQueues = dirty.size;
    }
    return this.#tickSynced;
  }

  failed(q: LogQueueStore): void {
    this.#failed.add(q);
    if (this.#retryTimer !== undefined || this.#closed !== undefined) return;
    this.#retryTimer = this.clock.after(this.#retryMs, this.#retry);
  }

  // --- group commit ---

  /** End of tick: one write per dirty queue, upkeep when no sync runs, then the fsync if `always`. */
  #flush = (): void => {
    this.#scheduled = false;
    if (this.#closed !== undefined) return;
    this.writeDirty();
    if (this.#syncing !== undefined) return;
    const now = this.clock.now();
    for (const q of this.#written) if (this.#queues.get(q.name) === q) q.maintain(now);
    for (const q of this.#retiring.values()) this.#retire(q);
    this.#retiring.clear();
    if (this.policy === "always") this.#startSync();
    else if (this.policy === "never") this.#written.clear();
  };

  /** Forces every written queue to disk at once; when done, confirms and goes again if more came. */
  #startSync(): void {
    if (this.#syncing !== undefined || this.#closed !== undefined) return;
    const work: Promise<void>[] = [];
    for (const q of this.#written) {
      const p = q.sync();
      if (p !== undefined) work.push(p);
    }
    this.#written.clear();
    if (work.length === 0) return;
    // performance.now(), not the clock: a sync takes well under a millisecond on a fast device.
    const started = performance.now();
    this.#syncing = Promise.all(work).then(() => {
      const s = this.syncs;
      s.lastMs = performance.now() - started;
      s.totalMs += s.lastMs;
      s.count++;
      this.#syncing = undefined;
      if (this.#closed === undefined) this.#flush();
    });
  }

  #retire(q: LogQueueStore): void {
    if (!q.retire()) this.log("warn", `the log of ${q.name} could not be deleted; kept`);
  }

  #retry = (): void => {
    this.#retryTimer = undefined;
    for (const q of this.#failed) {
      if (q.retry()) {
        this.#failed.delete(q);
        this.#written.add(q);
      }
    }
    if (this.#failed.size > 0 && this.#closed === undefined) {
      this.#retryTimer = this.clock.after(this.#retryMs, this.#retry);
    }
    if (this.policy === "always") this.#startSync();
  };
}
