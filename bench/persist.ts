/**
 * Durable-queue measurements (issue #6), not part of the test suite:
 *
 * - publish throughput of 256-byte messages to a broker child process with
 *   `--fsync always`, `interval` and `never`: confirmed (OK) messages per
 *   second from pipelining publishers, each with a bounded window in flight;
 * - the store alone, in process: pushes per second with no network;
 * - restart: time to recover N queued messages (default 1,000,000) after a
 *   `kill -9`, and the disk the log takes for them.
 *
 * deno task bench:persist [--messages 1000000] [--seconds 5] [--publishers 4]
 *   [--window 2000] [--runtime deno|bun] [--skip-restart] [--only-acks]
 *
 * Broker children run on 127.0.0.1, port 0 (the port is read from the log),
 * in temp data dirs, and are stopped by PID.
 */
import { parseArgs } from "node:util";
import { nodeFileSystem } from "../src/runtime/mod.ts";
import { type FsyncPolicy, LogStore, Message } from "../src/storage/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PAYLOAD = 256;
const dec = new TextDecoder();

const { values: opt } = parseArgs({
  args: Deno.args,
  options: {
    messages: { type: "string", default: "1000000" },
    seconds: { type: "string", default: "5" },
    publishers: { type: "string", default: "4" },
    window: { type: "string", default: "2000" },
    runtime: { type: "string", default: "deno" },
    "skip-restart": { type: "boolean", default: false },
    "only-acks": { type: "boolean", default: false },
  },
});

/** A broker child with its log. */
class Child {
  readonly proc: Deno.ChildProcess;
  readonly spawnedAt = performance.now();
  out = "";
  #pumps: Promise<void>[];
  constructor(dataDir: string, fsync: FsyncPolicy | "memory") {
    const store = fsync === "memory" ? ["--memory"] : ["--data-dir", dataDir, "--fsync", fsync];
    const serve = [
      "main.ts",
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--no-http",
      "--no-grpc",
      ...store,
      "--queue-max-messages",
      "100000000",
      "--queue-max-bytes",
      String(2 ** 40),
    ];
    const [cmd, args] = opt.runtime === "bun"
      ? ["bun", ["run", ...serve]]
      : [Deno.execPath(), ["run", "-A", ...serve]];
    this.proc = new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [this.#pump(this.proc.stdout), this.#pump(this.proc.stderr)];
  }
  async #pump(s: ReadableStream<Uint8Array>) {
    for await (const c of s) this.out += dec.decode(c);
  }
  /** Port, and ms from spawn to listening. */
  async ready(): Promise<{ port: number; ms: number }> {
    for (let i = 0; i < 12_000; i++) {
      const m = /listening on [0-9.]+:(\d+)/.exec(this.out);
      if (m) return { port: Number(m[1]), ms: performance.now() - this.spawnedAt };
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`no start:\n${this.out}`);
  }
  async stop(signal: Deno.Signal): Promise<void> {
    try {
      this.proc.kill(signal);
    } catch { /* gone */ }
    await this.proc.status;
    await Promise.all(this.#pumps);
  }
}

/** Pipelines 256-byte PUBs to `queue:bench`, at most `window` unconfirmed; returns confirmed count. */
async function publisher(port: number, until: () => boolean, window: number, max: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const frame = new TextEncoder().encode(
    `PUB queue:bench ${PAYLOAD}\r\n${"p".repeat(PAYLOAD)}\r\n`,
  );
  const BATCH = 100;
  const batch = new Uint8Array(frame.length * BATCH);
  for (let i = 0; i < BATCH; i++) batch.set(frame, i * frame.length);
  let sent = 0;
  let confirmed = 0;
  let errors = 0;
  let wake: (() => void) | undefined;
  let closed = false;
  const reading = (async () => {
    const buf = new Uint8Array(1 << 16);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) {
        closed = true;
        wake?.();
        return;
      }
      for (let i = 0; i < n; i++) {
        if (buf[i] === 10) confirmed++;
        else if (buf[i] === 0x45 /* E */ && (i === 0 || buf[i - 1] === 10)) errors++;
      }
      wake?.();
      if (confirmed >= sent && (until() || sent >= max)) return;
    }
  })();
  const step = Math.min(BATCH, window);
  while (!until() && sent < max && !closed) {
    if (sent - confirmed + step > window) {
      await new Promise<void>((r) => wake = r);
      continue;
    }
    const n = Math.min(step, max - sent);
    let off = 0;
    const bytes = batch.subarray(0, n * frame.length);
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    sent += n;
  }
  await reading;
  conn.close();
  return { confirmed, errors };
}

