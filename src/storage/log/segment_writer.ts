/**
 * The writing half of one queue's log: the records appended since the last
 * write, the active segment file they go to, the publish confirmations that
 * wait on a write and the fsync after it (group commit), and what happens
 * when a write or an fsync fails (the records stay in memory, a part-written
 * tail is cut back, and `retry()` tries again). `LogQueueStore` decides what
 * to append and when to seal or compact; this gets it onto the disk.
 *
 * @module
 */
import type { Clock, FileSystem } from "../../runtime/mod.ts";
import { StoreError } from "../store.ts";
import { encodeSegmentHeader, RecordWriter, segmentFileName } from "./format.ts";
import { Segment, type Segments } from "./segments.ts";
import type { FsyncPolicy, LogFn } from "./types.ts";

/** Publish confirmations waiting on one write and the fsync after it. */
class Batch {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (e: StoreError) => void;
  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A caller may drop the promise (the broker's dead-letter path does):
    // a failure must then not become an unhandled rejection that ends the process.
    this.promise.catch(() => {});
  }
}

/** What a segment writer works with. */
export interface SegmentWriterOptions {
  /** The queue's name (segment headers, log lines). */
  name: string;
  /** Directory of the queue's segments. */
  dir: string;
  fs: FileSystem;
  policy: FsyncPolicy;
  log: LogFn;
  clock: Clock;
  /** The queue's segments: new ones are added, sizes kept. */
  segments: Segments;
  /** Highest message id the store knows (written into new segment headers). */
  floorId: () => number;
  /** A write or sync failed: `retry()` is to be called later. */
  failed: () => void;
}

/** Appends one queue's records to its active segment and forces them to disk. */
export class SegmentWriter {
  /** Records appended since the last write. */
  readonly out = new RecordWriter();
  #o: SegmentWriterOptions;
  #fs: FileSystem;
  #active: Segment | undefined;
  #batch: Batch | undefined;
  #unsynced: Batch[] = [];
  #needsSync = false;
  #failure: StoreError | undefined;
  #syncFailed = false;
  /** When >= 0, a write failed part-way: the active file is cut back to this before the next one. */
  #goodSize = -1;

  constructor(options: SegmentWriterOptions) {
    this.#o = options;
    this.#fs = options.fs;
  }

  /** The segment appended to, while one is open: the last of the queue's segments. */
  get active(): Segment | undefined {
    return this.#active;
  }

  /** Why writes fail now, or undefined. */
  get failure(): StoreError | undefined {
    return this.#failure;
  }

  /** Whether written bytes wait for an fsync. */
  get needsSync(): boolean {
    return this.#needsSync;
  }

  /** Whether records or confirmations wait for a write. */
  get pending(): boolean {
    return this.out.length > 0 || this.#batch !== undefined;
  }

