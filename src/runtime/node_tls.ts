/**
 * TLS through `node:tls`, which Deno and Bun both implement: the TLS
 * listener on Deno (see `listenTls` in deno.ts for why not `Deno.listenTls`)
 * and the TLS dialler on Bun.
 * `Conn` over a `node:tls` socket lives here too.
 *
 * @module
 */
import type net from "node:net";
import tls from "node:tls";
import { AcceptQueue } from "./accept_queue.ts";
import { Inbound } from "./inbound.ts";
import { certSubject } from "./tls_files.ts";
import type { Conn, DialTls, Listener, ListenTls, TlsFiles } from "./types.ts";

/** `Conn` over a connected `node:tls` socket. */
class TlsSocketConn implements Conn {
  readonly remoteAddr: string;
  readonly secure = true;
  readonly peerCertSubject: string | undefined;
  #socket: tls.TLSSocket;
  #closed = false;
  /** Inbound chunks, to `read()` (the broker) or `readable` (the SDK, cluster links). */
  readonly #in: Inbound = new Inbound(this);
  /** Writes whose callback has not run: failed on close, so no writer waits for ever. */
  #writes = new Set<(err: Error) => void>();

  constructor(socket: tls.TLSSocket, peerCertSubject: string | undefined) {
    this.#socket = socket;
    this.peerCertSubject = peerCertSubject;
    this.remoteAddr = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    const inbound = this.#in;
    socket.on("data", (chunk: Uint8Array) => {
      // A plain Uint8Array view (not a Buffer, whose `slice` shares memory).
      inbound.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    socket.on("end", () => inbound.end(undefined));
    socket.on("close", () => {
      inbound.end(undefined);
      this.#failWrites();
    });
    socket.on("error", (err: Error) => inbound.end(err));
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#in.readable;
  }

  /** The next chunk (owned: node hands a fresh one to each `data` event); null at the end. */
  read(): Promise<Uint8Array | null> {
    return this.#in.read();
  }

  /** Stops reading (the reader is behind). */
  pause(): void {
    this.#socket.pause();
  }

  /** Reads again. */
  resume(): void {
    this.#socket.resume();
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("write to a closed socket"));
    // The callback runs once the bytes left node's buffer: `bytes` is free again.
    return new Promise((resolve, reject) => {
      this.#writes.add(reject);
      this.#socket.write(bytes, (err) => {
        this.#writes.delete(reject);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#in.close();
    this.#socket.destroy();
    this.#failWrites();
  }

  #failWrites(): void {
    const err = new Error("connection closed");
    for (const reject of this.#writes) reject(err);
    this.#writes.clear();
  }
}

function secureOptions(files: TlsFiles): tls.SecureContextOptions {
  return { cert: files.cert, key: files.key, ca: files.ca };
}

/**
 * A `node:tls` listener. With `tls.ca` a client certificate is required and
 * must chain to it (`requestCert` + `rejectUnauthorized`); a refused one ends
 * in `tlsClientError`, which is reported and never reaches `accept()`.
 * Reload: `server.setSecureContext`, which new handshakes use and open
 * connections do not notice.
 */
export function listenNodeTls(
  options: { hostname: string; port: number; tls: ListenTls },
): Promise<Listener> {
  const o = options.tls;
  const queue = new AcceptQueue();
  const server = tls.createServer({
    ...secureOptions(o),
    requestCert: o.ca !== undefined,
    rejectUnauthorized: true,
    handshakeTimeout: o.handshakeTimeoutMs,
  });
  /**
   * Sockets in their handshake, by peer address (unique among live
   * connections to one port): bounded, so a flood of sockets that never
   * finish a handshake costs bounded memory (each also times out).
   */
  const handshaking = new Map<string, net.Socket>();
  /** Peer address of each raw socket: a failed TLS socket has lost its own by the time it is reported. */
  const peers = new WeakMap<object, string>();
  /**
   * Sockets refused for being over the bound and already reported: node:tls
   * reports each again as a `tlsClientError` (ECONNRESET, no address), which
   * must not count twice.
   */
  let refusedUnreported = 0;
  const addrOf = (socket: tls.TLSSocket): string =>
    socket.remoteAddress
      ? `${socket.remoteAddress}:${socket.remotePort}`
      // node's TLSSocket keeps the TCP socket it wraps as `_parent` (Deno 2.9);
      // only used to name the peer in the log line.
      : peers.get((socket as unknown as { _parent?: object })._parent ?? {}) ?? "?";
  server.on("connection", (raw: net.Socket) => {
    const addr = `${raw.remoteAddress}:${raw.remotePort}`;
    if (handshaking.size >= o.handshakesPendingMax) {
      refusedUnreported++;
      raw.destroy();
      return o.onHandshakeFailure(addr, "too many handshakes in progress");
    }
    peers.set(raw, addr);
    handshaking.set(addr, raw);
    raw.once("close", () => handshaking.delete(addr));
  });
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    handshaking.delete(`${socket.remoteAddress}:${socket.remotePort}`);
    if (o.ca !== undefined && !socket.authorized) {
      // rejectUnauthorized closes these before here; kept as a second lock.
      o.onHandshakeFailure(`${socket.remoteAddress}:${socket.remotePort}`, "client not authorized");
      return void socket.destroy();
    }
    const peer = o.ca === undefined ? undefined : socket.getPeerCertificate();
    queue.push(new TlsSocketConn(socket, peer?.raw ? certSubject(peer.raw) : undefined));
  });
  server.on("tlsClientError", (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    const addr = socket ? addrOf(socket) : "?";
    handshaking.delete(addr);
    if (addr === "?" && refusedUnreported > 0) {
      refusedUnreported--;
      return socket?.destroy();
    }
    o.onHandshakeFailure(addr, err.code ?? err.message.split("\n")[0]);
    socket?.destroy();
  });
  return new Promise((resolve, reject) => {
    const failed = (err: Error) => reject(err);
    server.once("error", failed);
    server.listen(options.port, options.hostname, () => {
      server.off("error", failed);
      // A later server error (none expected once bound) must not be uncaught.
      server.on("error", () => {});
      const port = (server.address() as { port: number }).port;
      resolve({
        port,
        accept: () => queue.accept(),
        close() {
          if (queue.closed) return;
          queue.close();
          server.close(); // stops listening; accepted connections stay
          for (const raw of handshaking.values()) raw.destroy();
          handshaking.clear();
        },
        reloadTls(files: TlsFiles): Promise<void> {
          server.setSecureContext(secureOptions(files));
          return Promise.resolve();
        },
      });
    });
  });
}

/** Dials a TLS connection with `node:tls`; resolves once the handshake (and the server's verification) is done. */
export function connectNodeTls(
  options: { hostname: string; port: number; tls: DialTls },
): Promise<Conn> {
  const t = options.tls;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: options.hostname,
      port: options.port,
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      servername: t.serverName ?? (isIp(options.hostname) ? undefined : options.hostname),
      rejectUnauthorized: true,
    });
    const failed = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.once("error", failed);
    socket.once("secureConnect", () => {
      socket.off("error", failed);
      resolve(new TlsSocketConn(socket, undefined));
    });
  });
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}
