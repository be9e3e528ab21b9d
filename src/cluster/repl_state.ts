/**
 * What a replica must remember of each queue across its own crash: the
 * highest leader epoch it promised (it refuses older ones for ever), and
 * what its copy is (the epoch of the leader it came from and that leader's
 * record number, lsn), so that a new leader can tell the most complete copy.
 *
 * One small append-only file per queue in `<data-dir>/cluster/`, next to
 * the queues' logs: 28-byte records (epoch f64, data epoch f64, lsn f64,
 * CRC-32C u32); the last whole record with a good checksum wins, so a torn
 * write leaves the one before. The file is rewritten (a new file renamed
 * over it, off the event loop) when it passes
 * `CLUSTER_REPL_STATE_FILE_BYTES_MAX`. Without a
 * data dir (the memory store) the state lives in memory only, as the
 * messages do.
 *
 * @module
 */
import {
  CLUSTER_REPL_STATE_FILE_BYTES_MAX,
  CLUSTER_REPL_STATE_FILES_OPEN_MAX,
} from "../config/mod.ts";
import type { FileSystem } from "../runtime/mod.ts";
import { crc32c } from "../storage/mod.ts";

/** A queue's replication state. */
export interface ReplState {
  /** The highest leader epoch promised: appends of an older one are refused. */
  epoch: number;
  /** The epoch of the leader whose records the copy holds. */
  dataEpoch: number;
  /** The last of that leader's records the copy holds. */
  lsn: number;
}

const RECORD_BYTES = 28;

/** A queue's open state file. */
interface StateFile {
  fd: number;
  bytes: number;
  /**
   * The rewrite under way (a fresh file holding the state): it gets every
   * save too, until it is renamed over this one and the rename is durable.
   */
  next: { fd: number; bytes: number } | undefined;
}

/** The files of the queues' states (see the module comment). */
export class ReplStateFiles {
  readonly #fs: FileSystem | undefined;
  readonly #dir: string;
  readonly #sync: boolean;
  /** Open files, least recently saved first. */
  #fds = new Map<string, StateFile>();
  /** File paths by queue (one per queue file open, as `#fds`). */
  #paths = new Map<string, string>();
  /** Per descriptor: datasyncs in flight (a descriptor is never closed under one). */
  #syncing = new Map<number, number>();
  /** Descriptors to close once their datasyncs end. */
  #retired = new Set<number>();
  /** Rewrites under way (a close waits for them). */
  #rewrites = new Set<Promise<void>>();

  /** `fs` undefined: memory only. `sync`: every save is forced to the device (`--fsync always`). */
  constructor(fs: FileSystem | undefined, dataDir: string | undefined, sync: boolean) {
    this.#fs = dataDir === undefined ? undefined : fs;
    this.#dir = `${dataDir}/cluster`;
    this.#sync = sync;
    this.#fs?.mkdirp(this.#dir);
  }

  /** The queue's state as last saved (zeros: never). */
  load(queue: string): ReplState {
    const fs = this.#fs;
    const s: ReplState = { epoch: 0, dataEpoch: 0, lsn: 0 };
    if (fs === undefined) return s;
    let b: Uint8Array;
    try {
      b = fs.readFile(this.#path(queue));
    } catch {
      return s;
    }
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let p = 0; p + RECORD_BYTES <= b.length; p += RECORD_BYTES) {
      if (v.getUint32(p + 24, true) !== crc32c(b, p, p + 24)) break;
      s.epoch = v.getFloat64(p, true);
      s.dataEpoch = v.getFloat64(p + 8, true);
      s.lsn = v.getFloat64(p + 16, true);
    }
    return s;
  }

