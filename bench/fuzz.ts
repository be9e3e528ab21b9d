/**
 * The long fuzz run (issue #15): the seeded random and mutated frames of the
 * in-suite fuzz test (bench/fuzz_frames.ts), a million of them by default, at
 * a live broker child on Deno and on Bun, while a well-behaved client keeps
 * doing round trips through a queue. Passes when the broker is still alive,
 * closed nothing for an internal error (`closed_by_reason` from /api/stats),
 * closed every fuzz connection for an allowed reason, and the good client
 * was served throughout and after.
 *
 * The frames go out in sessions: one connection each, 1 to
 * `SESSION_FRAMES_MAX` frames written in randomly sized chunks (so frames
 * split across reads everywhere), then a FIN; the session ends when the
 * server closes its side, which it does only after handling everything
 * before the FIN (or at a fatal framing error). Session `i` draws from its own
 * generator seeded from (`--seed`, `i`), so a failing session replays alone
 * with `--seed S --session i`, whatever ran beside it.
 *
 * Run: `deno task bench:fuzz [--frames N] [--seed S] [--runtime deno|bun|both] [--session I]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { RawClient } from "../tests/helpers.ts";
import {
  type BrokerChild,
  type BrokerRuntime,
  runtimesOf,
  startBrokerChild,
} from "./broker_child.ts";
import { ALLOWED_CLOSES, fuzzFrame, rng } from "./fuzz_frames.ts";

/** Most frames one session sends before its FIN (the in-suite test sends 60 per seed over 3). */
const SESSION_FRAMES_MAX = 200;
/** Largest chunk one write carries. */
const CHUNK_BYTES_MAX = 8192;
/** Sessions in flight at once. */
const SESSIONS_IN_FLIGHT = 16;
/** Longest a session may wait for the server to close its side after the FIN. */
const SESSION_TIMEOUT_MS = 10_000;
/** The good client's round trip every this many ms. */
const GOOD_INTERVAL_MS = 50;
/** Its slowest allowed round trip (PUB, OK, MSG, ACK, OK, PING, PONG). */
const GOOD_RTT_MS_MAX = 2000;
/** Round trips after the fuzz is over. */
const GOOD_AFTER = 100;
/** Longest wait for the fuzz connections to be gone from the stats. */
const SETTLE_TIMEOUT_MS = 10_000;
/** Broker flags, as the in-suite fuzz test: small payloads, fast redelivery. */
const BROKER_ARGS = ["--memory", "--max-payload", "4096", "--ack-timeout", "100"];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    frames: { type: "string", default: "1000000" },
    seed: { type: "string" },
    runtime: { type: "string", default: "both" },
    session: { type: "string" },
  },
});
const FRAMES = Number(values.frames);
const SEED = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const ONLY_SESSION = values.session === undefined ? undefined : Number(values.session);

