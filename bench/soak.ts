/**
 * The soak run (issue #15): a broker child under mixed, moderate traffic for
 * `--minutes` (default 10), watched for memory growth and checked for lost
 * messages.
 *
 * Traffic, all through the client SDK (src/client/), each at a bounded rate:
 * - queue: a producer publishes `QUEUE_PER_TICK` messages per tick to one
 *   queue; two consumers ACK every message;
 * - topics: a publisher spreads `TOPIC_PER_TICK` per tick over 4 topics; one
 *   client subscribes to all of them with a wildcard, another to one exactly;
 * - request/reply: a requester sends one request at a time to a queue a
 *   responder answers, `RPC_PAUSE_MS` apart;
 * - churn: connect, subscribe, publish to it, receive, disconnect, in a loop.
 *
 * Every `--report-seconds` (30) it prints the broker's RSS, heap (used, of the
 * heap's reserved size), external memory (ArrayBuffers), event-loop lag (from
 * /api/stats: `server.mem`, `server.event_loop_lag_ms`) and the message
 * counts. At the end it fits lines (least squares over the second half of the
 * run: see `WARMUP_FRACTION`) to the places a leak would show: the heap's floor
 * after collections, the external memory, and RSS outside the JS heap (`series`
 * says why V8's heap reservation is shown but not judged); it passes when none
 * grew beyond the noise (`growthLimit`), every queue message published was received and
 * acked (the queue ends empty with nothing in flight), every topic
 * subscriber got every message it matched, every request got its reply and
 * every churn cycle its message.
 *
 * Run: `deno task bench:soak [--minutes N] [--runtime deno|bun] [--data-dir DIR]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Client, connect, type Message } from "../src/client/mod.ts";
import { type BrokerChild, mib, runtimesOf, startBrokerChild } from "./broker_child.ts";

/** One tick of the producers. */
const TICK_MS = 100;
/** Queue messages per tick (200/s): moderate, so the run measures leaks and not saturation. */
const QUEUE_PER_TICK = 20;
/** Topic messages per tick (200/s), over `TOPICS` topics. */
const TOPIC_PER_TICK = 20;
const TOPICS = 4;
/** Pause between request/reply round trips (at most ~50/s). */
const RPC_PAUSE_MS = 20;
/** Pause between churn cycles (at most ~10 connections/s). */
const CHURN_PAUSE_MS = 100;
/** Payload size of every message. */
const PAYLOAD_BYTES = 128;
/** Memory is sampled this often for the fit (the report is every `--report-seconds`). */
const SAMPLE_MS = 5_000;
/**
 * The first half of the run is warm-up, not fitted: JIT tiers, the runtime's code pages (the
 * binary's text enters RSS as it is first run) and allocator pools grow to their working size.
 * V8's young generation may go on growing after it (see `series`), which is why `heap_total` and
 * RSS as a whole are shown and not judged.
 */
