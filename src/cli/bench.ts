/**
 * `relayr bench`: a built-in load test in the manner of `nats bench`.
 * Publishers and subscribers each get their own connection, all in this
 * process, so one clock stamps and reads the latency of every message.
 *
 * @module
 */
import {
  BufferFullError,
  type Client,
  type ConnectOptions,
  type Message,
  type TlsOptions,
} from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  connectCli,
  credentials,
  ExitCode,
  type Flags,
  intFlag,
  onInterrupt,
  type Parsed,
  positionalArgs,
  runCommand,
  serverAddress,
  UsageError,
} from "./common.ts";
import { LatencySamples, type Percentiles } from "./latency.ts";
import { cliTls } from "./tls.ts";

/** Help of `relayr bench`. */
export const BENCH_HELP = `Usage: relayr bench [name] [options]

Load-tests the broker: --pubs publishers send --msgs messages in total to
topic:<name> (read by --subs subscribers, each getting every message) or,
with --queue, to queue:<name> (shared by --queue competing consumers, which
ack each message). Prints msgs/s, MB/s (10^6 bytes) and latency percentiles.
Publishers use the SDK's fast path (publishNoWait, one flush round trip per
--window); the clock is read once per burst of 1024 messages, so latency is
sampled on the first message of each burst to arrive.

Examples:
  relayr bench --pubs 1 --subs 1 --msgs 100000 --size 128
  relayr bench --pubs 4 --queue 4 --msgs 200000
  relayr bench orders --pubs 2 --subs 0 --size 1024 --json

Options:
      --pubs <n>            publishers (default: 1)
      --subs <n>            topic subscribers (default: 0)
      --queue <n>           queue consumers instead of topic subscribers
      --msgs <n>            messages to publish, split among publishers (default: 100000)
      --size <bytes>        payload size (default: 128; 8 or more to measure
                            end-to-end latency)
      --window <n>          messages per flush round trip; at most two windows
                            per publisher are unanswered (default: 16384)
      --prefetch <n>        prefetch of queue consumers (default: broker's)
      --timeout <ms>        longest wait for deliveries after publishing (default: 30000)
      --json                print the summary as JSON
${COMMON_HELP}`;

interface BenchConfig {
  server: string;
  /** The credentials of the common flags, for every client of the run. */
  auth: Pick<ConnectOptions, "token" | "user" | "pass" | "keyFile">;
  /** TLS flags resolved; undefined: plain TCP. */
  tls: TlsOptions | undefined;
  dest: string;
  pubs: number;
  consumers: number;
  queue: boolean;
  msgs: number;
  size: number;
  window: number;
  prefetch: number | undefined;
  timeoutMs: number;
}

/** What a bench run measured. */
export interface BenchResult {
  dest: string;
  size: number;
  pub: { clients: number; msgs: number; seconds: number; msgsPerSec: number; mbPerSec: number };
  sub: { clients: number; msgs: number; seconds: number; msgsPerSec: number; mbPerSec: number };
  /** Publish to delivery (needs size >= 8), ms. */
  latencyMs: Percentiles | null;
  /** A window's first publish to the broker's answer to its flush, ms (one sample per window). */
  publishAckMs: Percentiles | null;
  complete: boolean;
}

const BENCH_FLAGS = {
  pubs: { type: "string" },
  subs: { type: "string" },
  queue: { type: "string" },
  msgs: { type: "string" },
  size: { type: "string" },
  window: { type: "string" },
  prefetch: { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
} as const satisfies Flags;

/** Runs `relayr bench`; returns the exit code. */
export function benchCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  return runCommand(
    { name: "bench", help: BENCH_HELP, flags: BENCH_FLAGS },
    args,
    io,
    async (parsed) => {
      const cfg = {
        ...benchConfig(runtime, parsed),
        auth: await credentials(runtime, io, parsed.values),
      };
      return bench(cfg, parsed.values.json === true, runtime, io);
    },
  );
}

