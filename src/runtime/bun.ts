/**
 * The Bun adapter: the only file (with `deno.ts`) that may say `Bun.`.
 *
 * Bun's sockets are callback-based (`open`, `data`, `drain`, `close`), so this
 * file turns them into the `Conn` interface: inbound chunks settle a waiting
 * `read()` or queue for the next (or, once `readable` was asked for, go into
 * that stream), the socket pauses when its reader falls behind, and
 * `write()` resolves once every byte was taken by the kernel, finishing a
 * partial write on `drain` (Bun's `socket.write` returns how many bytes it
 * took and does not buffer the rest).
 *
 * Bun hands `data` a fresh `Buffer` per callback (checked with Bun 1.4.4: a
 * chunk kept by the reader is never rewritten by later reads, see
 * tests/bun_test.ts), so chunks are passed on without a copy. Bun makes that
 * Buffer by copying each read out of its own receive buffer, so while a bulk
 * sender keeps a plain TCP socket full, `read()` reads the socket itself into
 * a buffer it reuses, as on Deno (`SocketState.#readFd`).
 *
 * The Bun API is described by the small interfaces below rather than by
 * `bun-types`, so `deno check` type-checks this file too.
 *
 * @module
 */
import { readFileSync, readSync } from "node:fs";
import process from "node:process";
import { WS_SEND_BYTES_MAX } from "../config/limits.ts";
import { closeError, MessageInbox, WS_CLOSE_NORMAL, WS_CLOSE_TOO_BIG } from "../websocket/mod.ts";
import { AcceptQueue } from "./accept_queue.ts";
import { Inbound } from "./inbound.ts";
import { ReadBuffer, ReadBufferPool } from "./read_buffer.ts";
import { connectNodeTls } from "./node_tls.ts";
import { certSubject } from "./tls_files.ts";
import type {
  Conn,
  HttpHandler,
  HttpServeOptions,
  HttpServer,
  Listener,
  ListenTls,
  Runtime,
  TlsFiles,
  WebSocketUpgrade,
} from "./types.ts";

// --- the part of Bun's API this adapter uses ---

interface BunSocket {
  data: SocketState | undefined;
  /** The socket's file descriptor (read by `SocketState.#readFd`; -1 once closed). */
  readonly fd: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  write(data: Uint8Array): number;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): boolean;
  /** TLS sockets: the verified client certificate. */
  getPeerX509Certificate?(): { raw: Uint8Array } | undefined;
}

interface SocketHandlers {
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
  handshake?(socket: BunSocket, success: boolean, authorizationError: Error | null): void;
}

/** Bun's `tls` option of `listen` and `serve`. */
interface BunTls {
  cert: string;
  key: string;
  ca?: string;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
}

interface BunTcpListener {
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}

interface BunHttpServer {
  readonly port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
  upgrade(request: Request, options: { data: BunWebSocketConn }): boolean;
  requestIP(request: Request): { address: string; port: number } | null;
}

interface BunServerWebSocket {
  readonly data: BunWebSocketConn;
  /** Bytes sent (> 0), -1: queued under back-pressure (wait for `drain`), 0: dropped. */
  send(data: Uint8Array): number;
  close(code?: number, reason?: string): void;
}

interface BunWebSocketHandlers {
  open(ws: BunServerWebSocket): void;
  message(ws: BunServerWebSocket, message: string | Uint8Array): void;
  drain(ws: BunServerWebSocket): void;
  close(ws: BunServerWebSocket, code: number, reason: string): void;
  maxPayloadLength: number;
  backpressureLimit: number;
  closeOnBackpressureLimit: boolean;
  idleTimeout: number;
  sendPings: boolean;
  perMessageDeflate: boolean;
}

