/**
 * The replicated-queue scenario of `deno task bench:cluster`: one publisher
 * keeping `window` publishes waiting for their acknowledgement (Relayr's
 * `OK`, JetStream's publish ack) and one consumer ACKing everything, on
 * Relayr R3 (three nodes), single-node Relayr (durable log) and a
 * three-server nats-server JetStream cluster with an R3 file stream, in one
 * run. Measures msgs/s (first publish to the last message consumed and the
 * last publish acknowledged) and the publish-to-acknowledgement latency
 * (p50/p99, per message, in order: both systems acknowledge one
 * connection's publishes in order).
 *
 * The drivers (bench/drivers) encode and parse; this file only counts.
 *
 * @module
 */
import { type Driver, type Events, Mode, type Parser } from "./drivers/mod.ts";
import { createQueue } from "./jetstream.ts";
import { freePort, which } from "./servers.ts";

/** One system's numbers. */
export interface QueueResult {
  system: string;
  msgs: number;
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * Where the slowest 1% sit in the run: how many of them in each tenth of
   * the publishes, in order. A stall delays a whole window at once, so a
   * tenth holding `window` of them is one stall; the first tenth holding
   * them is the start (a queue made, code not compiled yet).
   */
  tail: number[];
}

/** Options of {@linkcode measureQueue}. */
export interface QueueRun {
  system: string;
  driver: Driver;
  /** The queue (bench-local name: the drivers add their prefixes). */
  name: string;
  pubPort: number;
  subPort: number;
  msgs: number;
  size: number;
  window: number;
  prefetch: number;
}

/** No byte from the server for this long fails the run. */
const STALL_MS = 15_000;
const READ_BYTES = 1 << 20;
const enc = new TextEncoder();

/** A socket read with the stall bound; null at EOF. */
async function readSome(conn: Deno.TcpConn, buf: Uint8Array, what: string): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stall = new Promise<"stall">((r) => timer = setTimeout(r, STALL_MS, "stall"));
  const n = await Promise.race([conn.read(buf), stall]);
  clearTimeout(timer);
  if (n === "stall") throw new Error(`${what}: nothing from the server for ${STALL_MS} ms`);
  return n;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Reads and feeds `parser` until `done()`; writes what the parse asks to send. */
class Reader {
  readonly #conn: Deno.TcpConn;
  readonly #parser: Parser;
  readonly #what: string;
  #buf = new Uint8Array(READ_BYTES);
  #len = 0;

  constructor(conn: Deno.TcpConn, parser: Parser, what: string) {
    this.#conn = conn;
    this.#parser = parser;
    this.#what = what;
  }