const WARMUP_FRACTION = 0.5;
/** Growth over the fitted window below this is noise whatever the samples say (see `growthLimit`). */
const GROWTH_FLOOR_BYTES = 4 * 1024 * 1024;
/** Longest wait at the end for the consumers to receive everything published. */
const SETTLE_TIMEOUT_MS = 30_000;
/** Longest one churn cycle or one request may take. */
const OP_TIMEOUT_MS = 5_000;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    minutes: { type: "string", default: "10" },
    runtime: { type: "string", default: "deno" },
    "data-dir": { type: "string" },
    "report-seconds": { type: "string", default: "30" },
    traffic: { type: "string", default: "queue,topics,rpc,churn" },
    /** `NAME=VALUE` for the broker child, repeatable (e.g. `MALLOC_ARENA_MAX=2` for an A/B). */
    env: { type: "string", multiple: true, default: [] },
  },
});
/** The broker child's extra environment, from `--env NAME=VALUE`. */
const ENV = Object.fromEntries(values.env.map((kv) => {
  const i = kv.indexOf("=");
  if (i < 1) throw new RangeError(`--env takes NAME=VALUE, got "${kv}"`);
  return [kv.slice(0, i), kv.slice(i + 1)];
}));
const MINUTES = Number(values.minutes);
const REPORT_MS = Number(values["report-seconds"]) * 1000;
const [RUNTIME] = runtimesOf(values.runtime);
/** Which kinds of traffic run (all by default; fewer to find which one a growth comes from). */
const TRAFFIC = new Set(values.traffic.split(","));
for (const t of TRAFFIC) {
  if (!["queue", "topics", "rpc", "churn"].includes(t)) {
    throw new RangeError(`unknown traffic "${t}"`);
  }
}
if (!(MINUTES > 0) || !(REPORT_MS > 0)) throw new RangeError("--minutes and --report-seconds > 0");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const body = (tag: string, n: number) => `${tag}-${n}-`.padEnd(PAYLOAD_BYTES, "x");
/** The sequence number a `body()` carries. */
const seqOf = (m: Message) => Number(m.text().split("-")[1]);

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, rej) =>
      timer = setTimeout(() => rej(new Error(`${what}: timeout`)), ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

/** Everything the traffic counted. */
const counts = {
  queuePublished: 0,
  queueReceived: new Set<number>(),
  queueDeliveries: 0,
  queueAcked: 0,
  topicPublished: 0,
  topicPublishedExact: 0,
  topicWildcard: 0,
  topicExact: 0,
  rpcSent: 0,
  rpcReplied: 0,
  rpcMaxMs: 0,
  churnCycles: 0,
  errors: [] as string[],
};

function fail(what: string, e: unknown): void {
  if (counts.errors.length < 20) counts.errors.push(`${what}: ${(e as Error).message ?? e}`);
}

/** One memory sample. */
interface Sample {
  minutes: number;
  rss: number;
  heap: number;
  /** The heap's reserved size, and what the engine holds outside it (ArrayBuffers). */
  heapTotal: number;
  external: number;
}

/** A point of a series a line is fitted to. */
interface Point {
  minutes: number;
  bytes: number;
}

/** Least-squares slope (bytes per minute) and the residuals' standard deviation. */
function fit(points: Point[]): { slope: number; sigma: number } {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.minutes, 0) / n;
  const my = points.reduce((a, p) => a + p.bytes, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.minutes - mx) * (p.bytes - my);
    sxx += (p.minutes - mx) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const res = points.map((p) => p.bytes - (my + slope * (p.minutes - mx)));
  const sigma = Math.sqrt(res.reduce((a, r) => a + r * r, 0) / Math.max(1, n - 2));
  return { slope, sigma };
}

/**
 * The heap's floor: the smallest `heap_used` of each sixth of the window (at most 2 minutes;
 * several young collections each in a 10-minute run), what is left right after a collection. Live objects raise it; garbage between collections does not, and that
 * garbage grows with the young generation (the sawtooth's height follows the new space's size).
 */
function heapFloor(samples: Sample[]): Point[] {
  const t0 = samples[0].minutes;
  const window = samples[samples.length - 1].minutes - t0;
  const width = Math.max(SAMPLE_MS / 60_000, Math.min(2, window / 6));
  const floors = new Map<number, Point>();
  for (const s of samples) {
    const bucket = Math.floor((s.minutes - t0) / width);
    const f = floors.get(bucket);
    if (f === undefined || s.heap < f.bytes) {
      floors.set(bucket, { minutes: s.minutes, bytes: s.heap });
    }
  }
  return [...floors.values()];
}

/** The fitted window must be at least this long (a quarter of a short diagnostic run). */
const STEADY_MINUTES_MIN = Math.min(2, MINUTES / 4);

/**
 * The samples from V8's last step up of its heap reservation on: `heap_total` rising by more
 * than `GROWTH_FLOOR_BYTES` between two samples 5 s apart is V8 doubling its young generation (the
 * steps seen here: +7, +15, +25 MiB, the last at 7-8 minutes of a 10-minute run, then flat through
 * 20 minutes), and the runtime's own bookkeeping for the bigger heap steps RSS outside the heap by a
 * few MiB with it. The steady state is after the last step.
 */
function steadyState(samples: Sample[]): Sample[] {
  let from = 0;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i].heapTotal - samples[i - 1].heapTotal > GROWTH_FLOOR_BYTES) from = i;
  }
  return samples.slice(from);
}

/**
 * The series of the verdict, each one place a leak would show, and the two that only explain RSS.
 * `heap_total` is V8's reservation, mostly its young generation, which V8 grows in steps with the
 * allocation rate up to its cap (here 64 MiB of new space): bounded by design, so not judged;
 * RSS is judged through its two parts, the heap's floor and what lies outside the heap.
 */