interface BunApi {
  readonly version: string;
  listen(
    o: { hostname: string; port: number; socket: SocketHandlers; tls?: BunTls },
  ): BunTcpListener;
  connect(o: { hostname: string; port: number; socket: SocketHandlers }): Promise<BunSocket>;
  serve(o: {
    hostname: string;
    port: number;
    fetch: (
      request: Request,
      server: BunHttpServer,
    ) => Response | undefined | Promise<Response | undefined>;
    error?: (error: Error) => Response;
    tls?: BunTls;
    websocket?: BunWebSocketHandlers;
  }): BunHttpServer;
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;

// --- Conn over a Bun socket ---

/**
 * A chunk from Bun at least this big turns on `SocketState.#readFd` until the
 * socket is dry: a bulk sender. A chatty or idle connection's chunks are
 * smaller, so it never makes a read buffer of its own (10,000 idle
 * connections would hold 256 B each for nothing) and never pays a failed read.
 */
const BULK_CHUNK_BYTES = 16 * 1024;
/**
 * Where a socket's `fd` is a file descriptor `readSync` reads the socket
 * through (on Windows a socket is no CRT descriptor, and its number could name
 * an open file).
 */
const FD_READS = process.platform === "linux" || process.platform === "darwin";

/**
 * Full-size read buffers of bulk senders' sockets that ran dry, for the next
 * one read: a connection holds its buffer only while its socket has bytes.
 */
const readPool = new ReadBufferPool();

/** A write waiting for `drain`. */
interface PendingWrite {
  rest: Uint8Array;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Per-socket state, kept in `socket.data`. */
class SocketState implements Conn {
  readonly remoteAddr: string;
  /** Set by a TLS listener once the handshake succeeded. */
  secure = false;
  peerCertSubject: string | undefined;
  #socket: BunSocket;
  #closed = false;
  /** Inbound chunks, to `read()` (the broker) or `readable` (the SDK, cluster links). */
  readonly #in: Inbound = new Inbound(this);
  /** Writes in order; only the first is being written. */
  #writes: PendingWrite[] = [];
  /** A plain TCP socket's descriptor, for `#readFd`; -1: never read it (TLS, dialled sockets). */
  readonly #fd: number;
  /** The last chunk from Bun was a bulk sender's: `read()` reads the socket itself until it is dry. */
  #bulk = false;
  /** What `#readFd` reads into; made on a bulk sender's first read, empty while the socket is dry. */
  #buf: ReadBuffer | undefined = undefined;

  /** `plain`: a plain TCP socket of the broker's listener, which `read()` may read itself. */
  constructor(socket: BunSocket, plain = false) {
    this.#socket = socket;
    socket.setNoDelay(true);
    this.remoteAddr = `${socket.remoteAddress}:${socket.remotePort}`;
    const fd = socket.fd;
    this.#fd = plain && FD_READS && typeof fd === "number" && fd >= 0 ? fd : -1;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#in.readable;
  }

  /**
   * The next chunk, owned by the caller; null at the end. Mostly a chunk as
   * Bun handed it to `data` (a fresh Buffer: Bun never rewrites it); while a
   * bulk sender keeps the socket full, the socket read straight into a reused
   * buffer (`#readFd`, `free` as on Deno).
   */
  read(free?: Uint8Array): Promise<Uint8Array | null> {
    if (this.#bulk && this.#in.empty && !this.#closed) {
      const chunk = this.#readFd(free);
      if (chunk !== undefined) return Promise.resolve(chunk);
    } else this.#buf?.release(free); // the sender went chatty (a small chunk from Bun) or closed
    return this.#in.read();
  }

  /** Bytes of read buffer this connection holds between reads: 0 unless its socket has bytes. */
  get readBufferBytes(): number {
    return this.#buf?.bytes ?? 0;
  }

  /**
   * Reads what the kernel holds for this socket into the connection's own
   * buffer, or undefined when it holds nothing (EAGAIN: Bun's sockets are
   * non-blocking; the next bytes come through `data` again), or at the end or
   * an error (which Bun's own read reports next, through `close`). Bun copies
   * each read out of its receive buffer into a fresh Buffer: under
   * publish-only 4 KiB that copy was 18.9% of the broker's CPU (`perf`), and
   * the fresh Buffers' page faults and collection ~10% more. Only called
   * while Bun has handed over every byte it read (`Inbound.empty`) and the
   * socket is open, so the bytes stay in order and the descriptor is this
   * socket's (a closed one's number may already name another).
   */
  #readFd(free: Uint8Array | undefined): Uint8Array | undefined {
    // Bun's `fd` reads -1 from the moment it closes the socket (checked with Bun 1.4.4, also inside
    // its `close` callback): asked each time, so a close this object has not heard of yet cannot
    // make it read a descriptor number the kernel may have given to another connection.
    if (this.#socket.fd !== this.#fd) {
      this.#bulk = false;
      return undefined;
    }
    const rb = this.#buf ??= new ReadBuffer(readPool.size, readPool);
    const buf = rb.take(free);
    let n: number;
    try {
      n = readSync(this.#fd, buf, 0, buf.length, null);
    } catch {
      n = 0; // EAGAIN (dry), or an error Bun reports
    }
    if (n > 0) return rb.got(n);
    // Dry: the buffer goes back to the pool until the next wake-up, so a connection that goes
    // quiet holds none (it held up to 512 KiB until it closed); the next read takes one back. One
    // that holds a kept chunk (a queue delivery in flight) is held anyway: its tail takes the next
    // burst (`rest`).
    rb.unused();
    rb.rest(undefined);
    this.#bulk = false;
    return undefined;
  }