  /**
   * Saves the state: on the way to the operating system when it returns;
   * under `--fsync always` the promise resolves once it is on the device
   * (in both files while one is being rewritten).
   */
  save(queue: string, s: ReplState): void | Promise<void> {
    const fs = this.#fs;
    if (fs === undefined) return;
    const rec = new Uint8Array(RECORD_BYTES);
    const v = new DataView(rec.buffer);
    v.setFloat64(0, s.epoch, true);
    v.setFloat64(8, s.dataEpoch, true);
    v.setFloat64(16, s.lsn, true);
    v.setUint32(24, crc32c(rec, 0, 24), true);
    const f = this.#open(queue);
    fs.write(f.fd, rec);
    f.bytes += RECORD_BYTES;
    const next = f.next;
    if (next !== undefined) {
      fs.write(next.fd, rec);
      next.bytes += RECORD_BYTES;
    } else if (f.bytes > CLUSTER_REPL_STATE_FILE_BYTES_MAX) this.#rewrite(queue, f, rec);
    if (!this.#sync) return;
    if (f.next === undefined) return this.#datasync(f.fd);
    return Promise.all([this.#datasync(f.fd), this.#datasync(f.next.fd)]).then(() => {});
  }

  /**
   * A fresh file holding the latest record, renamed over the old one once it
   * is on the device, without blocking the event loop (a blocking rewrite
   * stalled every queue's traffic for 2-47 ms here). Until the rename is
   * durable both files get every save, so whichever the name points to
   * after a crash ends with the latest state: never a moment without one.
   */
  #rewrite(queue: string, f: StateFile, rec: Uint8Array): void {
    const fs = this.#fs!;
    const path = this.#path(queue);
    const tmp = `${path}.tmp`;
    let fd: number;
    try {
      fs.remove(tmp);
      fd = fs.openAppend(tmp);
    } catch {
      return; // the old file goes on; tried again at the next save
    }
    const next = f.next = { fd, bytes: 0 };
    let renamed = false;
    const done = (async () => {
      try {
        fs.write(fd, rec);
        next.bytes += RECORD_BYTES;
        await this.#datasync(fd);
        fs.rename(tmp, path);
        renamed = true;
        await fs.syncDirAsync(this.#dir);
      } catch {
        // Not renamed (an I/O error): the old file stays, whole; tried again at the next save.
      }
      f.next = undefined;
      if (!renamed) return this.#close(fd);
      this.#close(f.fd);
      f.fd = fd;
      f.bytes = next.bytes;
    })();
    this.#rewrites.add(done);
    done.finally(() => this.#rewrites.delete(done));
  }

  /** The queue's open file, the most recently saved from now on. */
  #open(queue: string): StateFile {
    const fs = this.#fs!;
    let f = this.#fds.get(queue);
    if (f === undefined) {
      this.#evict();
      const path = this.#path(queue);
      const fd = fs.openAppend(path);
      let bytes = 0;
      try {
        bytes = fs.readFile(path).length;
      } catch { /* new */ }
      f = { fd, bytes, next: undefined };
    } else this.#fds.delete(queue); // moved to the back: the most recently saved
    this.#fds.set(queue, f);
    return f;
  }

  #datasync(fd: number): Promise<void> {
    this.#syncing.set(fd, (this.#syncing.get(fd) ?? 0) + 1);
    return this.#fs!.datasync(fd).finally(() => {
      const n = this.#syncing.get(fd)! - 1;
      if (n > 0) return void this.#syncing.set(fd, n);
      this.#syncing.delete(fd);
      if (this.#retired.delete(fd)) this.#fs!.close(fd);
    });
  }

  /** Closes a descriptor now, or once its datasyncs end. */
  #close(fd: number): void {
    if (this.#syncing.has(fd)) this.#retired.add(fd);
    else this.#fs?.close(fd);
  }

  /** Closes the least recently saved file not being rewritten, when too many are open. */
  #evict(): void {
    if (this.#fds.size < CLUSTER_REPL_STATE_FILES_OPEN_MAX) return;
    for (const [queue, f] of this.#fds) {
      if (f.next !== undefined) continue;
      this.#close(f.fd);
      this.#fds.delete(queue);
      return;
    }
  }

  /** Closes the files, once the rewrites under way are done. */
  async close(): Promise<void> {
    await Promise.all([...this.#rewrites]);
    for (const f of this.#fds.values()) this.#close(f.fd);
    this.#fds.clear();
  }

  #path(queue: string): string {
    const known = this.#paths.get(queue);
    if (known !== undefined) return known;
    if (this.#paths.size >= CLUSTER_REPL_STATE_FILES_OPEN_MAX) this.#paths.clear();
    let hex = "";
    for (const b of new TextEncoder().encode(queue)) hex += b.toString(16).padStart(2, "0");
    const path = `${this.#dir}/${hex}.state`;
    this.#paths.set(queue, path);
    return path;
  }
}
