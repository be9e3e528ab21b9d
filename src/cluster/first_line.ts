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
import type { Conn } from "../runtime/mod.ts";

const decoder = new TextDecoder();

/** The first line (without its line end), and the bytes read behind it. */
export interface FirstLine {
  readonly line: string;
  readonly rest: Uint8Array;
}

/**
 * Reads until the first line end (at most `CLUSTER_FIRST_LINE_BYTES_MAX`
 * bytes); undefined when the connection ends first. Throws on a line too long.
 * `have`: bytes already read from `conn` (behind the handshake, link_auth.ts).
 */
export function firstLine(conn: Conn, have?: Uint8Array): Promise<FirstLine | undefined> {
  return readLine(conn, have ?? new Uint8Array(0), CLUSTER_FIRST_LINE_BYTES_MAX, "first line");
}

/**
 * One line of at most `max` bytes from `have` and then `conn`, and the bytes
 * read behind it; undefined when the connection ends first. Throws on a line
 * too long (`what` names it).
 */
export async function readLine(
  conn: Conn,
  have: Uint8Array,
  max: number,
  what: string,
): Promise<FirstLine | undefined> {
  // Deno's `read()` first, the web stream made only for a HELLO link later; Bun has the stream only.
  const reader = conn.read === undefined ? conn.readable.getReader() : undefined;
  try {
    for (let reads = 0; reads <= max; reads++) {
      const lf = have.indexOf(10);
      if (lf >= 0) {
        if (lf > max) break;
        const end = lf > 0 && have[lf - 1] === 13 ? lf - 1 : lf;
        return { line: decoder.decode(have.subarray(0, end)), rest: have.subarray(lf + 1) };
      }
      if (have.length > max) break;
      const chunk = reader === undefined ? await conn.read!() : (await reader.read()).value;
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
