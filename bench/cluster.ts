/**
 * `deno task bench:cluster`: clustering under kill loops and load, with a
 * real etcd and three broker processes (etcd-server installed).
 *
 * 1. Leader failover, `--rounds` times (default 5): the leader of a queue
 *    is SIGKILLed while a survivor publishes to it in a loop; the time until
 *    a publish is answered OK by a new leader (the survivor, which claims
 *    the queue once the dead one's lease lapsed) with a larger epoch is
 *    measured, the dead node is restarted
 *    (after its lease lapsed) and rejoins. Checks every round: exactly one
 *    leader in every node's view once settled, epochs strictly increasing.
 * 2. Topic throughput, one publisher and one subscriber: both on n1 (local),
 *    then publisher on n1 and subscriber on n2 (across the link), in one run
 *    (the machine is shared: compare the two numbers, not across runs).
 * 3. Replicated queue (`cluster_r3.ts`): one publisher keeping `--window`
 *    publishes unacknowledged and one ACKing consumer, on single-node Relayr
 *    (durable log), Relayr R3 (the three nodes; publisher and consumer on the
 *    node that leads the queue, then, when the build forwards queue commands,
 *    publisher and consumer on the two other nodes) and a three-server
 *    JetStream cluster with an R3 file stream: msgs/s and publish-to-OK
 *    latency, printed as ratios.
 *
 * 4. Declared topic (`--scenarios declared`, not in the default): one
 *    publisher on n2 pipelining `--queue-msgs` PUBs to a topic declared and
 *    led by n1 (forwarded, each OK once a majority of three holds it), one
 *    subscriber on n3 (fed by n1's link), beside a plain topic on the same
 *    nodes, in one run.
 *
 * With `--link-tls`, the topic run across the link and the two Relayr R3 runs
 * go again on a second cluster whose inter-node link is mutual TLS
 * (certificates made with `openssl`), each in turn with the plain one, a few
 * rounds, in the same run: what TLS on the link costs.
 *
 * `--scenarios failover,topic,queue,declared` picks which run (default the first three). The
 * queue scenario runs `--warmup` messages (default 2000) on each system before
 * it measures; `--tail` prints where the slowest 1% sat in the run, and the
 * warm-up's p99; `--queue-rounds N` runs the loaded run on Relayr R3 and
 * JetStream R3 in turn N times and prints the medians of their ratios.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startServerProcess } from "../tests/child.ts";
import { Etcd, ETCD_MISSING } from "../tests/cluster/etcd.ts";
import {
  clusterOf,
  leaderIn,
  type Node,
  publishOn,
  startNode,
  takeOver,
  untilView,
} from "../tests/cluster/cluster_helpers.ts";
import { linkTlsArgs, makeLinkCerts } from "../tests/cluster/link_tls_certs.ts";
import { drivers } from "./drivers/mod.ts";
import { measureQueue, NatsCluster, type QueueResult, type QueueRun } from "./cluster_r3.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    msgs: { type: "string", default: "200000" },
    size: { type: "string", default: "128" },
    ttl: { type: "string", default: "1" },
    scenarios: { type: "string", default: "failover,topic,queue" },
    "queue-msgs": { type: "string", default: "20000" },
    window: { type: "string", default: "100" },
    warmup: { type: "string", default: "2000" },
    "queue-rounds": { type: "string", default: "1" },
    tail: { type: "boolean", default: false },
    "link-tls": { type: "boolean", default: false },
  },
});
if (ETCD_MISSING !== undefined) {
  console.error(ETCD_MISSING);
  Deno.exit(1);
}
const ROUNDS = Number(values.rounds);
const MSGS = Number(values.msgs);
const SIZE = Number(values.size);
const TTL = ["--cluster-lease-ttl", values.ttl];
const SCENARIOS = new Set(values.scenarios.split(","));
/** Messages of the one-at-a-time latency run of the queue scenario. */
const LATENCY_MSGS = 2000;
/** Plain and TLS runs (topic, and each R3 queue run) taken in turn with `--link-tls`. */
const TLS_ROUNDS = 3;
const enc = new TextEncoder();