async function throughput(
  fsync: FsyncPolicy | "memory",
  seconds: number,
  publishers: number,
  window: number,
) {
  const dir = await Deno.makeTempDir({ prefix: "relayr-persist-" });
  const child = new Child(dir, fsync);
  const { port } = await child.ready();
  const t0 = performance.now();
  const stopAt = t0 + seconds * 1000;
  const until = () => performance.now() >= stopAt;
  const results = await Promise.all(
    Array.from({ length: publishers }, () => publisher(port, until, window, Infinity)),
  );
  const secs = (performance.now() - t0) / 1000;
  const confirmed = results.reduce((a, r) => a + r.confirmed, 0);
  const errors = results.reduce((a, r) => a + r.errors, 0);
  await child.stop("SIGTERM");
  const disk = du(dir);
  await Deno.remove(dir, { recursive: true });
  return { fsync, rate: confirmed / secs, confirmed, errors, disk };
}

/** One publisher, one message in flight: the latency an fsync policy adds. */
async function sequential(fsync: FsyncPolicy, n: number) {
  const dir = await Deno.makeTempDir({ prefix: "relayr-persist-" });
  const child = new Child(dir, fsync);
  const { port } = await child.ready();
  const t0 = performance.now();
  await publisher(port, () => false, 1, n);
  const us = (performance.now() - t0) * 1000 / n;
  await child.stop("SIGTERM");
  await Deno.remove(dir, { recursive: true });
  return us;
}

/**
 * A consumer of a pre-filled `queue:bench` that ACKs what each read brings
 * in one ACK line, with OK replies on, until `n` messages are delivered and
 * every ACK line is answered; returns the ms it took. With `prefetch` 1 an
 * ACK is sent only once the previous ACK's OK came, so each message costs a
 * delivery, an ACK and its OK (under `always` the OK waits for an fdatasync).
 */
async function consumer(port: number, n: number, prefetch: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const enc = new TextEncoder();
  const t0 = performance.now();
  await conn.write(enc.encode(`SUB queue:bench sub_id:c prefetch:${prefetch}\r\n`));
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(1 << 16);
  let oks = -1; // the SUB's OK comes first
  let lines = 0;
  let delivered = 0;
  let ack = "";
  // With one in flight, an ACK goes once the previous ACK's OK came: its round trip is measured.
  const waitOk = prefetch === 1;
  while (delivered < n || oks < lines) {
    const r = await conn.read(chunk);
    if (r === null) throw new Error("the broker closed the connection");
    const b = new Uint8Array(buf.length + r);
    b.set(buf);
    b.set(chunk.subarray(0, r), buf.length);
    let pos = 0;
    for (let nl = b.indexOf(10, pos); nl >= 0; nl = b.indexOf(10, pos)) {
      if (b[pos] !== 0x4d /* M */) {
        const line = dec.decode(b.subarray(pos, nl - 1));
        if (line === "OK") oks++;
        else if (line === "PING") await conn.write(enc.encode("PONG\r\n"));
        else throw new Error(`unexpected ${line}`);
        pos = nl + 1;
        continue;
      }
      const line = dec.decode(b.subarray(pos, nl - 1));
      const size = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (nl + 1 + size + 2 > b.length) break;
      pos = nl + 1 + size + 2;
      if (delivered === n) continue; // one over: left unacked, back to the queue at the close
      ack += ` ${/msg_id:\d+/.exec(line)![0]}`;
      delivered++;
      if (ack.length > 3500 && !waitOk) {
        await conn.write(enc.encode(`ACK${ack}\r\n`));
        lines++;
        ack = "";
      }
    }
    buf = b.slice(pos);
    if (ack !== "" && (!waitOk || oks >= lines)) {
      await conn.write(enc.encode(`ACK${ack}\r\n`));
      lines++;
      ack = "";
    }
  }
  const ms = performance.now() - t0;
  conn.close();
  return ms;
}

/** Consumes and ACKs `n` pre-filled messages: acked msgs/s (prefetch 1000) and µs per message (prefetch 1). */
async function acking(fsync: FsyncPolicy, n: number, seq: number) {
  const dir = await Deno.makeTempDir({ prefix: "relayr-persist-" });
  const child = new Child(dir, fsync);
  const { port } = await child.ready();
  await publisher(port, () => false, 2000, n + seq);
  const rate = n / (await consumer(port, n, 1000) / 1000);
  const us = await consumer(port, seq, 1) * 1000 / seq;
  await child.stop("SIGTERM");
  await Deno.remove(dir, { recursive: true });
  return { rate, us };
}

