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
 * over it) when it passes `CLUSTER_REPL_STATE_FILE_BYTES_MAX`. Without a
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

/** The files of the queues' states (see the module comment). */
export class ReplStateFiles {
  readonly #fs: FileSystem | undefined;
  readonly #dir: string;
  readonly #sync: boolean;
  /** Open files, least recently saved first; `syncing`: datasyncs in flight (never closed under one). */
  #fds = new Map<string, { fd: number; bytes: number; syncing: number }>();
  /** File paths by queue (one per queue file open, as `#fds`). */
  #paths = new Map<string, string>();

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
   * under `--fsync always` the promise resolves once it is on the device.
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
    const path = this.#path(queue);
    let f = this.#fds.get(queue);
    if (
      f !== undefined && f.bytes + RECORD_BYTES > CLUSTER_REPL_STATE_FILE_BYTES_MAX &&
      f.syncing === 0
    ) {
      fs.close(f.fd);
      this.#fds.delete(queue);
      f = undefined;
      // A fresh file holding the one record, renamed over the old: never a moment without a state.
      const tmp = `${path}.tmp`;
      fs.remove(tmp);
      const fd = fs.openAppend(tmp);
      fs.write(fd, rec);
      fs.datasyncSync(fd);
      fs.close(fd);
      fs.rename(tmp, path);
      fs.syncDir(this.#dir);
      return;
    }
    if (f === undefined) {
      this.#evict();
      const fd = fs.openAppend(path);
      let bytes = 0;
      try {
        bytes = fs.readFile(path).length;
      } catch { /* new */ }
      f = { fd, bytes, syncing: 0 };
    } else this.#fds.delete(queue); // moved to the back: the most recently saved
    this.#fds.set(queue, f);
    fs.write(f.fd, rec);
    f.bytes += RECORD_BYTES;
    if (!this.#sync) return;
    const file = f;
    file.syncing++;
    return fs.datasync(file.fd).finally(() => file.syncing--);
  }

  /** Closes the least recently saved file not being synced, when too many are open. */
  #evict(): void {
    if (this.#fds.size < CLUSTER_REPL_STATE_FILES_OPEN_MAX) return;
    for (const [queue, f] of this.#fds) {
      if (f.syncing > 0) continue;
      this.#fs?.close(f.fd);
      this.#fds.delete(queue);
      return;
    }
  }

  /** Closes the files. */
  close(): void {
    for (const f of this.#fds.values()) this.#fs?.close(f.fd);
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