/** Counts line ends on a socket until `lines` have arrived. */
async function countLines(conn: Deno.TcpConn, lines: number): Promise<void> {
  const buf = new Uint8Array(1 << 20);
  let seen = 0;
  while (seen < lines) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`socket closed after ${seen} of ${lines} lines`);
    for (let i = 0; i < n; i++) if (buf[i] === 10) seen++;
  }
}

async function throughput(
  pubPort: number,
  subPort: number,
  sub: Node,
  pubNode: Node,
  topic: string,
  msgs = MSGS,
) {
  const s = await Deno.connect({ hostname: "127.0.0.1", port: subPort });
  await s.write(enc.encode(`SUB ${topic}\r\n`));
  await countLines(s, 1); // OK
  if (sub !== pubNode) {
    await untilView(
      pubNode,
      (c) => (c.links.find((l) => l.node === sub.id)?.patterns ?? 0) > 0,
      "interest",
    );
  }
  const p = await Deno.connect({ hostname: "127.0.0.1", port: pubPort });
  const payload = "x".repeat(SIZE);
  const frame = `PUB ${topic} ${SIZE}\r\n${payload}\r\n`;
  const batch = enc.encode(frame.repeat(1000));
  const t0 = performance.now();
  const received = countLines(s, msgs * 2); // MSG line + payload line
  const acked = countLines(p, msgs);
  for (let i = 0; i < msgs / 1000; i++) {
    let off = 0;
    while (off < batch.length) off += await p.write(batch.subarray(off));
  }
  await acked;
  await received;
  const ms = performance.now() - t0;
  p.close();
  s.close();
  return Math.round(msgs / (ms / 1000));
}

/** Scenario 4 (see the module doc): a declared topic led by n1 beside a plain one. */
async function declaredTopic(n1: Node, n2: Node, n3: Node): Promise<void> {
  const msgs = Number(values["queue-msgs"]);
  const c = await Deno.connect({ hostname: "127.0.0.1", port: n1.port });
  await c.write(enc.encode("DECLARE topic:bench.declared retain_messages:10000000\r\n"));
  await countLines(c, 1); // OK
  c.close();
  await untilView(n2, (v) => leaderIn(v, "topic:bench.declared")?.node === "n1", "n1 leads");
  const plain = await throughput(n2.port, n3.port, n3, n2, "topic:bench.plain", msgs);
  const led = await throughput(n2.port, n3.port, n3, n1, "topic:bench.declared", msgs);
  console.log(
    `topic ${msgs} x ${SIZE} B, publisher on n2, subscriber on n3: plain ${plain} msgs/s, ` +
      `declared (led by n1, R3) ${led} msgs/s (${(led / plain).toFixed(2)}x)`,
  );
}

const etcd = await Etcd.start();
const nodes = new Map<string, Node>();
try {
  for (const id of ["n1", "n2", "n3"]) nodes.set(id, await startNode(etcd.url, id, TTL));
  if (SCENARIOS.has("failover")) await failover(nodes);
  const n1 = nodes.get("n1")!;
  const n2 = nodes.get("n2")!;
  if (SCENARIOS.has("topic")) {
    const local = await throughput(n1.port, n1.port, n1, n1, "topic:bench.local");
    const cross = await throughput(n1.port, n2.port, n2, n1, "topic:bench.cross");
    console.log(
      `topic ${MSGS} x ${SIZE} B, 1 pub 1 sub: same node ${local} msgs/s, across the link ${cross} msgs/s (${
        (cross / local).toFixed(2)
      }x)`,
    );
    const v = await clusterOf(n1);
    console.log(`n1 links: ${JSON.stringify(v.links)}`);
    if (values["link-tls"]) await topicOverTls(n1, n2);
  }
  if (SCENARIOS.has("queue")) await replicatedQueue(n1, n2, nodes.get("n3")!);
  if (SCENARIOS.has("queue") && values["link-tls"]) await queueOverTls([n1, n2, nodes.get("n3")!]);
  if (SCENARIOS.has("declared")) await declaredTopic(n1, n2, nodes.get("n3")!);
} finally {
  for (const n of nodes.values()) await n.stop("SIGKILL");
  await etcd.stop();
}

