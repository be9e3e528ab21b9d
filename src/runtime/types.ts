/**
 * The seam between the broker and its runtime: everything the core needs from
 * Deno or Bun, and nothing more. Only files in `src/runtime/` implement these.
 *
 * @module
 */

/** One accepted or dialled TCP connection. */
export interface Conn {
  /** Inbound bytes; each chunk is owned by the reader (never reused by the runtime). */
  readonly readable: ReadableStream<Uint8Array>;
  /**
   * The next inbound chunk, owned by the caller as `readable`'s are; null at
   * the end; rejects on a read error. Optional: a faster path than
   * `readable` (no web-stream hop per chunk) where the runtime has one. A
   * reader uses one of the two, never both; `close()` ends a pending read.
   * `free`: the chunk this returned last, when nothing points into it any
   * more, so the runtime may read into its memory again instead of
   * allocating (it may also ignore it).
   */
  read?(free?: Uint8Array): Promise<Uint8Array | null>;
  /** Writes all of `bytes`; the caller must not touch `bytes` until it resolves. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes both directions; safe to call twice. */
  close(): void;
  /** `host:port` of the peer. */
  readonly remoteAddr: string;
  /** `ws` for a WebSocket; TCP sockets leave it out. */
  readonly transport?: "ws";
  /** Whether the bytes travel under TLS (a `tls` listener, or `wss`). */
  readonly secure?: boolean;
  /** The verified client certificate's subject (`CN=alice,O=Acme`), under mTLS only. */
  readonly peerCertSubject?: string;
}

/** TLS material as PEM text, read from the files at start-up (and again on SIGHUP). */
export interface TlsFiles {
  /** The server's certificate chain, leaf first. */
  cert: string;
  /** The private key of `cert`. */
  key: string;
  /** CA bundle client certificates must chain to; set: mTLS, a client certificate is required. */
  ca?: string;
}

/** TLS of a listener. */
export interface ListenTls extends TlsFiles {
  /** A failed or timed-out handshake; the socket is already closed and the accept loop goes on. */
  onHandshakeFailure(remoteAddr: string, reason: string): void;
  /** Time a handshake may take. */
  handshakeTimeoutMs: number;
  /** Handshakes in progress at once; more are refused (and reported as failures). */
  handshakesPendingMax: number;
}

/** TLS of a dialled connection; PEM text. Without `ca`: the system's roots. */
export interface DialTls {
  /** CA bundle the server certificate must chain to. */
  ca?: string;
  /** Client certificate (mTLS), with `key`. */
  cert?: string;
  /** Private key of `cert`. */
  key?: string;
  /** Name the server certificate must carry (default: the host dialled). */
  serverName?: string;
}

/** A TCP listener. */
export interface Listener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** The next connection; undefined once the listener is closed. Throws on accept errors. */
  accept(): Promise<Conn | undefined>;
  /** Stops accepting; a pending `accept()` resolves to undefined. */
  close(): void;
  /** TLS listeners: new connections get `files`, open ones keep theirs. Throws on bad files. */
  reloadTls?(files: TlsFiles): Promise<void>;
}

/** An HTTP server started by the runtime around a plain handler. */
export interface HttpServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops serving; resolves when in-flight requests are done. */
  close(): Promise<void>;
}

/** Settings of an HTTP server. */
export interface HttpServeOptions {
  hostname: string;
  port: number;
  /** HTTPS (and `wss://` for WebSockets) with this certificate. */
  tls?: TlsFiles;
  /** WebSocket settings; upgrades are refused without them. */
  webSocket?: {
    /** Largest inbound WebSocket message; a bigger one closes the socket with 1009. */
    messageBytesMax: number;
  };
}

/**
 * Turns an HTTP request into a WebSocket: returns the response the handler
 * must return (Deno: the 101; Bun: a marker the adapter answers with
 * nothing), and calls `onOpen` with the socket as a `Conn` once it is open.
 * Only call it for a request with `Upgrade: websocket`.
 */
export type WebSocketUpgrade = (request: Request, onOpen: (conn: Conn) => void) => Response;

/**
 * A plain HTTP handler; `upgrade` turns the request into a WebSocket; `peer`
 * is the client's IP address (failed HTTP logins count per address, as on
 * the client port).
 */
export type HttpHandler = (
  request: Request,
  upgrade: WebSocketUpgrade,
  peer: string,
) => Response | Promise<Response>;

/**
 * The process's memory, in bytes. `external` is memory the JS engine knows is
 * held outside its heap (ArrayBuffer backing stores above all: read chunks,
 * outbound buffers, message slabs); `arrayBuffers` is the ArrayBuffer part of
 * it where the runtime counts that separately, else null (Deno does not).
 */
export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number | null;
}

/** What the broker asks of the runtime. */
export interface Runtime {
  /** `deno` or `bun`. */
  readonly name: string;
  /** Runtime version, for `--version` and `/api/stats`. */
  readonly version: string;
  /** Binds a TCP listener (port 0: any free port). */
  listen(options: { hostname: string; port: number }): Listener;
  /**
   * Binds a TLS listener: `accept()` yields connections whose handshake
   * succeeded (with `tls.ca`: whose client certificate chains to it); failed
   * handshakes go to `tls.onHandshakeFailure`, never to `accept()`.
   */
  listenTls(options: { hostname: string; port: number; tls: ListenTls }): Promise<Listener>;
  /** Dials a TCP connection; with `tls`, resolves once the TLS handshake is done. */
  connect(options: { hostname: string; port: number; tls?: DialTls }): Promise<Conn>;
  /** Serves a plain `(Request) => Response` handler over HTTP (HTTPS with `tls`), WebSocket upgrades included. */
  serveHttp(options: HttpServeOptions, handler: HttpHandler): HttpServer;
  /** `fetch` that also trusts `ca` (PEM) for HTTPS: monitoring endpoints with a private CA. */
  fetchWithCa(url: string, init: RequestInit, ca: string | undefined): Promise<Response>;
  /** Command line arguments after the script. */
  args(): string[];
  /** Environment variable or undefined. */
  env(name: string): string | undefined;
  /** Registers a signal handler (SIGINT, SIGTERM; SIGHUP reloads users and certificates); returns the remover. */
  onSignal(signal: "SIGINT" | "SIGTERM" | "SIGHUP", handler: () => void): () => void;
  /** Resident set size, heap and memory outside the heap, in bytes (see `MemoryUsage`). */
  memory(): MemoryUsage;
  /** Reads a whole text file (config files). */
  readTextFile(path: string): string;
  /** Whether stdout is a terminal (colours, progress lines). */
  stdoutIsTerminal(): boolean;
  /** Writes text to stdout as it is, no newline added (a progress line redrawn in place). */
  writeStdout(text: string): void;
  /** Standard input, chunk by chunk. */
  stdin(): AsyncIterable<Uint8Array>;
  /** Whether stdin is a terminal (`relayr passwd` then reads without echo). */
  stdinIsTerminal(): boolean;
  /** Raw mode of a terminal stdin: no echo, no line editing (a password prompt). */
  setStdinRaw(raw: boolean): void;
  /** Ends the process with `code`. */
  exit(code: number): never;
}