/** The run's settings from the flags; `UsageError` on a bad one. */
function benchConfig(
  runtime: Runtime,
  { values, positionals }: Parsed<typeof BENCH_FLAGS>,
): Omit<BenchConfig, "auth"> {
  const [name = `bench.${crypto.randomUUID().slice(0, 8)}`] = positionalArgs(positionals, [], 1);
  const queueN = intFlag("queue", values.queue, 0, 0, 1000);
  const subsN = intFlag("subs", values.subs, 0, 0, 1000);
  if (queueN > 0 && subsN > 0) throw new UsageError("--subs and --queue exclude each other");
  return {
    server: serverAddress(runtime, values.server),
    tls: cliTls(runtime, values),
    dest: `${queueN > 0 ? "queue" : "topic"}:${name}`,
    pubs: intFlag("pubs", values.pubs, 1, 1, 1000),
    consumers: queueN > 0 ? queueN : subsN,
    queue: queueN > 0,
    msgs: intFlag("msgs", values.msgs, 100_000, 1, 100_000_000),
    size: intFlag("size", values.size, 128, 0, 64 * 1024 * 1024),
    window: intFlag("window", values.window, 16_384, 1, 1_000_000),
    prefetch: values.prefetch === undefined
      ? undefined
      : intFlag("prefetch", values.prefetch, 0, 1),
    timeoutMs: intFlag("timeout", values.timeout, 30_000, 1),
  };
}

