/**
 * The Deno adapter: the only file (with `bun.ts`) that may say `Deno.`.
 *
 * @module
 */
import { AcceptQueue } from "./accept_queue.ts";
import { connectNodeTls, listenNodeTls } from "./node_tls.ts";
import type { Conn, DialTls, HttpServer, Listener, ListenTls, Runtime, TlsFiles } from "./types.ts";

/** Largest and smallest read buffer. */
const READ_BYTES_MAX = 64 * 1024;
const READ_BYTES_MIN = 1024;

/**
 * The socket's bytes as a stream of fresh, owned chunks (the parser hands out
 * views into them). `conn.readable` allocates 64 KiB for every read: with
 * small reads (request/reply) that is ~1000x more external memory than data,
 * and V8 ran a full mark-compact every 20-100 ms to account for it (seen with
 * --trace-gc: p99.9 round trips of 8-9 ms). Here the buffer is sized from the
 * last read (twice it, 1-64 KiB), so a bulk publisher still reads 64 KiB at a
 * time and a chatty or idle client allocates about what it sends.
 */
function readableOf(conn: Deno.Conn, onCancel: () => void): ReadableStream<Uint8Array> {
  // The first read is small: a connection waits in a read most of its life, so
  // its buffer is what an idle connection costs (at 64 KiB, 10,000 idle
  // connections held 640 MB); a bulk sender doubles it to 64 KiB in 6 reads.
  let size = READ_BYTES_MIN;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buf = new Uint8Array(size);
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch (err) {
        if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
          return controller.close();
        }
        return controller.error(err);
      }
      if (n === null) return controller.close();
      if (n === size) size = Math.min(size * 2, READ_BYTES_MAX);
      else {
        let want = READ_BYTES_MIN;
        while (want < 2 * n && want < READ_BYTES_MAX) want *= 2;
        size = want;
      }
      controller.enqueue(n === buf.length ? buf : buf.subarray(0, n));
    },
    cancel: onCancel,
  }, { highWaterMark: 1 });
}

function wrapConn(conn: Deno.Conn, secure = false): Conn {
  // A TlsConn has no setNoDelay (Deno 2.9).
  (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
  const addr = conn.remoteAddr;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch { /* already closed by the peer */ }
  };
  return {
    readable: readableOf(conn, close),
    async write(bytes: Uint8Array): Promise<void> {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    },
    close,
    remoteAddr: `${(addr as Deno.NetAddr).hostname}:${(addr as Deno.NetAddr).port}`,
    secure,
  };
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
        return wrapConn(await listener.accept());
      } catch (err) {
        if (closed || err instanceof Deno.errors.BadResource) return undefined;
        throw err;
      }
    },
  };
}

/**
 * TLS listener: `Deno.listenTls` (rustls, the fastest path) without a CA;
 * with one, `node:tls`, since `Deno.listenTls` cannot verify client
 * certificates.
 */
function listenTls(options: { hostname: string; port: number; tls: ListenTls }): Promise<Listener> {
  if (options.tls.ca !== undefined) return listenNodeTls(options);
  return Promise.resolve(listenRustls(options));
}

/**
 * `Deno.listenTls` behind a pump: each accepted socket does its handshake on
 * its own (bounded in time and in number), and only finished ones reach
 * `accept()`, so one slow or broken client never holds up the others and a
 * failed handshake (`UnknownCA`, a plain client) never reaches the server.
 *
 * Reload: a `Deno.TlsListener` cannot change its certificate, so the
 * listener is closed and a new one bound to the same port with the new
 * files; open connections keep theirs. Between the two a connect is refused
 * (clients reconnect); `reusePort` would close that gap but would also let a
 * second broker share the port silently instead of failing to start.
 */
function listenRustls(options: { hostname: string; port: number; tls: ListenTls }): Listener {
  const o = options.tls;
  const queue = new AcceptQueue();
  const handshaking = new Set<Deno.TlsConn>();
  const bind = (files: TlsFiles, port: number) =>
    Deno.listenTls({ hostname: options.hostname, port, cert: files.cert, key: files.key });
  let current: TlsFiles = o;
  let listener = bind(current, options.port);
  const port = (listener.addr as Deno.NetAddr).port;

  const handshake = (conn: Deno.TlsConn) => {
    const addr = conn.remoteAddr as Deno.NetAddr;
    const remote = `${addr.hostname}:${addr.port}`;
    if (handshaking.size >= o.handshakesPendingMax) {
      conn.close();
      return o.onHandshakeFailure(remote, "too many handshakes in progress");
    }
    handshaking.add(conn);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close(); // the pending handshake then rejects
    }, o.handshakeTimeoutMs);
    conn.handshake().then(() => {
      clearTimeout(timer);
      handshaking.delete(conn);
      queue.push(wrapConn(conn, true));
    }, (err: Error) => {
      clearTimeout(timer);
      handshaking.delete(conn);
      try {
        conn.close();
      } catch { /* closed by the timeout */ }
      if (queue.closed) return;
      o.onHandshakeFailure(remote, timedOut ? "handshake timed out" : err.message.split("\n")[0]);
    });
  };

  const pump = async (l: Deno.TlsListener) => {
    let backoffMs = 5;
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await l.accept();
      } catch (err) {
        // Closed (by close() or a reload), or replaced by a reload.
        if (queue.closed || l !== listener || err instanceof Deno.errors.BadResource) return;
        // EMFILE and the like: wait, as the server's accept loop does.
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 1000);
        continue;
      }
      backoffMs = 5;
      handshake(conn);
    }
  };
  let pumping = pump(listener);

  return {
    port,
    accept: () => queue.accept(),
    close() {
      if (queue.closed) return;
      queue.close();
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of handshaking) c.close();
      handshaking.clear();
    },
    async reloadTls(files: TlsFiles): Promise<void> {
      if (queue.closed) return;
      listener.close();
      // The port is free only once the pending accept has let go of it.
      await pumping;
      if (queue.closed) return;
      try {
        listener = bind(files, port);
      } catch (err) {
        listener = bind(current, port); // keep serving the old certificate
        pumping = pump(listener);
        throw err;
      }
      current = files;
      pumping = pump(listener);
    },
  };
}

/** Dials TLS: `Deno.connectTls` (client certificates included). */
async function connectTls(options: { hostname: string; port: number; tls: DialTls }) {
  const t = options.tls;
  if (t.serverName !== undefined && t.serverName !== options.hostname) {
    // Deno.connectTls checks the name it dials; node:tls can check another.
    return await connectNodeTls(options);
  }
  const conn = await Deno.connectTls({
    hostname: options.hostname,
    port: options.port,
    caCerts: t.ca === undefined ? undefined : [t.ca],
    cert: t.cert,
    key: t.key,
  });
  try {
    await conn.handshake();
  } catch (err) {
    conn.close();
    throw err;
  }
  return wrapConn(conn, true);
}

function serveHttp(
  options: { hostname: string; port: number; tls?: TlsFiles },
  handler: (request: Request) => Response | Promise<Response>,
): HttpServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    cert: options.tls?.cert,
    key: options.tls?.key,
    onListen() {},
  }, handler);
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
  args: () => Deno.args,
  env: (name) => Deno.env.get(name),
  onSignal(signal, handler) {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  memory() {
    const m = Deno.memoryUsage();
    return { rss: m.rss, heapUsed: m.heapUsed };
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