/** Kills the leader of a queue held on all three nodes `--rounds` times (see the module doc). */
async function failover(nodes: Map<string, Node>): Promise<void> {
  for (const n of nodes.values()) await publishOn(n, "queue:q", "hold");
  const first = await untilView(
    nodes.get("n1")!,
    (c) => leaderIn(c, "queue:q") !== undefined,
    "leader",
  );
  let epoch = leaderIn(first, "queue:q")!.epoch;
  let leader = leaderIn(first, "queue:q")!.node;
  const times: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const dead = nodes.get(leader)!;
    const t0 = performance.now();
    await dead.stop("SIGKILL");
    const survivor = [...nodes.values()].find((n) => n !== dead)!;
    // Queue commands go to the leader: the survivor's next publish after the lease lapsed claims q.
    const v = await takeOver(survivor, "queue:q", 2, 30_000);
    times.push(Math.round(performance.now() - t0));
    const next = leaderIn(v, "queue:q")!;
    if (next.node === dead.id || next.epoch <= epoch) {
      throw new Error(`round ${r}: bad leader ${JSON.stringify(next)}`);
    }
    // Every live node settles on the same one leader.
    for (const n of nodes.values()) {
      if (n === dead) continue;
      await untilView(
        n,
        (c) => leaderIn(c, "queue:q")?.epoch === next.epoch,
        `round ${r}: ${n.id} agrees`,
      );
    }
    // The dead node comes back under its id and holds q again (a candidate for the next round).
    const back = await startNode(etcd.url, dead.id, TTL);
    nodes.set(dead.id, back);
    await publishOn(back, "queue:q", "hold");
    await untilView(back, (c) => c.members.length === 3, `round ${r}: ${dead.id} rejoined`);
    console.log(
      `round ${r}: ${dead.id} killed (epoch ${epoch}), ${next.node} leads (epoch ${next.epoch}) after ${
        times.at(-1)
      } ms`,
    );
    epoch = next.epoch;
    leader = next.node;
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(
    `failover with --cluster-lease-ttl ${values.ttl}: median ${
      sorted[sorted.length >> 1]
    } ms, max ${sorted.at(-1)} ms over ${ROUNDS} rounds`,
  );
}

/**
 * One line of the queue table: the loaded run, then the one-at-a-time
 * latency run; with `--tail`, where the loaded run's slowest 1% sit and the
 * warm-up's p99.
 */
function row([r, alone, warm]: QueueResult[], base?: QueueResult[]): string {
  const vs = base === undefined
    ? ""
    : `  (${(r.rate / base[0].rate).toFixed(2)}x ${base[0].system})`;
  const ms = (x: number) => x.toFixed(2);
  return `  ${r.system.padEnd(24)} ${String(r.rate).padStart(7)} msgs/s, publish-to-OK p50 ${
    ms(r.p50Ms)
  } ms p99 ${ms(r.p99Ms)} ms; one at a time p50 ${ms(alone.p50Ms)} ms p99 ${
    ms(alone.p99Ms)
  } ms${vs}${
    values.tail
      ? `; p99 tail by tenth ${r.tail.join(",")}${
        warm === undefined ? "" : `; warm-up p99 ${ms(warm.p99Ms)} ms (tail ${warm.tail.join(",")})`
      }`
      : ""
  }`;
}

/**
 * The replicated-queue scenario on one system: a warm-up (`--warmup`
 * messages, loaded, not in the table), a loaded run (`--window` publishes
 * unacknowledged) and a latency run (one at a time), same queue. The warm-up
 * keeps the queue's making out of the measure: on Relayr R3 the first PUB
 * claims the queue, picks its replicas and snapshots it to them (the first
 * window waited 57-127 ms for it here), while the JetStream stream is made
 * before its run; it also leaves no code to compile in the measured run.
 */
async function queueRuns(
  base: Omit<QueueRun, "msgs" | "size" | "window" | "prefetch">,
): Promise<QueueResult[]> {
  const msgs = Number(values["queue-msgs"]);
  const warmup = Number(values.warmup);
  const warm = warmup === 0 ? undefined : await measureQueue({
    ...base,
    msgs: warmup,
    size: SIZE,
    window: Number(values.window),
    prefetch: 1000,
  });
  const loaded = await measureQueue({
    ...base,
    msgs,
    size: SIZE,
    window: Number(values.window),
    prefetch: 1000,
  });
  const alone = await measureQueue({
    ...base,
    msgs: Math.min(msgs, LATENCY_MSGS),
    size: SIZE,
    window: 1,
    prefetch: 1000,
  });
  return warm === undefined ? [loaded, alone] : [loaded, alone, warm];
}