function du(path: string): number {
  let n = 0;
  for (const e of Deno.readDirSync(path)) {
    const p = `${path}/${e.name}`;
    n += e.isDirectory ? du(p) : Deno.statSync(p).size;
  }
  return n;
}

/** The store alone: pushes per second into a LogStore, 256-byte payloads. */
async function inProcess(fsync: FsyncPolicy, n: number) {
  const dir = await Deno.makeTempDir({ prefix: "relayr-persist-" });
  const store = LogStore.open({ dir, fs: nodeFileSystem, fsync });
  const q = store.openQueue("queue:bench");
  const payload = new Uint8Array(PAYLOAD).fill(112);
  const t0 = performance.now();
  let id = Date.now() * 1024;
  const TICK = 1000;
  for (let i = 0; i < n; i += TICK) {
    let last: void | Promise<void> = undefined;
    for (let k = 0; k < TICK; k++) {
      last = q.push(
        new Message(++id, q.name, payload, 0, 0, 0, 0, undefined, undefined, undefined),
      );
    }
    // One tick's worth, then let the write (a microtask), and the fsync under always, happen.
    if (last instanceof Promise) await last;
    else await null;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  await store.close();
  await Deno.remove(dir, { recursive: true });
  return rate;
}

async function restart(n: number) {
  const dir = await Deno.makeTempDir({ prefix: "relayr-persist-" });
  let child = new Child(dir, "interval");
  const { port } = await child.ready();
  const fill0 = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, () => publisher(port, () => false, 5000, Math.ceil(n / 4))),
  );
  const fillSecs = (performance.now() - fill0) / 1000;
  await new Promise((r) => setTimeout(r, 300)); // an fsync interval, so the page cache matches disk
  await child.stop("SIGKILL");
  const disk = du(dir);
  child = new Child(dir, "interval");
  const { ms } = await child.ready();
  const rec = /recovered (\d+) messages in (\d+) queues from (\d+) records in (\d+) ms/.exec(
    child.out,
  );
  const rss = await rssOf(child.proc.pid);
  await child.stop("SIGTERM");
  await Deno.remove(dir, { recursive: true });
  return { fillSecs, disk, startMs: ms, recovery: rec?.[0], rss };
}

async function rssOf(pid: number): Promise<number | undefined> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const MB = 1024 * 1024;
const seconds = Number(opt.seconds);
const publishers = Number(opt.publishers);
const window = Number(opt.window);
console.log(
  `runtime ${opt.runtime}; ${publishers} publishers, window ${window}, ${seconds} s each`,
);
const all = !opt["only-acks"];
for (const fsync of all ? ["memory", "interval", "always", "never"] as const : []) {
  const r = await throughput(fsync, seconds, publishers, window);
  console.log(
    `publish 256 B, ${fsync === "memory" ? "--memory      " : `fsync ${fsync.padEnd(8)}`}: ${
      Math.round(r.rate).toLocaleString("en")
    } msgs/s ` +
      `(${r.confirmed.toLocaleString("en")} confirmed, ${r.errors} errors, log ${
        (r.disk / MB).toFixed(0)
      } MB)`,
  );
}
for (const fsync of all ? ["always", "interval"] as FsyncPolicy[] : []) {
  const us = await sequential(fsync, 2000);
  console.log(`one publisher, one in flight, fsync ${fsync}: ${us.toFixed(0)} µs per publish`);
}
for (const fsync of ["interval", "always"] as FsyncPolicy[]) {
  const r = await acking(fsync, 200_000, 1000);
  console.log(
    `consume + ACK 256 B, fsync ${fsync.padEnd(8)}: ${
      Math.round(r.rate).toLocaleString("en")
    } acked msgs/s (prefetch 1000); prefetch 1, each ACK's OK awaited: ${
      r.us.toFixed(0)
    } µs per message`,
  );
}
for (const fsync of all ? ["interval", "always"] as FsyncPolicy[] : []) {
  const rate = await inProcess(fsync, 1_000_000);
  console.log(
    `store alone (in process, ${fsync}): ${Math.round(rate).toLocaleString("en")} pushes/s`,
  );
}
if (all && !opt["skip-restart"]) {
  const n = Number(opt.messages);
  const r = await restart(n);
  console.log(
    `${n.toLocaleString("en")} messages of 256 B: filled in ${r.fillSecs.toFixed(1)} s; log ${
      (r.disk / MB).toFixed(0)
    } MB on disk (${(r.disk / n).toFixed(0)} B per message)`,
  );
  console.log(
    `restart after kill -9: listening ${
      (r.startMs / 1000).toFixed(2)
    } s after spawn; ${r.recovery}` +
      (r.rss ? `; RSS ${(r.rss / MB).toFixed(0)} MB` : ""),
  );
}
