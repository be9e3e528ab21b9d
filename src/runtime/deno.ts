/**
 * The Deno adapter: the only file (with `bun.ts`) that may say `Deno.`.
 *
 * @module
 */
import type { Conn, HttpServer, Listener, Runtime } from "./types.ts";

function wrapConn(conn: Deno.TcpConn): Conn {
  conn.setNoDelay(true);
  const addr = conn.remoteAddr;
  let closed = false;
  return {
    readable: conn.readable,
    async write(bytes: Uint8Array): Promise<void> {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed by the peer or the readable's cancel */ }
    },
    remoteAddr: `${addr.hostname}:${addr.port}`,
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

function serveHttp(
  options: { hostname: string; port: number },
  handler: (request: Request) => Response | Promise<Response>,
): HttpServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
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
  async connect(options) {
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
  exit: (code) => Deno.exit(code),
};