function series(samples: Sample[]): { name: string; judged: boolean; points: Point[] }[] {
  const of = (f: (s: Sample) => number) =>
    samples.map((s) => ({ minutes: s.minutes, bytes: f(s) }));
  return [
    { name: "heap floor", judged: true, points: heapFloor(samples) },
    { name: "external", judged: true, points: of((s) => s.external) },
    { name: "rss - heap_total", judged: true, points: of((s) => s.rss - s.heapTotal) },
    { name: "heap_total", judged: false, points: of((s) => s.heapTotal) },
    { name: "rss", judged: false, points: of((s) => s.rss) },
    { name: "heap_used", judged: false, points: of((s) => s.heap) },
  ];
}

/**
 * How much a fitted line may rise over the window and still be noise: heap_used is a sawtooth
 * between collections and RSS steps as the allocator maps and returns pages, so the larger of
 * twice the samples' scatter around the line and `GROWTH_FLOOR_BYTES`. A leak grows without bound:
 * at the ~30,000 message operations per minute here, 4 MiB over the 5 fitted minutes of a
 * 10-minute run is ~28 B per operation, so any leak of a message, a timer or a subscription shows.
 */
function growthLimit(sigma: number): number {
  return Math.max(GROWTH_FLOOR_BYTES, 2 * sigma);
}

const addr = (broker: BrokerChild) => `127.0.0.1:${broker.port}`;
const opts = { reconnect: false } as const;

/** Two queue consumers that ACK every message. */
async function queueConsumers(broker: BrokerChild): Promise<Client[]> {
  const clients = await Promise.all([connect(addr(broker), opts), connect(addr(broker), opts)]);
  for (const c of clients) {
    await c.subscribe("queue:soak.work", {
      prefetch: 100,
      callback: async (m) => {
        counts.queueDeliveries++;
        counts.queueReceived.add(seqOf(m));
        await m.ack();
        counts.queueAcked++;
      },
    });
  }
  return clients;
}

/** A wildcard subscriber of every soak topic, and one of topic 0 only. */
async function topicSubscribers(broker: BrokerChild): Promise<Client[]> {
  const wild = await connect(addr(broker), opts);
  const exact = await connect(addr(broker), opts);
  await wild.subscribe("topic:soak.t.*", { callback: () => void counts.topicWildcard++ });
  await exact.subscribe("topic:soak.t.0", { callback: () => void counts.topicExact++ });
  return [wild, exact];
}

/** The queue and topic producers, one tick at a time until `end`. */
async function produce(client: Client, end: number): Promise<void> {
  let q = 0;
  let t = 0;
  while (Date.now() < end) {
    const tickEnd = Date.now() + TICK_MS;
    const pubs: Promise<unknown>[] = [];
    for (let k = 0; TRAFFIC.has("queue") && k < QUEUE_PER_TICK; k++) {
      pubs.push(
        client.publish("queue:soak.work", body("q", q++)).then(() => counts.queuePublished++),
      );
    }
    for (let k = 0; TRAFFIC.has("topics") && k < TOPIC_PER_TICK; k++, t++) {
      const topic = t % TOPICS;
      pubs.push(
        client.publish(`topic:soak.t.${topic}`, body("t", t)).then(() => {
          counts.topicPublished++;
          if (topic === 0) counts.topicPublishedExact++;
        }),
      );
    }
    try {
      await Promise.all(pubs);
    } catch (e) {
      fail("publish", e);
    }
    await sleep(Math.max(0, tickEnd - Date.now()));
  }
}

/** A responder on `queue:soak.rpc` and a requester, one request at a time, until `end`. */
async function requestReply(broker: BrokerChild, end: number): Promise<Client[]> {
  const responder = await connect(addr(broker), opts);
  await responder.subscribe("queue:soak.rpc", {
    callback: async (m) => {
      await m.respond(m.body);
      await m.ack();
    },
  });
  const requester = await connect(addr(broker), opts);
  for (let n = 0; Date.now() < end; n++) {
    const t0 = performance.now();
    counts.rpcSent++;
    try {
      const reply = await requester.request("queue:soak.rpc", body("r", n), {
        timeoutMs: OP_TIMEOUT_MS,
      });
      if (seqOf(reply) !== n) throw new Error(`reply ${seqOf(reply)} to request ${n}`);
      counts.rpcReplied++;
      counts.rpcMaxMs = Math.max(counts.rpcMaxMs, performance.now() - t0);
    } catch (e) {
      fail("request", e);
    }
    await sleep(RPC_PAUSE_MS);
  }
  return [responder, requester];
}

