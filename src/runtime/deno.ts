/**
 * The Deno adapter: the only file (with `bun.ts`) that may say `Deno.`.
 *
 * @module
 */
import { webSocketConn } from "../websocket/mod.ts";
import { connectNodeTls, listenNodeTls } from "./node_tls.ts";
import {
  CONN_READ_DENO_BYTES_MAX,
  CONN_READ_POOL_BUFFERS_MAX,
  CONN_READ_QUIET_BYTES_MAX,
} from "../config/limits.ts";
import { ReadBuffer, ReadBufferPool } from "./read_buffer.ts";
import type {
  Conn,
  DialTls,
  HttpHandler,
  HttpServeOptions,
  HttpServer,
  Listener,
  ListenTls,
  Runtime,
  WebSocketUpgrade,
} from "./types.ts";

/** Errors of a read that only mean the connection has ended. */
function isEnd(err: unknown): boolean {
  // UnexpectedEof: a TLS peer closed without close_notify (our node:tls
  // side does, on Deno and Bun). Frames say their own length, so a cut
  // cannot pass for a whole frame: it is an end like any other.
  return err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.UnexpectedEof;
}

/**
 * Full-size read buffers of the broker's connections whose sockets ran dry,
 * for the next one with bytes waiting (`ReadBuffer`'s quiet rule).
 */
const readPool = new ReadBufferPool(CONN_READ_DENO_BYTES_MAX, CONN_READ_POOL_BUFFERS_MAX);

/**
 * One Deno socket as a `Conn`: one object per connection, its methods on the
 * prototype. An object literal of closures (as this was) cost ~1 KiB of heap
 * per connection: eight closures, their context, and a properties store in
 * dictionary mode (the accessor), the largest single item of an idle
 * connection's heap snapshot.
 *
 * It reads the socket into fresh, owned chunks (the parser hands out views
 * into them, and messages keep pointing there). `conn.readable` allocates 64
 * KiB for every read: with small reads (request/reply) that is ~1000x more
 * external memory than data, and V8 ran a full mark-compact every 20-100 ms to
 * account for it (seen with --trace-gc: p99.9 round trips of 8-9 ms). Here the
 * buffer is sized from the last reads (`ReadBuffer`: 256 B-256 KiB), so a bulk
 * publisher reads 256 KiB at a time into the same buffer and a chatty or idle
 * client allocates about what it sends.
 */
class DenoConn implements Conn {
  readonly remoteAddr: string;
  readonly secure: boolean;
  readonly #conn: Deno.Conn;
  #closed = false;
  // The first read is small: a connection waits in a read most of its life, so
  // its buffer is what an idle connection costs (at 64 KiB, 10,000 idle
  // connections held 640 MB); a bulk sender doubles it to 256 KiB in 10 reads.
  readonly #buf: ReadBuffer;
  /** `read()` as a web stream, made on first use: the broker reads with `read()`. */
  #readable: ReadableStream<Uint8Array> | undefined = undefined;

  /**
   * `accepted`: a connection of the broker's listener, of many: its big read
   * buffer goes back to a shared pool whenever its socket runs dry, and a
   * read that waits waits in 256 B (a dialled one, the SDK's, keeps its own).
   */
  constructor(conn: Deno.Conn, secure: boolean, accepted: boolean) {
    this.#buf = accepted
      ? new ReadBuffer(CONN_READ_DENO_BYTES_MAX, readPool, CONN_READ_QUIET_BYTES_MAX)
      : new ReadBuffer(CONN_READ_DENO_BYTES_MAX);
    // A TlsConn has no setNoDelay (Deno 2.9).
    (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    this.#conn = conn;
    this.secure = secure;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddr = `${addr.hostname}:${addr.port}`;
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let chunk: Uint8Array | null;
        try {
          chunk = await this.read();
        } catch (err) {
          return controller.error(err);
        }
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => this.close(),
    }, { highWaterMark: 1 });
  }

  /**
   * The next chunk; null at the end (or once the connection was closed).
   * `free` (the last chunk, nothing points into it) is read into again (see
   * `ReadBuffer`). Not an async function: one suspended async frame less per
   * waiting connection (its generator, promise and two await closures, ~0.4
   * KiB of heap) and per read.
   */
  read(free?: Uint8Array): Promise<Uint8Array | null> {
    return this.#conn.read(this.#buf.take(free)).then(this.#got, this.#failed);
  }

  /** Bytes of read buffer it holds between reads (its pending read's). */
  get readBufferBytes(): number {
    return this.#buf.bytes;
  }

  #got = (n: number | null): Uint8Array | null => n === null ? null : this.#buf.got(n);

  #failed = (err: unknown): null => {
    if (isEnd(err)) return null;
    throw err;
  };

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed by the peer */ }
  }
}

function wrapConn(conn: Deno.Conn, secure = false, accepted = false): Conn {
  return new DenoConn(conn, secure, accepted);
}

