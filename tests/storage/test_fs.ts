/**
 * A `FileSystem` over the real one (real files in a temp dir) that tests can
 * break: writes that fail part-way with ENOSPC, fsyncs that fail, fsyncs held
 * until released, a count of fsyncs, and a power-cut model: `powerCut()`
 * stops all I/O and cuts every file back to what its last completed fsync
 * covered (files never synced lose everything), as a machine that lost power
 * would.
 */
import { type FileSystem, nodeFileSystem } from "../../src/runtime/mod.ts";

function enospc(): Error {
  return Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
}

/** The real file system with faults on demand. */
export class TestFs implements FileSystem {
  /** Completed fdatasyncs (sync and async). */
  datasyncs = 0;
  /** While true, every write puts half its bytes in the file and throws ENOSPC. */
  failWrites = false;
  /** While true, every fdatasync throws EIO. */
  failSyncs = false;
  #real = nodeFileSystem;
  #paths = new Map<number, string>();
  #size = new Map<string, number>();
  #synced = new Map<string, number>();
  #pending = new Set<Promise<void>>();
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  #dead = false;

  /** Holds every async fdatasync until `release()`. */
  hold(): void {
    this.#gate ??= new Promise<void>((r) => this.#open = r);
  }

  /** Lets held fdatasyncs finish. */
  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  /** Async fdatasyncs started and not finished. */
  get syncsInFlight(): number {
    return this.#pending.size;
  }

  /**
   * Power cut: no more I/O succeeds; once the fsyncs in flight end (not
   * counted as durable), open files are closed and every file is cut to the
   * bytes its last completed fsync covered.
   */
  async powerCut(): Promise<void> {
    await this.crash();
    for (const [path, size] of this.#size) {
      const keep = this.#synced.get(path) ?? 0;
      if (keep < size) this.#real.truncatePath(path, keep);
    }
  }

  /**
   * Process crash (`kill -9`): no more I/O succeeds; what was written stays
   * in the files (it is in the page cache), what was only buffered is lost.
   */
  async crash(): Promise<void> {
    this.#dead = true;
    this.release();
    await Promise.allSettled([...this.#pending]);
    for (const fd of this.#paths.keys()) this.#real.close(fd);
    this.#paths.clear();
  }

  #check(): void {
    if (this.#dead) throw new Error("EIO: the power is off");
  }

  mkdirp(path: string): void {
    this.#check();
    this.#real.mkdirp(path);
  }
  readDir(path: string): string[] {
    this.#check();
    return this.#real.readDir(path);
  }
  isDir(path: string): boolean {
    this.#check();
    return this.#real.isDir(path);
  }
  readFile(path: string, scratch?: Uint8Array): Uint8Array {
    this.#check();
    return this.#real.readFile(path, scratch);
  }
  openAppend(path: string): number {
    this.#check();
    const fd = this.#real.openAppend(path);
    this.#paths.set(fd, path);
    if (!this.#size.has(path)) {
      // What was there before this "boot" is durable; what is written from now on is not, yet.
      const existing = this.#real.readFile(path).length;
      this.#size.set(path, existing);
      this.#synced.set(path, existing);
    }
    return fd;
  }
  write(fd: number, bytes: Uint8Array): void {
    this.#check();
    const path = this.#paths.get(fd)!;
    if (this.failWrites) {
      const half = bytes.subarray(0, bytes.length >> 1);
      this.#real.write(fd, half);
      this.#size.set(path, this.#size.get(path)! + half.length);
      throw enospc();
    }
    this.#real.write(fd, bytes);
    this.#size.set(path, this.#size.get(path)! + bytes.length);
  }
  datasync(fd: number): Promise<void> {
    const path = this.#paths.get(fd)!;
    const size = this.#size.get(path)!;
    const p = (async () => {
      await this.#gate;
      this.#check();
      if (this.failSyncs) throw new Error("EIO: i/o error, fdatasync");
      await this.#real.datasync(fd);
      this.#check();
      this.#durable(path, size);
    })();
    this.#pending.add(p);
    const done = () => this.#pending.delete(p);
    p.then(done, done);
    return p;
  }
  datasyncSync(fd: number): void {
    this.#check();
    if (this.failSyncs) throw new Error("EIO: i/o error, fdatasync");
    this.#real.datasyncSync(fd);
    const path = this.#paths.get(fd)!;
    this.#durable(path, this.#size.get(path)!);
  }
  #durable(path: string, size: number): void {
    this.datasyncs++;
    if ((this.#synced.get(path) ?? 0) < size) this.#synced.set(path, size);
  }
  truncate(fd: number, length: number): void {
    this.#check();
    this.#real.truncate(fd, length);
    const path = this.#paths.get(fd)!;
    this.#size.set(path, length);
    if ((this.#synced.get(path) ?? 0) > length) this.#synced.set(path, length);
  }
  truncatePath(path: string, length: number): void {
    this.#check();
    this.#real.truncatePath(path, length);
    this.#size.set(path, length);
    // Recovery cuts torn tails: treat the cut as durable, as a journaled file system would.
    this.#synced.set(path, Math.min(this.#synced.get(path) ?? length, length));
  }
  close(fd: number): void {
    this.#check();
    this.#paths.delete(fd);
    this.#real.close(fd);
  }
  remove(path: string): void {
    this.#check();
    this.#real.remove(path);
    this.#size.delete(path);
    this.#synced.delete(path);
  }
  removeDir(path: string): void {
    this.#check();
    this.#real.removeDir(path);
  }
  rename(from: string, to: string): void {
    this.#check();
    this.#real.rename(from, to);
  }
  syncDir(path: string): void {
    this.#check();
    this.#real.syncDir(path);
  }
  syncDirAsync(path: string): Promise<void> {
    this.#check();
    return this.#real.syncDirAsync(path);
  }

  lock(path: string): () => void {
    return this.#real.lock(path);
  }
}
