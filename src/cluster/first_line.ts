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
 */
export async function firstLine(conn: Conn): Promise<FirstLine | undefined> {
  let have: Uint8Array = new Uint8Array(0);
  // Deno's `read()` first, the web stream made only for a HELLO link later; Bun has the stream only.
  const reader = conn.read === undefined ? conn.readable.getReader() : undefined;
  try {
    for (let reads = 0; reads < CLUSTER_FIRST_LINE_BYTES_MAX; reads++) {
      const chunk = reader === undefined ? await conn.read!() : (await reader.read()).value;
      if (chunk == null) return undefined;
      const all = have.length === 0 ? chunk : concat(have, chunk);
      const lf = all.indexOf(10);
      if (lf >= 0) {
        if (lf > CLUSTER_FIRST_LINE_BYTES_MAX) break;
        const end = lf > 0 && all[lf - 1] === 13 ? lf - 1 : lf;
        return { line: decoder.decode(all.subarray(0, end)), rest: all.subarray(lf + 1) };
      }
      if (all.length > CLUSTER_FIRST_LINE_BYTES_MAX) break;
      have = all;
    }
  } finally {
    reader?.releaseLock();
  }
  throw new Error(`first line over ${CLUSTER_FIRST_LINE_BYTES_MAX} bytes`);
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
