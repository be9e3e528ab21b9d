/**
 * The first line of a connection on the cluster port says what it is
 * (`HELLO <node-id>`: the topic link; `PROXY <node-id>`: a peer forwarding a
 * client's queue commands, served as a client connection). `firstLine`
 * reads it without taking the rest: what came behind it in the same chunks
 * is handed on, and `PrefixedConn` gives a proxied connection's reader those
 * bytes first.
 *
 * @module
 */
import { CLUSTER_FIRST_LINE_BYTES_MAX } from "../config/mod.ts";
import { type Conn, readChunk } from "../runtime/mod.ts";

const decoder = new TextDecoder();

/** The first line (without its line end), and the bytes read behind it. */
export interface FirstLine {
  readonly line: string;
  readonly rest: Uint8Array;
}

/**
 * What a connection sent instead of a cluster line (a TLS handshake from a
 * node with link TLS, an HTTP request, a port scan). Its message names at
 * most a short escaped prefix of the bytes, never the bytes themselves: it
 * goes to the log.
 */
export class NotClusterLineError extends SyntaxError {
  constructor(bytes: Uint8Array) {
    super(describe(bytes));
    this.name = "NotClusterLineError";
  }
}

/** Bytes of what was sent that a refusal names (escaped). */
const PREFIX_BYTES = 16;
/** A TLS record of the handshake type (a ClientHello opens with it). */
const TLS_HANDSHAKE = 0x16;

function describe(b: Uint8Array): string {
  if (b[0] === TLS_HANDSHAKE && (b.length < 2 || b[1] === 3)) {
    return "a TLS handshake, not a cluster line (link TLS on at the peer, not here?)";
  }
  let text = "";
  for (const c of b.subarray(0, PREFIX_BYTES)) {
    const printable = c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c;
    text += printable ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return `not a cluster line (starts "${text}"${b.length > PREFIX_BYTES ? "..." : ""})`;
}

/** A first line opens with its operation's first letter (`HELLO`, `PROXY`, `REPL`). */
const LETTER = (c: number) => c >= 0x41 && c <= 0x5a;

/**
 * Reads until the first line end (at most `CLUSTER_FIRST_LINE_BYTES_MAX`
 * bytes); undefined when the connection ends first. Throws on a line too long,
 * and at the first byte when it cannot start a cluster line
 * (`NotClusterLineError`: a TLS ClientHello is refused at once, not read
 * until its size or the timeout ends it).
 * `have`: bytes already read from `conn` (behind the handshake, link_auth.ts).
 */
export function firstLine(conn: Conn, have?: Uint8Array): Promise<FirstLine | undefined> {
  const from = have ?? new Uint8Array(0);
  return readLine(conn, from, CLUSTER_FIRST_LINE_BYTES_MAX, "first line", LETTER);
}

/**
 * One line of at most `max` bytes from `have` and then `conn`, and the bytes
 * read behind it; undefined when the connection ends first. Throws on a line
 * too long (`what` names it), or when `starts` refuses its first byte.
 */
export async function readLine(
  conn: Conn,
  have: Uint8Array,
  max: number,
  what: string,
  starts?: (byte: number) => boolean,
): Promise<FirstLine | undefined> {
  // The runtime's `read()` where it has one (TCP and TLS on Deno and Bun), the web stream made only for a HELLO link later.
  const reader = conn.read === undefined ? conn.readable.getReader() : undefined;
  try {
    for (let reads = 0; reads <= max; reads++) {
      if (starts !== undefined && have.length > 0 && !starts(have[0])) {
        throw new NotClusterLineError(have);
      }
      const lf = have.indexOf(10);
      if (lf >= 0) {
        if (lf > max) break;
        const end = lf > 0 && have[lf - 1] === 13 ? lf - 1 : lf;
        return { line: decoder.decode(have.subarray(0, end)), rest: have.subarray(lf + 1) };
      }
      if (have.length > max) break;
      const chunk = await readChunk(conn, reader);
      if (chunk == null) return undefined;
      have = have.length === 0 ? chunk : concat(have, chunk);
    }
  } finally {
    reader?.releaseLock();
  }
  throw new Error(`${what} over ${max} bytes`);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** A connection whose reader gets `rest` (bytes already read) first, then the socket's. */
export class PrefixedConn implements Conn {
  readonly #conn: Conn;
  #rest: Uint8Array | undefined;
  #readable: ReadableStream<Uint8Array> | undefined = undefined;
  readonly read?: (free?: Uint8Array) => Promise<Uint8Array | null>;

  constructor(conn: Conn, rest: Uint8Array) {
    this.#conn = conn;
    this.#rest = rest.length > 0 ? rest : undefined;
    if (conn.read !== undefined) {
      this.read = (free) => {
        const r = this.#rest;
        if (r === undefined) return conn.read!(free);
        this.#rest = undefined;
        return Promise.resolve(r);
      };
    }
  }

  get readable(): ReadableStream<Uint8Array> {
    if (this.#readable !== undefined) return this.#readable;
    const reader = this.#conn.readable.getReader();
    return this.#readable = new ReadableStream<Uint8Array>({
      pull: async (c) => {
        const r = this.#rest;
        if (r !== undefined) {
          this.#rest = undefined;
          return c.enqueue(r);
        }
        const { value, done } = await reader.read();
        if (done) c.close();
        else c.enqueue(value);
      },
      cancel: (why) => reader.cancel(why),
    });
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.#conn.write(bytes);
  }

  close(): void {
    this.#conn.close();
  }

  get remoteAddr(): string {
    return this.#conn.remoteAddr;
  }

  get secure(): boolean | undefined {
    return this.#conn.secure;
  }
}