  /** One read, fed; false at EOF. */
  async once(): Promise<boolean> {
    if (this.#len === this.#buf.length) {
      const grown = new Uint8Array(this.#buf.length * 2);
      grown.set(this.#buf);
      this.#buf = grown;
    }
    const n = await readSome(this.#conn, this.#buf.subarray(this.#len), this.#what);
    if (n === null) return false;
    this.#len += n;
    const used = this.#parser.feed(this.#buf, 0, this.#len);
    this.#buf.copyWithin(0, used, this.#len);
    this.#len -= used;
    const out = this.#parser.takeOutput();
    if (out !== null) await writeAll(this.#conn, out);
    return true;
  }
}

/** Runs one publisher and one consumer of `msgs` messages; returns the rate and latencies. */
export async function measureQueue(o: QueueRun): Promise<QueueResult> {
  const errors: string[] = [];
  let received = 0;
  let pongs = 0;
  const events: Events = {
    msg: () => received++,
    pong: () => pongs++,
    error: (text) => errors.push(text),
  };
  const sub = await Deno.connect({ hostname: "127.0.0.1", port: o.subPort });
  const pub = await Deno.connect({ hostname: "127.0.0.1", port: o.pubPort });
  try {
    const subParser = o.driver.parser(events, Mode.consume, o.name, 0);
    const subReader = new Reader(sub, subParser, `${o.system} consumer`);
    await writeAll(
      sub,
      enc.encode(o.driver.hello() + o.driver.consume(o.name, 0, o.prefetch) + o.driver.ping()),
    );
    while (pongs < 1) if (!(await subReader.once())) throw new Error("consumer closed");

    // Relayr: no CONNECT, so `verbose` stays on and every PUB gets its OK.
    const pubEvents: Events = { ...events, msg: () => {}, pong: () => pongs++ };
    const pubParser = o.driver.parser(pubEvents, Mode.plain, o.name, 0);
    const pubReader = new Reader(pub, pubParser, `${o.system} publisher`);
    const hello = o.driver.protocol === "relayr" ? "" : o.driver.hello();
    await writeAll(pub, enc.encode(hello + (o.driver.publisher?.(o.name) ?? "") + o.driver.ping()));
    while (pongs < 2) if (!(await pubReader.once())) throw new Error("publisher closed");
    const base = pubParser.replies; // the OK to a Relayr PING is PONG, not counted: 0

    const shape = o.driver.publishFrame("queue", o.name, o.size);
    const frame = new Uint8Array(shape.head.length + o.size + shape.tail.length);
    frame.set(shape.head);
    frame.fill(120, shape.head.length, shape.head.length + o.size);
    frame.set(shape.tail, shape.head.length + o.size);

    const sentAt = new Float64Array(o.msgs);
    const latency = new Float64Array(o.msgs);
    let sent = 0;
    let acked = 0;
    const t0 = performance.now();
    let lastAck = t0;
    const consumed = (async () => {
      while (received < o.msgs && errors.length === 0) {
        if (!(await subReader.once())) throw new Error("consumer closed");
      }
      return performance.now();
    })().catch((e) => {
      errors.push((e as Error).message);
      return performance.now();
    });
    while (acked < o.msgs && errors.length === 0) {
      const room = Math.min(o.window - (sent - acked), o.msgs - sent);
      if (room > 0) {
        const batch = new Uint8Array(frame.length * room);
        const now = performance.now();
        for (let i = 0; i < room; i++) {
          batch.set(frame, i * frame.length);
          sentAt[sent + i] = now;
        }
        sent += room;
        await writeAll(pub, batch);
      }
      if (!(await pubReader.once())) throw new Error("publisher closed");
      const now = performance.now();
      const replies = Math.min(pubParser.replies - base, sent);
      for (; acked < replies; acked++) latency[acked] = now - sentAt[acked];
      lastAck = now;
    }
    const end = Math.max(await consumed, lastAck);
    if (errors.length > 0) throw new Error(`${o.system}: ${errors.slice(0, 3).join("; ")}`);
    const p99 = Float64Array.from(latency).sort()[Math.floor(o.msgs * 0.99)];
    const tail = new Array<number>(10).fill(0);
    for (let i = 0; i < o.msgs; i++) if (latency[i] >= p99) tail[Math.floor(i * 10 / o.msgs)]++;
    latency.sort();
    return {
      system: o.system,
      msgs: o.msgs,
      rate: Math.round(o.msgs / ((end - t0) / 1000)),
      p50Ms: latency[Math.floor(o.msgs * 0.5)],
      p99Ms: p99,
      tail,
    };
  } finally {
    pub.close();
    sub.close();
  }
}

/** A three-server nats-server JetStream cluster (routes between them), file storage in a temp dir. */
export class NatsCluster {
  readonly ports: number[];
  readonly #children: Deno.ChildProcess[];
  readonly #dir: string;

  private constructor(ports: number[], children: Deno.ChildProcess[], dir: string) {
    this.ports = ports;
    this.#children = children;
    this.#dir = dir;
  }

  /** Starts three servers and waits until JetStream takes a stream with three replicas. */
  static async start(name: string): Promise<NatsCluster> {
    const bin = which("nats-server");
    if (bin === null) throw new Error("nats-server is not installed (scripts/install-peers.sh)");
    const dir = await Deno.makeTempDir({ prefix: "nats-r3-bench-" });
    const ports = [freePort(), freePort(), freePort()];
    const routes = [freePort(), freePort(), freePort()];
    const children = ports.map((port, i) =>
      new Deno.Command(bin, {
        args: [
          ...["-a", "127.0.0.1", "-p", String(port), "-n", `js${i + 1}`, "-js", "-sd"],
          `${dir}/js${i + 1}`,
          ...["--cluster_name", "relayr-bench", "--cluster", `nats://127.0.0.1:${routes[i]}`],
          "--routes",
          routes.filter((_, j) => j !== i).map((r) => `nats://127.0.0.1:${r}`).join(","),
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn()
    );
    const c = new NatsCluster(ports, children, dir);
    // The stream can be created once the servers see each other and elected a meta leader.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await createQueue(ports[0], name, 3);
        return c;
      } catch (e) {
        if (Date.now() > deadline) {
          await c.stop();
          throw new Error(`JetStream R3 stream not created within 30 s: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /** Stops the three servers (SIGKILL: the data is scratch) and removes their files. */
  async stop(): Promise<void> {
    for (const c of this.#children) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
      await c.status;
    }
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