/** Connect, subscribe, publish to it, receive it, disconnect; until `end`. */
async function churn(broker: BrokerChild, end: number): Promise<void> {
  for (let n = 0; Date.now() < end; n++) {
    let c: Client | undefined;
    try {
      c = await connect(addr(broker), opts);
      const dest = `topic:soak.churn.${n % 1000}`;
      const sub = await c.subscribe(dest);
      const it = sub[Symbol.asyncIterator]();
      await c.publish(dest, body("c", n));
      const got = await withTimeout(it.next(), OP_TIMEOUT_MS, "churn message");
      if (got.done || seqOf(got.value) !== n) throw new Error(`churn cycle ${n} got no message`);
      counts.churnCycles++;
    } catch (e) {
      fail("churn", e);
    } finally {
      await c?.close();
    }
    await sleep(CHURN_PAUSE_MS);
  }
}

function countsLine(): string {
  return `queue ${counts.queuePublished} published / ${counts.queueReceived.size} received / ${counts.queueAcked} acked; ` +
    `topics ${counts.topicPublished} published, wildcard ${counts.topicWildcard}, exact ${counts.topicExact}; ` +
    `rpc ${counts.rpcReplied}/${counts.rpcSent}; churn ${counts.churnCycles}`;
}

/** Samples memory every `SAMPLE_MS` and prints a report every `REPORT_MS`, until `end`. */
async function watch(
  broker: BrokerChild,
  t0: number,
  end: number,
  samples: Sample[],
): Promise<void> {
  let nextReport = t0 + REPORT_MS;
  while (Date.now() < end && broker.alive()) {
    await sleep(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
    const s = await broker.serverStats().catch((e) => (fail("stats", e), undefined));
    if (!s) continue;
    const minutes = (Date.now() - t0) / 60_000;
    samples.push({
      minutes,
      rss: s.mem.rss,
      heap: s.mem.heap_used,
      heapTotal: s.mem.heap_total,
      external: s.mem.external,
    });
    if (Date.now() >= nextReport) {
      nextReport += REPORT_MS;
      const lag = s.event_loop_lag_ms;
      console.log(
        `${minutes.toFixed(1).padStart(5)} min  rss ${mib(s.mem.rss)}  heap ${
          mib(s.mem.heap_used)
        } of ${mib(s.mem.heap_total)}  external ${mib(s.mem.external)}  lag ${
          lag ? `${lag.last.toFixed(1)} ms (max ${lag.max.toFixed(1)})` : "-"
        }  conns ${s.connections} topics ${s.topics} queues ${s.queues}  ${countsLine()}`,
      );
    }
  }
}

/** Waits (bounded) until every queue message published was received and acked. */
async function settle(): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (
      counts.queueReceived.size === counts.queuePublished &&
      counts.queueAcked >= counts.queuePublished &&
      counts.topicWildcard >= counts.topicPublished &&
      counts.topicExact >= counts.topicPublishedExact
    ) return;
    await sleep(100);
  }
}

