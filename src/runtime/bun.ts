/**
 * The Bun adapter: the only file (with `deno.ts`) that may say `Bun.`.
 *
 * Bun's sockets are callback-based (`open`, `data`, `drain`, `close`), so this
 * file turns them into the `Conn` interface: inbound chunks go into a
 * `ReadableStream` that pauses the socket when its reader falls behind, and
 * `write()` resolves once every byte was taken by the kernel, finishing a
 * partial write on `drain` (Bun's `socket.write` returns how many bytes it
 * took and does not buffer the rest).
 *
 * Bun hands `data` a fresh `Buffer` per callback (checked with Bun 1.4.4: a
 * chunk kept by the reader is never rewritten by later reads, see
 * tests/bun_test.ts), so chunks are passed on without a copy.
 *
 * The Bun API is described by the small interfaces below rather than by
 * `bun-types`, so `deno check` type-checks this file too.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import type { Conn, HttpServer, Listener, Runtime } from "./types.ts";

/** Inbound bytes the stream buffers before the socket is paused (TCP backpressure then applies). */
const READ_BUFFER_BYTES_HIGH = 1024 * 1024;

// --- the part of Bun's API this adapter uses ---

interface BunSocket {
  data: SocketState | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  write(data: Uint8Array): number;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): boolean;
}

interface SocketHandlers {
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}

interface BunTcpListener {
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}

interface BunHttpServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}

interface BunApi {
  readonly version: string;
  listen(o: { hostname: string; port: number; socket: SocketHandlers }): BunTcpListener;
  connect(o: { hostname: string; port: number; socket: SocketHandlers }): Promise<BunSocket>;
  serve(o: {
    hostname: string;
    port: number;
    fetch: (request: Request) => Response | Promise<Response>;
    error?: (error: Error) => Response;
  }): BunHttpServer;
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;

// --- Conn over a Bun socket ---

/** A write waiting for `drain`. */
interface PendingWrite {
  rest: Uint8Array;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Per-socket state, kept in `socket.data`. */
class SocketState implements Conn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly remoteAddr: string;
  #socket: BunSocket;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #paused = false;
  #ended = false;
  #closed = false;
  /** Writes in order; only the first is being written. */
  #writes: PendingWrite[] = [];

  constructor(socket: BunSocket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    this.remoteAddr = `${socket.remoteAddress}:${socket.remotePort}`;
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      pull: () => {
        if (this.#paused && !this.#closed) {
          this.#paused = false;
          socket.resume();
        }
      },
      cancel: () => this.close(),
    }, { highWaterMark: READ_BUFFER_BYTES_HIGH, size: (chunk) => chunk.byteLength });
  }

  /** Bun's `data` callback. */
  onData(chunk: Uint8Array): void {
    if (this.#ended) return;
    this.#controller.enqueue(chunk);
    if ((this.#controller.desiredSize ?? 1) <= 0 && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  /** Bun's `drain` callback: the kernel takes bytes again. */
  onDrain(): void {
    while (this.#writes.length > 0) {
      const w = this.#writes[0];
      const n = this.#socket.write(w.rest);
      if (n < 0) return this.#failWrites(new Error("write to a closed socket"));
      if (n < w.rest.length) {
        w.rest = w.rest.subarray(n);
        return;
      }
      this.#writes.shift();
      w.resolve();
    }
  }

  /** Bun's `close` or `error` callback: the socket is gone. */
  onClose(error?: Error): void {
    this.#closed = true;
    this.#failWrites(error ?? new Error("connection closed"));
    this.#endReadable(error);
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("write to a closed socket"));
    if (this.#writes.length === 0) {
      const n = this.#socket.write(bytes);
      if (n < 0) return Promise.reject(new Error("write to a closed socket"));
      if (n === bytes.length) return Promise.resolve();
      bytes = bytes.subarray(n);
    }
    return new Promise((resolve, reject) => this.#writes.push({ rest: bytes, resolve, reject }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failWrites(new Error("connection closed"));
    this.#endReadable(undefined);
    this.#socket.end();
  }

  #endReadable(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (error !== undefined) this.#controller.error(error);
      else this.#controller.close();
    } catch { /* the reader cancelled the stream already */ }
  }

  #failWrites(err: Error): void {
    for (const w of this.#writes.splice(0)) w.reject(err);
  }
}

/** Handlers shared by every socket; each finds its state in `socket.data`. */
function handlers(onOpen: (state: SocketState) => void): SocketHandlers {
  return {
    open(socket) {
      const state = new SocketState(socket);
      socket.data = state;
      onOpen(state);
    },
    data: (socket, chunk) => socket.data?.onData(chunk),
    drain: (socket) => socket.data?.onDrain(),
    close: (socket, error) => socket.data?.onClose(error),
    error: (socket, error) => socket.data?.onClose(error),
  };
}

function listen(options: { hostname: string; port: number }): Listener {
  /** Accepted sockets not yet taken by `accept()`; the server's loop takes them at once. */
  const backlog: Conn[] = [];
  /** Pending `accept()` calls, oldest first. */
  const waiting: ((c: Conn | undefined) => void)[] = [];
  let closed = false;
  const server = Bun.listen({
    hostname: options.hostname,
    port: options.port,
    socket: handlers((state) => {
      if (closed) return state.close();
      const w = waiting.shift();
      if (w === undefined) backlog.push(state);
      else w(state);
    }),
  });
  return {
    port: server.port,
    accept(): Promise<Conn | undefined> {
      if (backlog.length > 0) return Promise.resolve(backlog.shift());
      if (closed) return Promise.resolve(undefined);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close() {
      if (closed) return;
      closed = true;
      // Stops listening; accepted connections stay open (the server closes them itself).
      server.stop(false);
      for (const c of backlog.splice(0)) c.close();
      for (const w of waiting.splice(0)) w(undefined);
    },
  };
}

async function connect(options: { hostname: string; port: number }): Promise<Conn> {
  let opened: SocketState | undefined;
  const socket = await Bun.connect({
    hostname: options.hostname,
    port: options.port,
    socket: handlers((state) => opened = state),
  });
  return opened ?? socket.data!;
}

function serveHttp(
  options: { hostname: string; port: number },
  handler: (request: Request) => Response | Promise<Response>,
): HttpServer {
  const server = Bun.serve({
    hostname: options.hostname,
    port: options.port,
    fetch: handler,
    error: (err) => new Response(`internal error: ${err.message}\n`, { status: 500 }),
  });
  return {
    port: server.port,
    close: async () => {
      await server.stop(true);
    },
  };
}

/** The Bun runtime. */
export const bunRuntime: Runtime = {
  name: "bun",
  version: Bun.version,
  listen,
  connect,
  serveHttp,
  // argv is [bun, script, ...args], also in a `bun build --compile` binary.
  args: () => process.argv.slice(2),
  env: (name) => process.env[name],
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => void process.off(signal, handler);
  },
  memory() {
    const m = process.memoryUsage();
    return { rss: m.rss, heapUsed: m.heapUsed };
  },
  readTextFile: (path) => readFileSync(path, "utf8"),
  stdoutIsTerminal: () => process.stdout.isTTY === true,
  writeStdout: (text) => void process.stdout.write(text),
  stdin: () => process.stdin as unknown as AsyncIterable<Uint8Array>,
  stdinIsTerminal: () => process.stdin.isTTY === true,
  setStdinRaw: (raw) => void process.stdin.setRawMode?.(raw),
  exit: (code) => process.exit(code),
};
