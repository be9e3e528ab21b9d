/**
 * Test helpers: an in-process broker on a free port and a raw protocol client
 * over a real TCP socket. No mocks: everything goes through the wire.
 */
import assert from "node:assert/strict";
import { type Running, startBroker } from "../src/app.ts";
import { type Config, loadConfig } from "../src/config/config.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import type { Conn } from "../src/runtime/mod.ts";
import { webSocketConn } from "../src/websocket/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A config with defaults, overridden by `args` (flag syntax). */
export function testConfig(args: string[] = []): Config {
  return loadConfig({
    args: [
      ...["--host", "127.0.0.1", "--port", "0", "--no-http"],
      ...(args.includes("--grpc-port") ? [] : ["--no-grpc"]),
      ...args,
    ],
    env: () => undefined,
    readFile: () => {
      throw new Error("no config file in tests");
    },
  }).config;
}

/** Starts a broker on 127.0.0.1 and a free port. */
export async function startTestBroker(args: string[] = []): Promise<Running & { port: number }> {
  const running = await startBroker(denoRuntime, testConfig(args));
  return Object.assign(running, { port: running.server.port });
}

/** A frame read from the server. */
export interface ServerFrame {
  line: string;
  /** For MSG: the payload. */
  payload?: Uint8Array;
  /** For MSG: the options by key, plus `dest`. */
  fields?: Record<string, string>;
}

/**
 * A raw protocol client: write bytes, read lines and MSG frames, with timeouts.
 * Over TCP (`connect`) or a WebSocket (`webSocket`: each `send` is one message).
 */
export class RawClient {
  #conn: Conn;
  #buf = new Uint8Array(0);
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #eof = false;

  private constructor(conn: Conn) {
    this.#conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /** Connects to the broker on `port`. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await denoRuntime.connect({ hostname: "127.0.0.1", port }));
  }

