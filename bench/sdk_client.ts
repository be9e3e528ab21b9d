/**
 * One client run of `deno task bench:sdk`, as its own process so it runs on
 * Deno or Bun: `<deno|bun> bench/sdk_client.ts <client> <port> <scenario>
 * <msgs> <size> [sdk-dir]` prints one JSON line of {@linkcode ClientRun}
 * (`sdk-dir`: drive the SDK of that checkout instead of this one's).
 *
 * The same loop drives every client: the publisher sends `msgs` messages of
 * `size` bytes without waiting for any answer (NATS `publish`, Relayr
 * `publishNoWait`), yielding to the event loop every {@linkcode BURST}
 * messages and sending a round trip (`flush`) every {@linkcode WINDOW}, with
 * at most two unanswered, which bounds what is in flight the same way for
 * both without stalling on each round trip. In `sub` a subscriber
 * on its own connection counts deliveries in a callback; in `queue` the
 * subscriber is a queue consumer (Relayr: `queue:<subject>`, explicit acks,
 * each message acked in the callback, the broker's default prefetch; NATS: a
 * queue group, which acks nothing); in `pub` nobody subscribes. With a
 * subscriber, the publisher also stays at most two windows ahead of the
 * deliveries: a round trip's answer only says the server has the messages,
 * and on a loaded machine a subscriber that got less CPU than its publisher
 * would otherwise fall behind without bound, until the server cuts it off as
 * a slow consumer (Relayr: 65,536 messages behind past its 4 MiB outbound
 * buffer) and the run measures drops instead of throughput. A warm-up run of a tenth of the messages comes first (same
 * connections, other subject), so the JIT has compiled both clients' hot
 * paths before the clock starts.
 *
 * Clients: `relayr` (this SDK against a Relayr broker), `nats` (npm `nats`
 * 2.x) and `nats3` (npm `@nats-io/transport-node` 3.x), both against
 * nats-server.
 *
 * @module
 */
import process from "node:process";

/** Messages published between yields to the event loop (so the socket writer runs). */
export const BURST = 1024;
/** Messages published between round trips: at most this many are in flight. */
export const WINDOW = 32 * 1024;
/** Longest wait for the last delivery. */
const DRAIN_TIMEOUT_MS = 60_000;

/** What one run measured. */
export interface ClientRun {
  client: string;
  runtime: string;
  scenario: string;
  msgs: number;
  size: number;
  /** Published messages per second, up to the last flush's answer. */
  pubPerSec: number;
  /** Deliveries per second (first publish to last delivery); 0 in `pub`. */
  subPerSec: number;
  /**
   * CPU time of this client process per message, µs (user + system, the
   * measured run only): steadier than rates on a loaded machine.
   */
  cpuUsPerMsg: number;
}