  /** The promise of the publishes appended in this tick: settles after their write and fsync. */
  confirmation(): Promise<void> {
    return (this.#batch ??= new Batch()).promise;
  }

  /** The active segment, a new one when none is open; throws `StoreError` when it cannot be created. */
  activeSegment(): Segment {
    return this.#active ?? this.#open();
  }

  /** Writes the appended records; false (after `fail`) when the write failed. */
  write(): boolean {
    const fs = this.#fs;
    let seg: Segment;
    try {
      seg = this.#active ?? this.#open();
      if (this.#goodSize >= 0) {
        fs.truncate(seg.fd!, this.#goodSize);
        this.#o.segments.resize(seg, this.#goodSize);
        this.#goodSize = -1;
      }
    } catch (e) {
      this.fail(e, "write");
      return false;
    }
    const bytes = this.out.bytes();
    if (bytes.length > 0) {
      try {
        fs.write(seg.fd!, bytes);
      } catch (e) {
        // Part of it may be in the file: cut back before the next attempt.
        this.#goodSize = seg.size;
        this.fail(e, "write");
        return false;
      }
      this.#o.segments.resize(seg, seg.size + bytes.length);
      this.out.clear();
      this.#needsSync = true;
    }
    if (this.#batch !== undefined) {
      this.#unsynced.push(this.#batch);
      this.#batch = undefined;
    }
    return true;
  }

  /** Starts forcing what was written to the device; resolves (never rejects) when done. */
  sync(): Promise<void> | undefined {
    const fd = this.#active?.fd;
    if (!this.#needsSync || fd === undefined) return undefined;
    const batches = this.#unsynced;
    this.#unsynced = [];
    this.#needsSync = false;
    return this.#fs.datasync(fd).then(
      () => {
        for (const b of batches) b.resolve();
      },
      (e) => {
        this.#needsSync = true;
        this.#syncFailed = true;
        const err = this.fail(e, "fsync");
        for (const b of batches) b.reject(err);
      },
    );
  }

  /** Forces what was written, blocking (compaction's copies before their originals go); false on failure. */
  syncNow(): boolean {
    if (this.#o.policy !== "never") {
      try {
        this.#fs.datasyncSync(this.#active!.fd!);
      } catch (e) {
        this.#syncFailed = true;
        this.fail(e, "fsync");
        return false;
      }
    }
    this.#synced();
    return true;
  }

  /** Seals the active segment once it holds `segmentBytes` and nothing waits; false when sealing failed. */
  sealIfFull(segmentBytes: number): boolean {
    const a = this.#active;
    if (a === undefined || a.size < segmentBytes || this.out.length > 0) return true;
    try {
      if (this.#needsSync && this.#o.policy !== "never") this.#fs.datasyncSync(a.fd!);
    } catch (e) {
      this.#syncFailed = true;
      const err = this.fail(e, "fsync");
      for (const b of this.#unsynced.splice(0)) b.reject(err);
      return false;
    }
    this.#synced();
    this.#closeFd(a);
    this.#active = undefined;
    return true;
  }

  /** Tries again after a failure; true when the log works again. */
  retry(): boolean {
    if (!this.write()) return false;
    if (this.#syncFailed) {
      try {
        if (this.#active?.fd !== undefined) this.#fs.datasyncSync(this.#active.fd);
      } catch (e) {
        this.fail(e, "fsync");
        return false;
      }
      this.#syncFailed = false;
      this.#synced();
    }
    if (this.#failure !== undefined) {
      this.#o.log("info", `the log of ${this.#o.name} works again`);
      this.#failure = undefined;
    }
    return true;
  }

  /** Final write and sync, then closes the file; unconfirmed publishes get a `StoreError`. */
  close(): void {
    if (this.out.length > 0) this.write();
    const a = this.#active;
    if (a?.fd !== undefined) {
      try {
        if (this.#needsSync && this.#o.policy !== "never") this.#fs.datasyncSync(a.fd);
        this.#synced();
      } catch (e) {
        const err = this.fail(e, "fsync");
        for (const b of this.#unsynced.splice(0)) b.reject(err);
      }
      this.#closeFd(a);
    }
  }

  /** Rejects the publishes no write took yet (the store closed). */
  abandon(): void {
    const err = new StoreError("the store closed before the message was stored");
    this.#batch?.reject(err);
    this.#batch = undefined;
  }

  /** Writes what is pending and closes the file of a queue with nothing left; false when the write failed. */
  retire(): boolean {
    if (this.out.length > 0 && !this.write()) return false;
    this.#synced(); // every message is settled: nothing is left to confirm
    if (this.#active !== undefined) this.#closeFd(this.#active);
    this.#active = undefined;
    return true;
  }

  /** Marks the log failing after `e` (logged once), rejects the publishes of this tick, and asks for a retry. */
  fail(e: unknown, what: string): StoreError {
    const why = e instanceof Error ? e.message : String(e);
    const err = e instanceof StoreError
      ? e
      : new StoreError(`${what} failed: ${why}`, { cause: e });
    if (this.#failure === undefined) {
      this.#o.log(
        "error",
        `the log of ${this.#o.name} failed (${err.message}); publishes to it get STORE_FAILED ` +
          `and its records are kept in memory and retried`,
      );
    }
    this.#failure = err;
    this.#batch?.reject(err);
    this.#batch = undefined;
    this.#o.failed();
    return err;
  }

  /** Opens a new active segment. */
  #open(): Segment {
    const fs = this.#fs;
    const { dir, segments } = this.#o;
    const seq = segments.takeSeq();
    const path = `${dir}/${segmentFileName(seq)}`;
    const header = encodeSegmentHeader({
      seq,
      floorId: this.#o.floorId(),
      createdAt: this.#o.clock.now(),
      name: this.#o.name,
    });
    let fd: number | undefined;
    try {
      fs.mkdirp(dir);
      fd = fs.openAppend(path);
      fs.write(fd, header);
      if (this.#o.policy !== "never") fs.syncDir(dir);
    } catch (e) {
      if (fd !== undefined) {
        try {
          fs.close(fd);
          fs.remove(path);
        } catch { /* recovery removes a torn segment */ }
      }
      throw new StoreError(`cannot create ${path}: ${e instanceof Error ? e.message : e}`, {
        cause: e,
      });
    }
    const seg = new Segment(seq, path, header.length, Infinity);
    seg.fd = fd;
    segments.add(seg);
    this.#active = seg;
    return seg;
  }

  #synced(): void {
    this.#needsSync = false;
    for (const b of this.#unsynced.splice(0)) b.resolve();
  }

  #closeFd(seg: Segment): void {
    if (seg.fd === undefined) return;
    try {
      this.#fs.close(seg.fd);
    } catch { /* already closed */ }
    seg.fd = undefined;
  }
}