/** The generator of session `i`: independent of how sessions interleave. */
function sessionRng(i: number): () => number {
  return rng((SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
}

/**
 * The bytes of session `i`: its generator draws the frame count first, then the frames (at most
 * `limit`, so the run ends at exactly `--frames`), then the chunk sizes.
 */
function sessionBytes(i: number, limit: number) {
  const r = sessionRng(i);
  const frames = Math.min(limit, 1 + Math.floor(r() * SESSION_FRAMES_MAX));
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let k = 0; k < frames; k++) {
    const f = fuzzFrame(r);
    parts.push(f);
    size += f.length;
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.length;
  }
  return { bytes, frames, r };
}

/** Reads and drops everything until EOF or a reset; bounded by the caller's timeout. */
async function drain(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  try {
    while ((await conn.read(buf)) !== null) { /* discard */ }
  } catch { /* reset by the server after a fatal error: closed too */ }
}

/** Runs session `i`; returns its local port (the server's `remote_addr`). */
async function session(
  port: number,
  i: number,
  { bytes, r }: ReturnType<typeof sessionBytes>,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const localPort = (conn.localAddr as Deno.NetAddr).port;
  const reading = drain(conn);
  try {
    let off = 0;
    while (off < bytes.length) {
      const end = Math.min(bytes.length, off + 1 + Math.floor(r() * CHUNK_BYTES_MAX));
      for (let o = off; o < end;) o += await conn.write(bytes.subarray(o, end));
      off = end;
    }
    await conn.closeWrite();
  } catch { /* the server closed it for a framing error: allowed */ }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    reading.then(() => false),
    new Promise<boolean>((res) => timer = setTimeout(() => res(true), SESSION_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  try {
    conn.close();
  } catch { /* closed */ }
  if (timedOut) {
    throw new Error(`session ${i}: the server did not close it within ${SESSION_TIMEOUT_MS} ms`);
  }
  return localPort;
}

/** A well-behaved producer and consumer: one queue round trip at a time, timed. */
class GoodClient {
  #pub: RawClient;
  #sub: RawClient;
  #n = 0;
  readonly rtts: number[] = [];

  private constructor(pub: RawClient, sub: RawClient) {
    this.#pub = pub;
    this.#sub = sub;
  }

  static async connect(port: number): Promise<GoodClient> {
    const pub = await RawClient.connect(port);
    const sub = await RawClient.connect(port);
    await sub.send("SUB queue:good sub_id:g ack:explicit prefetch:10\r\n");
    const ok = await sub.line(GOOD_RTT_MS_MAX);
    if (ok !== "OK") throw new Error(`good SUB answered ${ok}`);
    return new GoodClient(pub, sub);
  }

  /** One PUB → OK, MSG → ACK → OK, PING → PONG; throws on anything unexpected. */
  async roundTrip(): Promise<void> {
    const t0 = performance.now();
    const body = `good-${this.#n++}`;
    await this.#pub.pub("queue:good", body);
    const ok = await this.#pub.line(GOOD_RTT_MS_MAX);
    if (!ok.startsWith("OK msg_id:")) throw new Error(`good PUB answered ${ok}`);
    const msg = await this.#sub.frame(GOOD_RTT_MS_MAX);
    const got = msg.payload ? new TextDecoder().decode(msg.payload) : msg.line;
    if (got !== body) throw new Error(`good client expected ${body}, got ${got}`);
    await this.#sub.send(`ACK msg_id:${msg.fields!.msg_id}\r\n`);
    const acked = await this.#sub.line(GOOD_RTT_MS_MAX);
    if (acked !== "OK") throw new Error(`good ACK answered ${acked}`);
    await this.#pub.send("PING\r\n");
    const pong = await this.#pub.line(GOOD_RTT_MS_MAX);
    if (pong !== "PONG") throw new Error(`good PING answered ${pong}`);
    this.rtts.push(performance.now() - t0);
  }

  get max(): number {
    return Math.max(0, ...this.rtts);
  }

  async close(): Promise<void> {
    await this.#pub.close();
    await this.#sub.close();
  }
}

/** Round trips every `GOOD_INTERVAL_MS` until `done()`; resolves with the first failure, if any. */
async function serve(good: GoodClient, done: () => boolean): Promise<Error | undefined> {
  while (!done()) {
    try {
      await good.roundTrip();
    } catch (e) {
      return e as Error;
    }
    await new Promise((r) => setTimeout(r, GOOD_INTERVAL_MS));
  }
  return undefined;
}

function closesSummary(counts: Record<string, number>): string {
  return Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).join(" ");
}

/** Sends the fuzz sessions, `SESSIONS_IN_FLIGHT` at a time; returns frames and sessions sent. */
async function fuzz(
  port: number,
  ports: Map<number, number>,
  failures: string[],
): Promise<{ frames: number; sessions: number }> {
  let frames = 0;
  let sessions = 0;
  let next = ONLY_SESSION ?? 0;
  const last = ONLY_SESSION ?? Infinity;
  const worker = async () => {
    while (frames < FRAMES && next <= last && failures.length === 0) {
      const i = next++;
      // Claimed before the await, so the sessions in flight never overshoot `--frames`.
      const bytes = sessionBytes(i, FRAMES - frames);
      frames += bytes.frames;
      try {
        ports.set(await session(port, i, bytes), i);
        sessions++;
      } catch (e) {
        failures.push(String(e));
      }
    }
  };
  await Promise.all(Array.from({ length: SESSIONS_IN_FLIGHT }, worker));
  return { frames, sessions };
}

async function waitForConnections(broker: BrokerChild, n: number): Promise<Record<string, number>> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const s = await broker.serverStats();
    if (s.connections === n || Date.now() > deadline) return s.closed_by_reason;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function run(runtime: BrokerRuntime): Promise<boolean> {
  const broker = await startBrokerChild({ runtime, args: BROKER_ARGS });
  const good = await GoodClient.connect(broker.port);
  const failures: string[] = [];
  const ports = new Map<number, number>();
  try {
    let fuzzing = true;
    const served = serve(good, () => !fuzzing);
    const t0 = performance.now();
    const sent = await fuzz(broker.port, ports, failures);
    const secs = (performance.now() - t0) / 1000;
    fuzzing = false;
    const duringError = await served;
    const during = good.rtts.length;
    if (duringError) failures.push(`good client during the fuzz: ${duringError.message}`);
    if (!broker.alive()) failures.push(`the broker died: ${JSON.stringify(await broker.status)}`);

    const closed = broker.alive() ? await waitForConnections(broker, 2) : {};
    for (let k = 0; k < GOOD_AFTER && failures.length === 0; k++) {
      await good.roundTrip().catch((e) =>
        failures.push(`good client after the fuzz: ${e.message}`)
      );
    }
    const total = Object.values(closed).reduce((a, b) => a + b, 0);
    if ((closed.INTERNAL_ERROR ?? 0) > 0) {
      const all = await broker.stats("limit=1&closed=100&subs=false");
      for (
        const c of all.closed_connections.filter((c: { reason: string }) =>
          c.reason === "INTERNAL_ERROR"
        )
      ) {
        const port = Number(String(c.remote_addr).split(":").pop());
        failures.push(`INTERNAL_ERROR (session ${ports.get(port) ?? "?"}): ${c.detail}`);
      }
      failures.push(`${closed.INTERNAL_ERROR} INTERNAL_ERROR closes`);
    }
    for (const [reason, n] of Object.entries(closed)) {
      if (n > 0 && !ALLOWED_CLOSES.has(reason)) failures.push(`unexpected closes: ${reason}=${n}`);
    }
    if (failures.length === 0 && total !== sent.sessions) {
      failures.push(`${sent.sessions} fuzz sessions but ${total} closes recorded`);
    }
    const errLines = broker.output().split("\n").filter((l) => /\[(ERR|FTL)\]/.test(l));
    if (errLines.length > 0) {
      failures.push(`broker logged errors:\n${errLines.slice(0, 5).join("\n")}`);
    }
    console.log(
      `${runtime.padEnd(4)} seed ${SEED}: ${sent.frames} frames in ${sent.sessions} sessions, ${
        secs.toFixed(1)
      } s (${Math.round(sent.frames / secs)} frames/s); closes ${
        closesSummary(closed)
      }; good client ${during} round trips during (max ${good.max.toFixed(1)} ms), ${
        good.rtts.length - during
      } after; broker ${broker.alive() ? "alive" : "DEAD"}`,
    );
    for (const f of failures) console.log(`  FAIL ${f}`);
    console.log(`${runtime.padEnd(4)} ${failures.length === 0 ? "PASS" : "FAIL"}`);
    return failures.length === 0;
  } finally {
    await good.close();
    await broker.stop();
  }
}

console.log(
  `fuzz: ${FRAMES} frames per runtime, seed ${SEED}${
    ONLY_SESSION === undefined ? "" : `, session ${ONLY_SESSION} only`
  } (replay: deno task bench:fuzz --seed ${SEED})`,
);
let ok = true;
for (const runtime of runtimesOf(values.runtime)) ok = (await run(runtime)) && ok;
Deno.exit(ok ? 0 : 1);
