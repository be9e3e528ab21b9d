/**
 * The publisher ceiling's server: a server that costs next to nothing per
 * byte, so a `pub` ceiling run measures the bench's publisher and the
 * kernel's send path, not a reader. `sink.ts` reads every byte into a buffer
 * (Deno's `Conn.read`, ~0.9 µs of CPU per 4 KiB message: as much as a
 * broker), so "Relayr at 111-158% of the ceiling" meant a broker that reads
 * cheaper than the sink did, not one faster than its publisher.
 *
 * Each wake-up takes what the socket holds off it with Linux's
 * `recv(MSG_TRUNC)` (the kernel drops the bytes without copying them) except
 * its last 16 bytes, which it reads to see a PING that ends the stream so far
 * (answered `PONG`, or `+PONG` for Redis). libc through Deno's FFI (Deno's
 * sockets give no descriptor), called blocking on the main thread as a C
 * server's thread would: one connection at a time, which is all a ceiling run
 * opens (an async FFI call per wake-up cost 0.6-1.0 µs of CPU per 4 KiB
 * message, the thread hop per wake-up). Linux only: elsewhere it exits with
 * code 3 and the bench uses `sink.ts` for the `pub` ceiling too (and says so).
 *
 * Run: `deno run -A bench/discard.ts --port P` (prints `listening on P`).
 *
 * @module
 */
import { parseArgs } from "node:util";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const MSG_PEEK = 0x2;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
/** `ioctl` request: bytes queued for reading (asm-generic/ioctls.h). */
const FIONREAD = 0x541b;
/** Bytes kept from the end of what was read: the longest PING (Redis `$4\r\nPING\r\n`) fits. */
const TAIL_BYTES = 16;
/** Exit code when this platform has no such server (the bench falls back to `sink.ts`). */
export const DISCARD_UNAVAILABLE_EXIT = 3;

const enc = new TextEncoder();
const PING = enc.encode("PING\r\n");
const REDIS_PING = enc.encode("$4\r\nPING\r\n");
const PONG = enc.encode("PONG\r\n");
const REDIS_PONG = enc.encode("+PONG\r\n");

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept: { parameters: ["i32", "pointer", "pointer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A `sockaddr_in` for 127.0.0.1:`port`. */
function loopback(port: number): Uint8Array {
  const a = new Uint8Array(16);
  const v = new DataView(a.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  a.set([127, 0, 0, 1], 4);
  return a;
}

function endsWith(tail: Uint8Array, len: number, suffix: Uint8Array): boolean {
  if (len < suffix.length) return false;
  for (let i = 0; i < suffix.length; i++) {
    if (tail[len - suffix.length + i] !== suffix[i]) return false;
  }
  return true;
}

function writeAll(libc: Libc, fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) {
    const n = Number(libc.write(fd, bytes.subarray(off), BigInt(bytes.length - off)));
    if (n <= 0) return; // the client went away
    off += n;
  }
}

/** Drops what `fd` sends, answering each PING that ends what it sent so far; until it closes. */
function serve(libc: Libc, fd: number): void {
  const one = new Uint8Array(1);
  const queued = new Int32Array(1);
  const last = new Uint8Array(TAIL_BYTES);
  const tail = new Uint8Array(TAIL_BYTES * 2);
  let tailLen = 0;
  try {
    // Blocks until the socket has bytes (or ends), as a C server's thread would.
    while (Number(libc.recv(fd, one, 1n, MSG_PEEK)) > 0) {
      if (libc.ioctl(fd, BigInt(FIONREAD), queued) !== 0) break;
      const n = queued[0];
      if (n > TAIL_BYTES) {
        libc.recv(fd, null, BigInt(n - TAIL_BYTES), MSG_TRUNC | MSG_DONTWAIT);
        tailLen = 0; // what came before is no longer next to what is read now
      }
      const got = Number(libc.recv(fd, last, BigInt(Math.min(n, TAIL_BYTES)), MSG_DONTWAIT));
      if (got <= 0) continue;
      if (tailLen + got > tail.length) {
        const keep = tail.length - got;
        tail.copyWithin(0, tailLen - keep, tailLen);
        tailLen = keep;
      }
      tail.set(last.subarray(0, got), tailLen);
      tailLen += got;
      if (endsWith(tail, tailLen, REDIS_PING)) writeAll(libc, fd, REDIS_PONG);
      else if (endsWith(tail, tailLen, PING)) writeAll(libc, fd, PONG);
    }
  } finally {
    libc.close(fd);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  if (Deno.build.os !== "linux") {
    console.error("discard: needs Linux (recv with MSG_TRUNC on TCP)");
    Deno.exit(DISCARD_UNAVAILABLE_EXIT);
  }
  let libc: Libc;
  try {
    libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (err) {
    console.error(`discard: cannot load libc: ${(err as Error).message}`);
    Deno.exit(DISCARD_UNAVAILABLE_EXIT);
  }
  const port = Number(values.port);
  const s = libc.socket(AF_INET, SOCK_STREAM, 0);
  const on = new Int32Array([1]);
  const addr = loopback(port);
  if (
    s < 0 || libc.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, on, 4) !== 0 ||
    libc.bind(s, addr, addr.length) !== 0 || libc.listen(s, 64) !== 0
  ) {
    console.error(`discard: cannot listen on 127.0.0.1:${port}`);
    Deno.exit(1);
  }
  console.log(`listening on ${port}`);
  // One connection at a time, blocking: the ceiling runs one publisher at a time.
  for (;;) {
    const fd = libc.accept(s, null, null);
    if (fd >= 0) serve(libc, fd);
  }
}