/**
 * The replicated-queue scenario: Relayr single node, Relayr R3 on `leader`
 * (and, when the build forwards queue commands, through two other nodes),
 * JetStream R3.
 */
async function replicatedQueue(leader: Node, other: Node, third: Node): Promise<void> {
  const single = await startServerProcess(Deno.execPath(), ["run", "-A", "main.ts", "serve"]);
  let one: QueueResult[];
  try {
    one = await queueRuns({
      system: "relayr (1 node, log)",
      driver: drivers.relayr,
      name: "r1",
      pubPort: single.port,
      subPort: single.port,
    });
  } finally {
    await single.stop("SIGKILL");
  }
  // The first PUB to the queue on the node makes it the queue's leader.
  const r3 = await queueRuns({
    system: "relayr R3 (3 nodes)",
    driver: drivers.relayr,
    name: "r3",
    pubPort: leader.port,
    subPort: leader.port,
  });
  // A build that forwards queue commands to the leader counts them in /api/cluster.
  const forwards = "forwarded_commands" in await clusterOf(other);
  const via = forwards
    ? await queueRuns({
      system: "relayr R3 via followers",
      driver: drivers.relayr,
      name: "r3",
      pubPort: other.port,
      subPort: third.port,
    })
    : undefined;
  const nats = await NatsCluster.start("r3");
  let js: QueueResult[];
  let more: [QueueResult, QueueResult][] = [];
  try {
    const jsRun = {
      system: "nats-js R3 (3 servers)",
      driver: drivers["nats-js"],
      name: "r3",
      pubPort: nats.ports[0],
      subPort: nats.ports[0],
    };
    js = await queueRuns(jsRun);
    more = await moreRounds(
      {
        system: "relayr R3",
        driver: drivers.relayr,
        name: "r3",
        pubPort: leader.port,
        subPort: leader.port,
      },
      jsRun,
    );
  } finally {
    await nats.stop();
  }
  console.log(
    `queue ${
      values["queue-msgs"]
    } x ${SIZE} B, 1 publisher (window ${values.window}; then one at a time, ` +
      `${
        Math.min(Number(values["queue-msgs"]), LATENCY_MSGS)
      } msgs) and 1 ACKing consumer, one run:`,
  );
  console.log(row(one));
  console.log(row(r3, one));
  if (via !== undefined) console.log(row(via, one));
  else console.log("  (this build does not forward queue commands: no run through other nodes)");
  console.log(row(js));
  console.log(
    `  relayr R3 / nats-js R3: rate ${
      (r3[0].rate / js[0].rate).toFixed(2)
    }x (above 1: Relayr faster); ` +
      `publish-to-OK p50 ${(r3[0].p50Ms / js[0].p50Ms).toFixed(2)}x, p99 ${
        (r3[0].p99Ms / js[0].p99Ms).toFixed(2)
      }x, one at a time p50 ${(r3[1].p50Ms / js[1].p50Ms).toFixed(2)}x (below 1: Relayr faster)`,
  );
  if (more.length === 0) return;
  const rounds: [QueueResult, QueueResult][] = [[r3[0], js[0]], ...more];
  const median = (f: (a: QueueResult, b: QueueResult) => number) => {
    const v = rounds.map(([a, b]) => f(a, b)).sort((x, y) => x - y);
    return v[v.length >> 1].toFixed(2);
  };
  console.log(
    `  ${rounds.length} loaded rounds in turn, relayr R3 / nats-js R3 per round: p99 ${
      rounds.map(([a, b]) => (a.p99Ms / b.p99Ms).toFixed(2)).join(" ")
    }; medians: rate ${median((a, b) => a.rate / b.rate)}x, p50 ${
      median((a, b) => a.p50Ms / b.p50Ms)
    }x, p99 ${median((a, b) => a.p99Ms / b.p99Ms)}x`,
  );
}

/**
 * `--queue-rounds` above 1: the loaded run again on Relayr R3 and on
 * JetStream R3, in turn, that many times less one (both warm): a stall of
 * the shared machine lands in one round, and the medians of the ratios say
 * more than one run's.
 */