function listen(options: { hostname: string; port: number }): Listener {
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
    transport: "tcp",
  });
  let closed = false;
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch { /* closed */ }
    },
    async accept(): Promise<Conn | undefined> {
      if (closed) return undefined;
      try {
        return wrapConn(await listener.accept(), false, true);
      } catch (err) {
        if (closed || err instanceof Deno.errors.BadResource) return undefined;
        throw err;
      }
    },
  };
}

/**
 * TLS listener: `node:tls`, with and without client certificates.
 * `Deno.listenTls` (rustls) cannot verify client certificates (a `caCerts`
 * option there is silently ignored), and for the broker's traffic it was the
 * slower one as well: `deno task bench --systems relayr-tls --scenarios sub`
 * ran 0.46-0.67 M msgs/s at 16 B and 44-49 k at 4 KiB on it, 1.24-1.33 M and
 * 58-78 k on `node:tls` (same machine, back to back). Its sockets also cannot
 * turn Nagle off, and it cannot change its certificate without a rebind.
 */
function listenTls(options: { hostname: string; port: number; tls: ListenTls }): Promise<Listener> {
  return listenNodeTls(options);
}

/**
 * Dials TLS. Without a client certificate: TCP with Nagle off, then
 * `Deno.startTls` (a `TlsConn` cannot turn Nagle off itself, and small
 * pipelined commands would wait for ACKs); `serverName` is the name checked.
 * With one: `Deno.connectTls` (`startTls` takes no client certificate), or
 * `node:tls` when the name to check is not the host dialled.
 */
async function connectTls(options: { hostname: string; port: number; tls: DialTls }) {
  const t = options.tls;
  const caCerts = t.ca === undefined ? undefined : [t.ca];
  let conn: Deno.TlsConn;
  if (t.cert === undefined) {
    const tcp = await Deno.connect({ hostname: options.hostname, port: options.port });
    tcp.setNoDelay(true);
    conn = await Deno.startTls(tcp, { hostname: t.serverName ?? options.hostname, caCerts });
  } else if (t.serverName !== undefined && t.serverName !== options.hostname) {
    return await connectNodeTls(options);
  } else {
    const { hostname, port } = options;
    conn = await Deno.connectTls({ hostname, port, caCerts, cert: t.cert, key: t.key });
  }
  try {
    await conn.handshake();
  } catch (err) {
    conn.close();
    throw err;
  }
  return wrapConn(conn, true);
}

function serveHttp(options: HttpServeOptions, handler: HttpHandler): HttpServer {
  const messageBytesMax = options.webSocket?.messageBytesMax;
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    cert: options.tls?.cert,
    key: options.tls?.key,
    onListen() {},
  }, (request, info) => {
    const upgrade: WebSocketUpgrade = (req, onOpen) => {
      if (messageBytesMax === undefined) {
        return new Response("WebSocket is off\n", { status: 404 });
      }
      // idleTimeout 0: no WebSocket-level pings; the protocol's PINGs watch
      // idle clients, as on TCP (and as on Bun).
      // The address first: the request is closed to it after the upgrade.
      const addr = info.remoteAddr as Deno.NetAddr;
      let upgraded: { socket: WebSocket; response: Response };
      try {
        upgraded = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
      } catch (e) {
        // A handshake without a key or version, say: the client's mistake, not a 500.
        return new Response(`bad WebSocket handshake: ${(e as Error).message}\n`, { status: 400 });
      }
      const { socket, response } = upgraded;
      const at = `${addr.hostname}:${addr.port}`;
      const conn = webSocketConn(socket, at, messageBytesMax, options.tls !== undefined);
      socket.addEventListener("open", () => onOpen(conn), { once: true });
      return response;
    };
    return handler(request, upgrade, (info.remoteAddr as Deno.NetAddr).hostname);
  });
  return {
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}

/** The Deno runtime. */
export const denoRuntime: Runtime = {
  name: "deno",
  version: Deno.version.deno,
  listen,
  listenTls,
  async connect(options) {
    if (options.tls !== undefined) return await connectTls({ ...options, tls: options.tls });
    return wrapConn(await Deno.connect({ hostname: options.hostname, port: options.port }));
  },
  serveHttp,
  async fetchWithCa(url, init, ca) {
    if (ca === undefined) return await fetch(url, init);
    const client = Deno.createHttpClient({ caCerts: [ca] });
    try {
      const res = await fetch(url, { ...init, client });
      // The body is read here, so that the client can be closed (no leaked resource).
      return new Response(await res.arrayBuffer(), res);
    } finally {
      client.close();
    }
  },
  args: () => Deno.args,
  env: (name) => Deno.env.get(name),
  onSignal(signal, handler) {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  memory() {
    // Deno counts ArrayBuffer backing stores in `external` and has no separate figure.
    const m = Deno.memoryUsage();
    return { ...m, arrayBuffers: null };
  },
  readTextFile: (path) => Deno.readTextFileSync(path),
  stdoutIsTerminal: () => Deno.stdout.isTerminal(),
  writeStdout(text) {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
  },
  stdin: () => Deno.stdin.readable,
  stdinIsTerminal: () => Deno.stdin.isTerminal(),
  setStdinRaw: (raw) => Deno.stdin.setRaw(raw),
  exit: (code) => Deno.exit(code),
};