/** What the loop needs from a client library. */
interface Api {
  subscribe(subject: string, onMsg: () => void, queue: boolean): Promise<void>;
  publish(subject: string, body: Uint8Array): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

async function relayr(port: number, kind: "topic" | "queue", sdk: string): Promise<Api> {
  const { connect } = await import(sdk) as typeof import("../src/client/mod.ts");
  const pub = await connect(`127.0.0.1:${port}`, { reconnect: false });
  const sub = await connect(`127.0.0.1:${port}`, { reconnect: false });
  let last = "";
  let dest = "";
  return {
    async subscribe(subject, onMsg, queue) {
      if (queue) {
        await sub.subscribe(`queue:${subject}`, {
          callback: (m) => {
            m.ack();
            onMsg();
          },
        });
      } else await sub.subscribe(`topic:${subject}`, { callback: onMsg });
      await sub.flush();
    },
    publish(subject, body) {
      // The destination is made once per subject, as a NATS subject is passed as is.
      if (subject !== last) dest = `${kind}:${last = subject}`;
      pub.publishNoWait(dest, body);
    },
    flush: () => pub.flush(),
    close: async () => void await Promise.all([pub.close(), sub.close()]),
  };
}

/** Both NATS packages have the same shape for what the bench uses. */
interface NatsConn {
  publish(subject: string, body: Uint8Array): void;
  subscribe(
    subject: string,
    opts: { callback: (err: unknown, msg: unknown) => void; queue?: string },
  ): unknown;
  flush(): Promise<void>;
  close(): Promise<void>;
}

async function nats(port: number, pkg: "nats" | "@nats-io/transport-node"): Promise<Api> {
  const mod = pkg === "nats" ? await import("nats") : await import("@nats-io/transport-node");
  const connect = mod.connect as (o: { servers: string }) => Promise<NatsConn>;
  const pub = await connect({ servers: `127.0.0.1:${port}` });
  const sub = await connect({ servers: `127.0.0.1:${port}` });
  return {
    async subscribe(subject, onMsg, queue) {
      sub.subscribe(subject, { callback: () => onMsg(), queue: queue ? "q" : undefined });
      await sub.flush();
    },
    publish: (subject, body) => pub.publish(subject, body),
    flush: () => pub.flush(),
    close: async () => void await Promise.all([pub.close(), sub.close()]),
  };
}

/**
 * A macrotask turn (socket I/O runs) without `setTimeout(0)`'s clamp, which
 * costs ~2.6 ms per turn on Deno and would dominate the run.
 */
const turn = new MessageChannel();
let resumed: (() => void) | null = null;
turn.port1.onmessage = () => {
  const r = resumed;
  resumed = null;
  r?.();
};
function yieldToLoop(): Promise<void> {
  return new Promise((r) => {
    resumed = r;
    turn.port2.postMessage(0);
  });
}

async function once(
  api: Api,
  subject: string,
  scenario: string,
  msgs: number,
  size: number,
): Promise<{ pubPerSec: number; subPerSec: number; cpuUsPerMsg: number }> {
  let received = 0;
  let last = 0;
  let done: () => void = () => {};
  const all = new Promise<void>((r) => done = r);
  // The publisher waits for `received` to reach `behind` (see the module doc).
  let behind = -1;
  let caughtUp: () => void = () => {};
  const subscribed = scenario !== "pub";
  if (subscribed) {
    await api.subscribe(subject, () => {
      if (++received === behind) caughtUp();
      if (received === msgs) {
        last = performance.now();
        done();
      }
    }, scenario === "queue");
  }
  const body = new Uint8Array(size);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let previous: Promise<void> | null = null;
  for (let i = 0; i < msgs;) {
    const end = Math.min(msgs, i + BURST);
    for (; i < end; i++) api.publish(subject, body);
    if (i % WINDOW === 0) {
      // At most two windows unanswered: the publisher never stalls on a round trip.
      const answered = api.flush();
      if (previous !== null) await previous;
      previous = answered;
      if (subscribed && received < i - 2 * WINDOW) {
        behind = i - 2 * WINDOW;
        await new Promise<void>((r) => caughtUp = r);
      }
    } else await yieldToLoop();
  }
  if (previous !== null) await previous;
  await api.flush();
  const pubEnd = performance.now();
  if (subscribed) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error(`${received} of ${msgs} delivered`)),
        DRAIN_TIMEOUT_MS,
      )
    );
    await Promise.race([all, late]).finally(() => clearTimeout(timer));
  }
  const used = process.cpuUsage(cpu);
  return {
    cpuUsPerMsg: Math.round((used.user + used.system) / msgs * 1000) / 1000,
    pubPerSec: Math.round(msgs / ((pubEnd - start) / 1000)),
    subPerSec: subscribed ? Math.round(msgs / ((last - start) / 1000)) : 0,
  };
}

async function main(): Promise<void> {
  const [client, port, scenario, msgs, size, sdkDir] = process.argv.slice(2);
  // `sdkDir`: another checkout whose SDK this same loop drives (`--base` of bench/sdk.ts).
  const sdk = sdkDir === undefined
    ? new URL("../src/client/mod.ts", import.meta.url).href
    : new URL(`file://${sdkDir}/src/client/mod.ts`).href;
  const n = Number(msgs);
  const api = client === "relayr"
    ? await relayr(Number(port), scenario === "queue" ? "queue" : "topic", sdk)
    : await nats(Number(port), client === "nats" ? "nats" : "@nats-io/transport-node");
  const tag = Math.random().toString(36).slice(2, 8);
  try {
    await once(api, `sdk.warm.${tag}`, scenario, Math.max(1, Math.floor(n / 10)), Number(size));
    const r = await once(api, `sdk.run.${tag}`, scenario, n, Number(size));
    const runtime = "Bun" in globalThis ? "bun" : "deno";
    const out: ClientRun = { client, runtime, scenario, msgs: n, size: Number(size), ...r };
    console.log(JSON.stringify(out));
  } finally {
    await api.close();
    turn.port1.close();
  }
}

if (import.meta.main) await main();