async function moreRounds(
  relayr: Omit<QueueRun, "msgs" | "size" | "window" | "prefetch">,
  js: Omit<QueueRun, "msgs" | "size" | "window" | "prefetch">,
): Promise<[QueueResult, QueueResult][]> {
  const out: [QueueResult, QueueResult][] = [];
  const loaded = {
    msgs: Number(values["queue-msgs"]),
    size: SIZE,
    window: Number(values.window),
    prefetch: 1000,
  };
  for (let i = 1; i < Number(values["queue-rounds"]); i++) {
    out.push([
      await measureQueue({ ...relayr, ...loaded }),
      await measureQueue({ ...js, ...loaded }),
    ]);
  }
  return out;
}

/**
 * The topic run across the link, plain and over link TLS (a second cluster)
 * in turn, `TLS_ROUNDS` times: the shared machine swings between runs, so
 * each TLS run is compared with the plain run next to it.
 */
async function topicOverTls(n1: Node, n2: Node): Promise<void> {
  await withLinkTls(2, async ([t1, t2]) => {
    const ratios: number[] = [];
    for (let r = 1; r <= TLS_ROUNDS; r++) {
      const plain = await throughput(n1.port, n2.port, n2, n1, `topic:bench.plain${r}`);
      const tls = await throughput(t1.port, t2.port, t2, t1, `topic:bench.tls${r}`);
      ratios.push(tls / plain);
      console.log(
        `topic across the link, round ${r}: plain ${plain} msgs/s, link TLS ${tls} msgs/s (${
          (tls / plain).toFixed(2)
        }x)`,
      );
    }
    const sorted = ratios.sort((a, b) => a - b);
    console.log(
      `link TLS / plain, median of ${TLS_ROUNDS}: ${sorted[sorted.length >> 1].toFixed(2)}x`,
    );
  });
}

/**
 * Relayr R3 on the plain cluster and on a second one whose link is mutual
 * TLS, in turn, `TLS_ROUNDS` times each: on the leader (replication only),
 * then through the two other nodes (forwarding and replication).
 */
async function queueOverTls(plain: Node[]): Promise<void> {
  await withLinkTls(3, async (tls) => {
    const run = (nodes: Node[], via: boolean, system: string) =>
      queueRuns({
        system,
        driver: drivers.relayr,
        name: "r3",
        pubPort: nodes[via ? 1 : 0].port,
        subPort: nodes[via ? 2 : 0].port,
      });
    for (const via of [false, true]) {
      const ratios: number[] = [];
      for (let r = 1; r <= TLS_ROUNDS; r++) {
        const a = await run(plain, via, `relayr R3${via ? " via" : ""} plain`);
        const b = await run(tls, via, `relayr R3${via ? " via" : ""} link TLS`);
        ratios.push(b[0].rate / a[0].rate);
        console.log(`round ${r}:\n${row(a)}\n${row(b, a)}`);
      }
      const sorted = ratios.sort((x, y) => x - y);
      console.log(
        `R3${via ? " via followers" : " on the leader"}: link TLS / plain rate, median of ` +
          `${TLS_ROUNDS}: ${sorted[sorted.length >> 1].toFixed(2)}x`,
      );
    }
  });
}

/** Runs `fn` on `count` nodes of a second cluster (its own etcd) whose link is mutual TLS. */
async function withLinkTls<T>(count: number, fn: (nodes: Node[]) => Promise<T>): Promise<T> {
  const certs = await makeLinkCerts(count);
  const etcd2 = await Etcd.start();
  const tlsNodes: Node[] = [];
  try {
    for (let i = 1; i <= count; i++) {
      tlsNodes.push(await startNode(etcd2.url, `n${i}`, [...TTL, ...linkTlsArgs(certs, i)]));
    }
    for (const n of tlsNodes) {
      await untilView(
        n,
        (c) => c.links.length === count - 1 && c.links.every((l) => l.out),
        "links",
      );
    }
    return await fn(tlsNodes);
  } finally {
    for (const n of tlsNodes) await n.stop("SIGKILL");
    await etcd2.stop();
    certs.remove();
  }
}