  /** Bun's `data` callback. */
  onData(chunk: Uint8Array): void {
    // A chunk this big means a sender writing faster than we read: more is likely waiting.
    this.#bulk = this.#fd >= 0 && chunk.length >= BULK_CHUNK_BYTES;
    this.#in.push(chunk);
  }

  /** Stops reading (the reader is behind). */
  pause(): void {
    if (!this.#closed) this.#socket.pause();
  }

  /** Reads again. */
  resume(): void {
    if (!this.#closed) this.#socket.resume();
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

  /** Bun's `close` or `error` callback: the socket is gone (chunks already queued are still read). */
  onClose(error?: Error): void {
    this.#closed = true;
    this.#failWrites(error ?? new Error("connection closed"));
    this.#in.end(error);
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
    this.#in.close();
    this.#socket.end();
  }

  #failWrites(err: Error): void {
    for (const w of this.#writes.splice(0)) w.reject(err);
  }
}

/** Handlers shared by every socket; each finds its state in `socket.data`. */
function handlers(onOpen: (state: SocketState) => void, plain = false): SocketHandlers {
  return {
    open(socket) {
      const state = new SocketState(socket, plain);
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
  const queue = new AcceptQueue();
  const server = Bun.listen({
    hostname: options.hostname,
    port: options.port,
    socket: handlers((state) => queue.push(state), true),
  });
  return {
    port: server.port,
    accept: () => queue.accept(),
    close() {
      if (queue.closed) return;
      queue.close();
      // Stops listening; accepted connections stay open (the server closes them itself).
      server.stop(false);
    },
  };
}

/**
 * `Bun.listen` with `tls`: Bun verifies client certificates itself
 * (`requestCert`, `ca`). A socket opens before its handshake; it reaches
 * `accept()` only after a handshake without an authorization error, within
 * the handshake timeout. Reload: the listener is bound again on its port
 * with the new files.
 */
function listenTls(options: { hostname: string; port: number; tls: ListenTls }): Promise<Listener> {
  const o = options.tls;
  const queue = new AcceptQueue();
  /** Sockets in their handshake, with their timeout. */
  const handshaking = new Map<BunSocket, ReturnType<typeof setTimeout>>();
  const fail = (socket: BunSocket, reason: string) => {
    o.onHandshakeFailure(`${socket.remoteAddress}:${socket.remotePort}`, reason);
    socket.data?.close();
  };
  const base = handlers(() => {});
  const socketHandlers: SocketHandlers = {
    ...base,
    open(socket) {
      base.open(socket);
      if (handshaking.size >= o.handshakesPendingMax) {
        return fail(socket, "too many handshakes in progress");
      }
      handshaking.set(
        socket,
        setTimeout(() => {
          handshaking.delete(socket);
          fail(socket, "handshake timed out");
        }, o.handshakeTimeoutMs),
      );
    },
    handshake(socket, success, authorizationError) {
      const timer = handshaking.get(socket);
      if (timer === undefined) return; // timed out already
      clearTimeout(timer);
      handshaking.delete(socket);
      // Without a CA no client certificate is asked for, and Bun's
      // authorizationError (a certificate it could not verify) means nothing.
      if (!success || (o.ca !== undefined && authorizationError)) {
        const e = authorizationError as (Error & { code?: string }) | null;
        // EPROTO says nothing more; its message names OpenSSL's reason (WRONG_VERSION_NUMBER).
        const why = e?.code === "EPROTO" ? e.message.replace(/^.*:/, "") : e?.code;
        return fail(socket, why || e?.message || "handshake failed");
      }
      const state = socket.data!;
      state.secure = true;
      if (o.ca !== undefined) {
        const raw = socket.getPeerX509Certificate?.()?.raw;
        state.peerCertSubject = raw === undefined ? undefined : certSubject(raw);
      }
      queue.push(state);
    },
    close(socket, error) {
      const timer = handshaking.get(socket);
      if (timer !== undefined) {
        clearTimeout(timer);
        handshaking.delete(socket);
        if (!queue.closed) fail(socket, error?.message ?? "closed during the handshake");
      }
      base.close(socket, error);
    },
  };
  const bunTls = (files: TlsFiles): BunTls => ({
    cert: files.cert,
    key: files.key,
    ca: files.ca,
    requestCert: files.ca !== undefined,
    rejectUnauthorized: files.ca !== undefined,
  });
  const bind = (files: TlsFiles, port: number) =>
    Bun.listen({ hostname: options.hostname, port, socket: socketHandlers, tls: bunTls(files) });
  let current: TlsFiles = o;
  let server = bind(current, options.port);
  const port = server.port;
  return Promise.resolve({
    port,
    accept: () => queue.accept(),
    close() {
      if (queue.closed) return;
      queue.close();
      server.stop(false);
      for (const [socket, timer] of handshaking) {
        clearTimeout(timer);
        socket.data?.close();
      }
      handshaking.clear();
    },
    reloadTls(files: TlsFiles): Promise<void> {
      if (queue.closed) return Promise.resolve();
      // `listener.reload({ tls })` keeps the old certificate (Bun 1.4.4), so
      // the listener is rebound on its port; open connections stay.
      server.stop(false);
      try {
        server = bind(files, port);
      } catch (err) {
        server = bind(current, port);
        return Promise.reject(err);
      }
      current = files;
      return Promise.resolve();
    },
  });
}

async function connect(options: Parameters<Runtime["connect"]>[0]): Promise<Conn> {
  if (options.tls !== undefined) return await connectNodeTls({ ...options, tls: options.tls });
  let opened: SocketState | undefined;
  const socket = await Bun.connect({
    hostname: options.hostname,
    port: options.port,
    socket: handlers((state) => opened = state),
  });
  return opened ?? socket.data!;
}

// --- Conn over a Bun server WebSocket ---

/**
 * One upgraded WebSocket, kept in `ws.data`. Inbound messages go through the
 * shared `MessageInbox`; a write sends up to `WS_SEND_BYTES_MAX` per message
 * and, when Bun answers -1 (queued under back-pressure), waits for `drain`
 * before the next, so `write` resolves when the socket took the bytes.
 */
class BunWebSocketConn implements Conn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly remoteAddr: string;
  readonly transport = "ws";
  readonly secure: boolean;
  #inbox: MessageInbox;
  #onOpen: (conn: Conn) => void;
  #ws: BunServerWebSocket | undefined;
  #closed = false;
  #drain: PromiseWithResolvers<void> | undefined;

  constructor(
    remoteAddr: string,
    messageBytesMax: number,
    secure: boolean,
    onOpen: (conn: Conn) => void,
  ) {
    this.remoteAddr = remoteAddr;
    this.secure = secure;
    this.#onOpen = onOpen;
    this.#inbox = new MessageInbox(messageBytesMax, () => this.close());
    this.readable = this.#inbox.readable;
  }

  onOpen(ws: BunServerWebSocket): void {
    this.#ws = ws;
    this.#onOpen(this);
  }

  onMessage(message: string | Uint8Array): void {
    if (!this.#inbox.push(message)) this.#ws?.close(WS_CLOSE_TOO_BIG, "message too big");
  }

  onDrain(): void {
    this.#drain?.resolve();
  }

  onClose(code: number, reason: string): void {
    this.#closed = true;
    this.#drain?.reject(new Error("the WebSocket closed while writing"));
    this.#inbox.end(closeError(code, reason));
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let off = 0; off < bytes.length; off += WS_SEND_BYTES_MAX) {
      if (this.#closed || this.#ws === undefined) throw new Error("write to a closed WebSocket");
      const n = this.#ws.send(bytes.subarray(off, Math.min(bytes.length, off + WS_SEND_BYTES_MAX)));
      if (n === 0) {
        throw new Error("the WebSocket dropped a message (over its back-pressure limit)");
      }
      if (n < 0) {
        this.#drain = Promise.withResolvers();
        await this.#drain.promise;
        this.#drain = undefined;
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inbox.end();
    this.#ws?.close(WS_CLOSE_NORMAL);
  }
}

/** The WebSocket handlers of `Bun.serve`; each socket finds its `Conn` in `ws.data`. */
function webSocketHandlers(messageBytesMax: number): BunWebSocketHandlers {
  return {
    open: (ws) => ws.data.onOpen(ws),
    message: (ws, message) => ws.data.onMessage(message),
    drain: (ws) => ws.data.onDrain(),
    close: (ws, code, reason) => ws.data.onClose(code, reason),
    maxPayloadLength: messageBytesMax,
    // A write waits for `drain` after every message Bun had to queue, so at
    // most one message (WS_SEND_BYTES_MAX) is buffered: this limit is never
    // reached, it only keeps Bun from dropping (0 would mean no limit at all).
    backpressureLimit: 4 * WS_SEND_BYTES_MAX,
    closeOnBackpressureLimit: false,
    // No WebSocket-level pings: the protocol's PINGs watch idle clients, as on TCP.
    idleTimeout: 0,
    sendPings: false,
    perMessageDeflate: false,
  };
}

/** What `upgrade` returns on Bun: the fetch handler then answers with nothing (Bun sends the 101). */
const UPGRADED = new Response(null); // a marker, never sent

function serveHttp(options: HttpServeOptions, handler: HttpHandler): HttpServer {
  const messageBytesMax = options.webSocket?.messageBytesMax;
  const answer = (r: Response) => r === UPGRADED ? undefined : r;
  const server = Bun.serve({
    hostname: options.hostname,
    port: options.port,
    tls: options.tls && { cert: options.tls.cert, key: options.tls.key },
    fetch: (request, srv) => {
      const upgrade: WebSocketUpgrade = (req, onOpen) => {
        if (messageBytesMax === undefined) {
          return new Response("WebSocket is off\n", { status: 404 });
        }
        const ip = srv.requestIP(req);
        const addr = ip === null ? "unknown" : `${ip.address}:${ip.port}`;
        const data = new BunWebSocketConn(addr, messageBytesMax, options.tls !== undefined, onOpen);
        if (srv.upgrade(req, { data })) return UPGRADED;
        return new Response("WebSocket upgrade failed\n", { status: 400 });
      };
      const r = handler(request, upgrade, srv.requestIP(request)?.address ?? "");
      return r instanceof Promise ? r.then(answer) : answer(r);
    },
    error: (err) => new Response(`internal error: ${err.message}\n`, { status: 500 }),
    websocket: webSocketHandlers(messageBytesMax ?? WS_SEND_BYTES_MAX),
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
  listenTls,
  connect,
  serveHttp,
  // Bun's fetch takes `tls: { ca }`.
  fetchWithCa: (url, init, ca) =>
    fetch(url, ca === undefined ? init : { ...init, tls: { ca } } as RequestInit),
  // argv is [bun, script, ...args], also in a `bun build --compile` binary.
  args: () => process.argv.slice(2),
  env: (name) => process.env[name],
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => void process.off(signal, handler);
  },
  memory() {
    const m = process.memoryUsage();
    return {
      rss: m.rss,
      heapTotal: m.heapTotal,
      heapUsed: m.heapUsed,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    };
  },
  readTextFile: (path) => readFileSync(path, "utf8"),
  stdoutIsTerminal: () => process.stdout.isTTY === true,
  writeStdout: (text) => void process.stdout.write(text),
  stdin: () => process.stdin as unknown as AsyncIterable<Uint8Array>,
  stdinIsTerminal: () => process.stdin.isTTY === true,
  setStdinRaw: (raw) => void process.stdin.setRawMode?.(raw),
  exit: (code) => process.exit(code),
};