/** The checks of the end of the run; each failure is one line. */
async function verify(broker: BrokerChild, samples: Sample[]): Promise<string[]> {
  const failures = [...counts.errors];
  if (!broker.alive()) failures.push(`the broker died: ${JSON.stringify(await broker.status)}`);
  if (counts.queueReceived.size !== counts.queuePublished) {
    failures.push(`queue: ${counts.queuePublished - counts.queueReceived.size} messages lost`);
  }
  if (counts.queueAcked !== counts.queueDeliveries) {
    failures.push("queue: a delivery was not acked");
  }
  if (counts.topicWildcard !== counts.topicPublished) {
    failures.push(`wildcard got ${counts.topicWildcard} of ${counts.topicPublished}`);
  }
  if (counts.topicExact !== counts.topicPublishedExact) {
    failures.push(`exact subscriber got ${counts.topicExact} of ${counts.topicPublishedExact}`);
  }
  if (counts.rpcReplied !== counts.rpcSent) {
    failures.push(`rpc: ${counts.rpcSent - counts.rpcReplied} without a reply`);
  }
  if (broker.alive()) {
    const all = await broker.stats("limit=100&closed=0&subs=false");
    const q = all.queues.list.find((q: { name: string }) => q.name.endsWith("soak.work"));
    if (!q) {
      if (TRAFFIC.has("queue")) failures.push("queue soak.work missing from /api/stats");
    } else if (q.depth !== 0 || q.inflight !== 0 || q.acked !== counts.queuePublished) {
      failures.push(
        `broker's queue: depth ${q.depth}, inflight ${q.inflight}, acked ${q.acked} of ${counts.queuePublished}`,
      );
    }
    const closed = all.server.closed_by_reason;
    for (const reason of ["INTERNAL_ERROR", "SLOW_CONSUMER", "STALE_CONNECTION", "WRITE_ERROR"]) {
      if (closed[reason] > 0) failures.push(`${closed[reason]} connections closed for ${reason}`);
    }
  }
  const warm = steadyState(samples.filter((s) => s.minutes >= MINUTES * WARMUP_FRACTION));
  const span = warm.length < 2 ? 0 : warm[warm.length - 1].minutes - warm[0].minutes;
  if (span < STEADY_MINUTES_MIN) {
    failures.push(
      `only ${span.toFixed(1)} min of steady state (V8 still growing its heap): run longer`,
    );
  } else {
    const window = span;
    console.log(`fitted from ${warm[0].minutes.toFixed(1)} min (${warm.length} samples)`);
    for (const { name, judged, points } of series(warm)) {
      if (points.length < 3) {
        if (judged) failures.push(`${name}: only ${points.length} points after the warm-up`);
        continue;
      }
      const { slope, sigma } = fit(points);
      const growth = slope * window;
      const limit = growthLimit(sigma);
      const verdict = growth <= limit ? "within noise" : "GROWING";
      console.log(
        `${name.padEnd(16)} slope ${(slope / 1024).toFixed(1).padStart(7)} KiB/min over ${
          window.toFixed(1)
        } min (${points.length} points): ${growth >= 0 ? "+" : ""}${mib(growth)} fitted, ` +
          `noise limit ${mib(limit)} (2 sigma ${mib(2 * sigma)}, floor ${
            mib(GROWTH_FLOOR_BYTES)
          }) -> ${judged ? verdict : `${verdict.toLowerCase()} (shown, not judged)`}`,
      );
      if (judged && growth > limit) {
        failures.push(`${name} grew ${mib(growth)} (limit ${mib(limit)})`);
      }
    }
  }
  return failures;
}

async function main(): Promise<boolean> {
  const store = values["data-dir"] ? ["--data-dir", values["data-dir"]] : ["--memory"];
  const broker = await startBrokerChild({ runtime: RUNTIME, args: store, env: ENV });
  console.log(
    `soak: ${MINUTES} min on ${RUNTIME} (${store.join(" ")}), broker pid ${broker.pid}; ` +
      `${(QUEUE_PER_TICK * 1000) / TICK_MS} queue msgs/s, ${
        (TOPIC_PER_TICK * 1000) / TICK_MS
      } topic msgs/s, ` +
      `rpc and churn back to back; ${PAYLOAD_BYTES} B payloads; traffic ${[...TRAFFIC].join(",")}` +
      (values.env.length > 0 ? `; env ${values.env.join(" ")}` : ""),
  );
  const clients: Client[] = [];
  try {
    if (TRAFFIC.has("queue")) clients.push(...await queueConsumers(broker));
    if (TRAFFIC.has("topics")) clients.push(...await topicSubscribers(broker));
    const producer = await connect(addr(broker), opts);
    clients.push(producer);
    const t0 = Date.now();
    const end = t0 + MINUTES * 60_000;
    const samples: Sample[] = [];
    const [, rpcClients] = await Promise.all([
      produce(producer, end),
      TRAFFIC.has("rpc") ? requestReply(broker, end) : [],
      TRAFFIC.has("churn") ? churn(broker, end) : undefined,
      watch(broker, t0, end, samples),
    ]);
    clients.push(...rpcClients);
    await settle();
    const last = await broker.serverStats();
    console.log(
      `end: ${countsLine()}; queue deliveries ${counts.queueDeliveries} (redelivered ${
        counts.queueDeliveries - counts.queueReceived.size
      }); rpc max ${counts.rpcMaxMs.toFixed(1)} ms; lag max ${
        last.event_loop_lag_ms?.max.toFixed(1) ?? "-"
      } ms; rss ${mib(last.mem.rss)} heap ${mib(last.mem.heap_used)}`,
    );
    const failures = await verify(broker, samples);
    for (const f of failures) console.log(`FAIL ${f}`);
    console.log(failures.length === 0 ? "PASS" : "FAIL");
    return failures.length === 0;
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await broker.stop();
  }
}

Deno.exit((await main()) ? 0 : 1);