/** Runs the load, prints the summary; the clients are closed however it ends. */
async function bench(
  cfg: BenchConfig,
  json: boolean,
  runtime: Runtime,
  io: CliIo,
): Promise<number> {
  const clients: Client[] = [];
  let stop = false;
  const removeSignals = onInterrupt(runtime, () => stop = true);
  try {
    if (!json) {
      io.out(
        `Relayr bench: ${cfg.pubs} publisher(s), ${cfg.consumers} ${
          cfg.queue ? "queue consumer" : "subscriber"
        }(s) on ${cfg.dest}, ${cfg.msgs} msgs of ${cfg.size} B`,
      );
    }
    const result = await run(cfg, runtime, io, clients, () => stop);
    if (json) io.out(JSON.stringify(result));
    else io.out(summary(result));
    if (stop) return ExitCode.INTERRUPTED;
    if (!result.complete) {
      io.err(
        `relayr bench: ${result.sub.msgs} of the expected deliveries arrived within ${cfg.timeoutMs} ms`,
      );
      return ExitCode.TIMEOUT;
    }
    return ExitCode.OK;
  } finally {
    removeSignals();
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function run(
  cfg: BenchConfig,
  runtime: Runtime,
  io: CliIo,
  clients: Client[],
  stopped: () => boolean,
): Promise<BenchResult> {
  const expected = cfg.consumers === 0 ? 0 : cfg.queue ? cfg.msgs : cfg.msgs * cfg.consumers;
  const latency = new LatencySamples(expected);
  const pubAcks = new LatencySamples(cfg.msgs);
  let received = 0;
  let firstRecv = 0;
  let lastRecv = 0;
  let lost: Error | undefined; // a client the broker dropped: stop at once, say why
  const open = async () => {
    const c = await connectCli(runtime, cfg.server, {
      ...cfg.auth,
      tls: cfg.tls,
      reconnect: false,
      onStatus: (e) => {
        if (e.type === "closed" && e.error) lost ??= e.error;
        // A refused fire-and-forget publish (e.g. QUEUE_FULL) is reported here: stop, say why.
        if (e.type === "error") lost ??= e.error;
      },
    });
    clients.push(c);
    return c;
  };

  for (let i = 0; i < cfg.consumers; i++) {
    const c = await open();
    // The send time of the burst this subscriber is in; the clock is read
    // once per burst (its first message to arrive), and for the first and last delivery.
    const stamp = new DataView(new ArrayBuffer(8));
    await c.subscribe(cfg.dest, {
      prefetch: cfg.prefetch,
      maxPendingMessages: Number.MAX_SAFE_INTEGER, // callbacks do not buffer
      callback: (msg: Message) => {
        received++;
        const body = msg.body;
        const fresh = body.length >= 8 && takeStamp(body, stamp);
        if (fresh || received === 1 || received === expected) {
          const now = performance.now();
          if (received === 1) firstRecv = now;
          lastRecv = now;
          if (fresh) latency.add(now - stamp.getFloat64(0, true));
        }
        if (cfg.queue) msg.ack();
      },
    });
    await c.flush();
  }
  const pubs: Client[] = [];
  for (let i = 0; i < cfg.pubs; i++) pubs.push(await open());

  let published = 0;
  const start = performance.now();
  const ticker = io.isTty
    ? setInterval(
      () => io.progress(progressLine(published, cfg.msgs, received, expected, start)),
      200,
    )
    : undefined;
  try {
    const per = Math.floor(cfg.msgs / cfg.pubs);
    await Promise.all(pubs.map((c, i) => {
      const n = per + (i === 0 ? cfg.msgs - per * cfg.pubs : 0);
      return publishMany(
        c,
        cfg,
        n,
        pubAcks,
        () => stopped() || lost !== undefined,
        (count) => published += count,
      );
    }));
    const pubEnd = performance.now();
    const deadline = Date.now() + cfg.timeoutMs;
    while (received < expected && !stopped() && !lost && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    if (lost) throw lost;
    if (ticker !== undefined) {
      io.progress(progressLine(published, cfg.msgs, received, expected, start));
      io.out("");
    }
    const pubSecs = (pubEnd - start) / 1000;
    const subSecs = received === 0 ? 0 : (lastRecv - Math.min(firstRecv, start)) / 1000;
    return {
      dest: cfg.dest,
      size: cfg.size,
      pub: rates(cfg.pubs, published, pubSecs, cfg.size),
      sub: rates(cfg.consumers, received, subSecs, cfg.size),
      latencyMs: latency.percentiles(),
      publishAckMs: pubAcks.percentiles(),
      complete: received >= expected && published === cfg.msgs,
    };
  } finally {
    clearInterval(ticker);
  }
}

/** True when the body's first 8 bytes differ from `stamp`'s, which then takes them. */
function takeStamp(body: Uint8Array, stamp: DataView): boolean {
  let same = true;
  for (let k = 0; k < 8; k++) {
    if (stamp.getUint8(k) !== body[k]) {
      same = false;
      stamp.setUint8(k, body[k]);
    }
  }
  return !same;
}

/** Messages published between turns of the event loop (so the socket writer and readers run). */
const BURST = 1024;
/** Attempts to publish one message while the outbound buffer is full. */
const FULL_RETRIES_MAX = 1000;

/**
 * One publisher: `n` messages with `publishNoWait`, the SDK's fast path (no
 * promise per message, no `OK` per message once a run is quiet). Every
 * `window` messages a `flush()` round trip goes out, and at most two windows
 * are unanswered: the publisher never stalls on a round trip, and what is in
 * flight stays bounded. The clock is read once per burst: its messages carry
 * the same send time, and a window's latency is its first publish to the
 * broker's answer to its flush. A full outbound buffer (`BufferFullError`)
 * waits for a round trip and retries.
 */
async function publishMany(
  client: Client,
  cfg: BenchConfig,
  n: number,
  acks: LatencySamples,
  stopped: () => boolean,
  onPublished: (count: number) => void,
): Promise<void> {
  const payload = new Uint8Array(cfg.size);
  const view = new DataView(payload.buffer);
  const burst = Math.min(BURST, cfg.window);
  using turns = new Turns();
  let previous: Promise<void> | null = null;
  let windowStart = -1;
  let inWindow = 0;
  for (let i = 0; i < n && !stopped();) {
    const t = performance.now();
    if (windowStart < 0) windowStart = t;
    // The payload is copied into the outbound buffer at once, so one buffer serves every message.
    if (cfg.size >= 8) view.setFloat64(0, t, true);
    const end = Math.min(n, i + burst, i + cfg.window - inWindow);
    const from = i;
    for (; i < end; i++) {
      const full = publishOne(client, cfg.dest, payload);
      if (full !== undefined) await full; // no await (a microtask) per message otherwise
    }
    inWindow += i - from;
    onPublished(i - from);
    if (inWindow === cfg.window || i === n) {
      const started = windowStart;
      const answered = client.flush().then(() => acks.add(performance.now() - started));
      windowStart = -1;
      inWindow = 0;
      if (previous !== null) await previous;
      previous = answered;
    } else await turns.next();
  }
  if (previous !== null) await previous;
}

/** Publishes one message; on a full outbound buffer waits for a round trip and tries again. */
function publishOne(client: Client, dest: string, payload: Uint8Array): void | Promise<void> {
  try {
    client.publishNoWait(dest, payload);
  } catch (err) {
    if (!(err instanceof BufferFullError)) throw err;
    return (async () => {
      for (let k = 0; k < FULL_RETRIES_MAX; k++) {
        await client.flush();
        try {
          return client.publishNoWait(dest, payload);
        } catch (again) {
          if (!(again instanceof BufferFullError)) throw again;
        }
      }
      throw err;
    })();
  }
}

/**
 * Turns of the event loop without `setTimeout(0)`'s clamp (~2.6 ms per turn
 * on Deno once timers nest, which would dominate the run): a message to
 * ourselves over a channel, closed when done.
 */
class Turns {
  #channel = new MessageChannel();
  #resume: (() => void) | null = null;

  constructor() {
    this.#channel.port1.onmessage = () => {
      const r = this.#resume;
      this.#resume = null;
      r?.();
    };
  }

  /** Resolves on the next turn. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      this.#resume = resolve;
      this.#channel.port2.postMessage(0);
    });
  }

  [Symbol.dispose](): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }
}

function rates(clients: number, msgs: number, seconds: number, size: number) {
  const s = seconds > 0 ? seconds : Number.EPSILON;
  return {
    clients,
    msgs,
    seconds: round(seconds, 3),
    msgsPerSec: Math.round(msgs / s),
    mbPerSec: round((msgs * size) / 1e6 / s, 2),
  };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function progressLine(
  pub: number,
  pubTotal: number,
  recv: number,
  recvTotal: number,
  start: number,
): string {
  const secs = (performance.now() - start) / 1000;
  const rate = Math.round(pub / Math.max(secs, 0.001));
  return `published ${pub}/${pubTotal} (${rate} msgs/s)  received ${recv}/${recvTotal}  ${
    secs.toFixed(1)
  } s`;
}

/** The human summary. */
export function summary(r: BenchResult): string {
  const fmt = (n: number) => n.toLocaleString("en-US");
  const line = (label: string, s: BenchResult["pub"]) =>
    `${label} ${fmt(s.msgsPerSec)} msgs/s ~ ${s.mbPerSec} MB/s (${
      fmt(s.msgs)
    } msgs in ${s.seconds} s, ${s.clients} client(s))`;
  const pct = (p: Percentiles | null) =>
    p === null
      ? "n/a"
      : `p50 ${p.p50} ms  p90 ${p.p90} ms  p99 ${p.p99} ms  p99.9 ${p.p999} ms  max ${p.max} ms (${
        fmt(p.samples)
      } samples)`;
  const out = [line("Pub:", r.pub)];
  if (r.sub.clients > 0) out.push(line("Sub:", r.sub));
  if (r.sub.clients > 0) out.push(`Latency, publish to delivery: ${pct(r.latencyMs)}`);
  out.push(`Latency, window to broker ack: ${pct(r.publishAckMs)}`);
  if (!r.complete) out.push("Incomplete: not every message was published and delivered");
  return out.join("\n");
}