  /** Opens a WebSocket to `url` (`ws://127.0.0.1:<port>/ws`). */
  static async webSocket(url: string): Promise<RawClient> {
    const ws = new WebSocket(url);
    const conn = webSocketConn(ws, url, 64 * 1024 * 1024);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("close", (e) => reject(new Error(`WebSocket closed: ${e.code}`)), {
        once: true,
      });
    });
    return new RawClient(conn);
  }

  /** Writes a string or bytes (over a WebSocket: as one message). */
  async send(data: string | Uint8Array): Promise<void> {
    await this.#conn.write(typeof data === "string" ? encoder.encode(data) : data);
  }

  /** Sends a PUB with the given payload and options. */
  pub(dest: string, body: string | Uint8Array, opts = ""): Promise<void> {
    const payload = typeof body === "string" ? encoder.encode(body) : body;
    const head = encoder.encode(`PUB ${dest}${opts ? " " + opts : ""} ${payload.length}\r\n`);
    const all = new Uint8Array(head.length + payload.length + 2);
    all.set(head);
    all.set(payload, head.length);
    all.set([13, 10], head.length + payload.length);
    return this.send(all);
  }

  async #fill(deadline: number): Promise<boolean> {
    if (this.#eof) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now()))
    );
    let read;
    try {
      read = await Promise.race([this.#pendingRead ??= this.#reader.read(), timeout]);
    } finally {
      clearTimeout(timer); // also when the read fails (the server died): no timer left behind
    }
    if (read === "timeout") return false;
    this.#pendingRead = undefined;
    if (read.done) {
      this.#eof = true;
      return false;
    }
    const merged = new Uint8Array(this.#buf.length + read.value.length);
    merged.set(this.#buf);
    merged.set(read.value, this.#buf.length);
    this.#buf = merged;
    return true;
  }
  #pendingRead: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  /** The next line (without CRLF); throws on timeout or EOF. */
  async line(timeoutMs = 2000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lf = this.#buf.indexOf(10);
      if (lf >= 0) {
        const end = lf > 0 && this.#buf[lf - 1] === 13 ? lf - 1 : lf;
        const line = decoder.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.slice(lf + 1);
        return line;
      }
      if (!(await this.#fill(deadline))) {
        throw new Error(
          this.#eof ? "connection closed by the server" : `no line within ${timeoutMs} ms`,
        );
      }
    }
  }

  /** The next frame; MSG frames come with their payload and parsed fields. */
  async frame(timeoutMs = 2000): Promise<ServerFrame> {
    const line = await this.line(timeoutMs);
    if (!line.startsWith("MSG ")) return { line };
    const parts = line.split(" ");
    const size = Number(parts[parts.length - 1]);
    const fields: Record<string, string> = { dest: parts[1] };
    for (const p of parts.slice(2, -1)) {
      const i = p.indexOf(":");
      fields[i < 0 ? p : p.slice(0, i)] = i < 0 ? "" : p.slice(i + 1);
    }
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length < size + 2) {
      if (!(await this.#fill(deadline))) throw new Error(`payload of ${size} bytes did not arrive`);
    }
    const payload = this.#buf.slice(0, size);
    this.#buf = this.#buf.slice(size + 2);
    return { line, payload, fields };
  }

  /** Reads frames until one satisfies `pred` (at most `max` frames). */
  async until(
    pred: (f: ServerFrame) => boolean,
    max = 100_000,
    timeoutMs = 5000,
  ): Promise<ServerFrame[]> {
    const seen: ServerFrame[] = [];
    for (let i = 0; i < max; i++) {
      const f = await this.frame(timeoutMs);
      seen.push(f);
      if (pred(f)) return seen;
    }
    throw new Error(`no matching frame in ${max} frames`);
  }

  /** Reads `n` MSG frames, failing on anything else. */
  async msgs(n: number, timeoutMs = 5000): Promise<ServerFrame[]> {
    const out: ServerFrame[] = [];
    while (out.length < n) {
      const f = await this.frame(timeoutMs);
      if (!f.line.startsWith("MSG ")) throw new Error(`expected MSG, got ${f.line}`);
      out.push(f);
    }
    return out;
  }

  /** Expects no frame within `ms`. */
  async quiet(ms = 200): Promise<void> {
    try {
      const f = await this.frame(ms);
      throw new Error(`expected silence, got ${f.line}`);
    } catch (e) {
      if (!String((e as Error).message).startsWith("no line within")) throw e;
    }
  }

  /** Whether the server closed the connection (reads until EOF or timeout). */
  async closedByServer(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!(await this.#fill(deadline))) return this.#eof;
      this.#buf = new Uint8Array(0);
    }
    return this.#eof;
  }

  /** Closes the socket. */
  async close(): Promise<void> {
    try {
      await this.#reader.cancel();
    } catch { /* closed */ }
    if (this.#pendingRead) await this.#pendingRead.catch(() => {});
    this.#conn.close();
  }
}

/** A tiny seeded PRNG (mulberry32) so random tests are repeatable; one copy, shared with bench:fuzz. */
export { rng } from "../bench/fuzz_frames.ts";

/** Waits until `cond()` or fails after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean,
  timeoutMs = 2000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Sends `line` and expects `reply` as the next line. */
export async function expectLine(
  c: RawClient,
  line: string,
  reply: string | RegExp,
  timeoutMs = 2000,
): Promise<string> {
  await c.send(`${line}\r\n`);
  const got = await c.line(timeoutMs);
  if (typeof reply === "string") assert.equal(got, reply, line);
  else assert.match(got, reply, line);
  return got;
}

/** Publishes `bodies` one by one, waiting for each OK; returns their ids. */
export async function publishAll(p: RawClient, dest: string, bodies: string[]): Promise<number[]> {
  const ids: number[] = [];
  for (const b of bodies) {
    await p.pub(dest, b);
    const line = await p.line();
    const m = /^OK msg_id:(\d+)$/.exec(line);
    assert.ok(m, line);
    ids.push(Number(m[1]));
  }
  return ids;
}

/**
 * A child's stderr without Deno's own notice that it waited for the
 * node_modules lock ("Blocking waiting for file lock on node_modules
 * directory"), which a `deno run` child may print before our code runs when
 * several start at once: not the broker's output, so not counted as a line.
 */
export function ownStderr(text: string): string {
  return text.split("\n").filter((l) => !l.startsWith("Blocking waiting for file lock")).join("\n")
    .trim();
}
