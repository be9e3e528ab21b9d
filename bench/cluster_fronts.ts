/**
 * `deno run -A bench/cluster_fronts.ts`: what forwarding costs the gRPC and
 * UDP front ends, in one run (the machine is shared: compare the numbers of
 * one run, not across runs). Three nodes on a real etcd (`--replicas 3`); n2
 * leads `queue:local`, n1 leads `queue:remote`; every client talks to n2:
 *
 * - gRPC `PublishStream`: `--batches` batches of `--batch` messages of
 *   `--size` bytes, 8 batches in flight, until every ack came;
 * - gRPC unary `Publish`: `--unary` calls, 32 at once;
 * - UDP: `--datagrams` datagrams of 10 `PUB`s each (paced: `--pause-ms`
 *   after every 20), then the rate at which the leader's queue grew
 *   (loopback UDP may drop under load: what arrived and what the ingest
 *   counted are printed).
 *
 * `--rounds` repeats the lot (the first round warms the JIT up).
 *
 * @module
 */
import dgram from "node:dgram";
import { parseArgs } from "node:util";
import {
  leaderIn,
  type Node,
  publishOn,
  startNode,
  untilView,
} from "../tests/cluster/cluster_helpers.ts";
import { Etcd, ETCD_MISSING } from "../tests/cluster/etcd.ts";
import { GrpcClient, StreamReader } from "../tests/grpc_helpers.ts";

const { values } = parseArgs({
  options: {
    batches: { type: "string", default: "200" },
    batch: { type: "string", default: "100" },
    size: { type: "string", default: "100" },
    unary: { type: "string", default: "3000" },
    datagrams: { type: "string", default: "2000" },
    "pause-ms": { type: "string", default: "1" },
    rounds: { type: "string", default: "2" },
  },
});
if (ETCD_MISSING !== undefined) {
  console.error(ETCD_MISSING);
  Deno.exit(1);
}
const BATCHES = Number(values.batches);
const BATCH = Number(values.batch);
const SIZE = Number(values.size);
const UNARY = Number(values.unary);
const DATAGRAMS = Number(values.datagrams);
const PAUSE_MS = Number(values["pause-ms"]);
const encoder = new TextEncoder();
const body = encoder.encode("x".repeat(SIZE));

/** PublishStream msgs/s to `dest` (and how many acks were errors). */
async function stream(g: GrpcClient, dest: string): Promise<{ rate: number; errors: number }> {
  const call = g.raw.PublishStream();
  const r = new StreamReader<{ acks: { error: unknown }[] }>(call);
  const batch = { messages: Array.from({ length: BATCH }, () => ({ destination: dest, body })) };
  const t0 = performance.now();
  let sent = 0;
  let errors = 0;
  for (; sent < Math.min(8, BATCHES); sent++) call.write(batch);
  for (let got = 0; got < BATCHES; got++) {
    for (const a of (await r.next(60_000)).acks) if (a.error) errors++;
    if (sent < BATCHES) (call.write(batch), sent++);
  }
  const rate = Math.round(BATCHES * BATCH / (performance.now() - t0) * 1000);
  call.end();
  await r.done(10_000);
  return { rate, errors };
}

/** Unary Publish calls/s to `dest`, 32 at once. */
async function unary(g: GrpcClient, dest: string): Promise<{ rate: number; errors: number }> {
  const t0 = performance.now();
  let next = 0;
  let errors = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next++ < UNARY) {
      await g.unary("Publish", { destination: dest, body }).catch(() => errors++);
    }
  }));
  return { rate: Math.round(UNARY / (performance.now() - t0) * 1000), errors };
}

/** The depth of `queue` on `node`. */
async function depth(node: Node, queue: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/stats?limit=1000`);
  const s = await res.json() as { queues: { list: { name: string; depth: number }[] } };
  return s.queues.list.find((q) => q.name === queue)?.depth ?? 0;
}

/** The front node's UDP ingest counters. */
async function udpStats(node: Node): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/stats?limit=1`);
  return ((await res.json()) as { server: { udp: Record<string, number> } }).server.udp;
}

/**
 * UDP: datagrams of 10 PUBs to n2, 20 at a time with a pause of `--pause-ms`
 * between (an unpaced sender overflows the socket's receive buffer); msgs/s
 * at which the leader's queue grew, how many came, and what the ingest
 * counted (datagrams, published here, forwarded, forward_dropped).
 */
async function udp(
  front: Node,
  leader: Node,
  queue: string,
): Promise<{ rate: number; arrived: number; ingest: number[] }> {
  const port = Number(/UDP ingest on [^\s:]+:(\d+)/.exec(front.output())![1]);
  const frame = `PUB ${queue} ${SIZE}\r\n${"x".repeat(SIZE)}\r\n`;
  const datagram = encoder.encode(frame.repeat(10));
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
  const before = await depth(leader, queue);
  const was = await udpStats(front);
  const t0 = performance.now();
  for (let i = 0; i < DATAGRAMS; i++) {
    await new Promise<void>((r) => socket.send(datagram, port, "127.0.0.1", () => r()));
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  await new Promise<void>((r) => socket.close(() => r()));
  // Until the depth stops growing (bounded).
  let last = -1;
  let now = await depth(leader, queue);
  let at = performance.now();
  for (let i = 0; i < 600 && now !== last; i++) {
    last = now;
    await new Promise((r) => setTimeout(r, 100));
    now = await depth(leader, queue);
    if (now !== last) at = performance.now();
  }
  const arrived = now - before;
  const is = await udpStats(front);
  const ingest = ["datagrams", "published", "forwarded", "forward_dropped"]
    .map((k) => is[k] - was[k]);
  return { rate: Math.round(arrived / (at - t0) * 1000), arrived, ingest };
}

const etcd = await Etcd.start();
const nodes: Node[] = [];
try {
  for (const id of ["n1", "n2", "n3"]) {
    nodes.push(await startNode(etcd.url, id, ["--grpc-port", "0", "--udp-port", "0"]));
  }
  const [n1, n2] = nodes;
  for (const n of nodes) await untilView(n, (c) => c.members.length === 3, `${n.id} members`);
  await publishOn(n1, "queue:remote", "x");
  await publishOn(n2, "queue:local", "x");
  await untilView(
    n2,
    (c) => leaderIn(c, "queue:remote")?.node === "n1" && leaderIn(c, "queue:local")?.node === "n2",
    "n2 to see both leaders",
  );
  const g = new GrpcClient(n2.grpcPort!);
  try {
    for (let round = 1; round <= Number(values.rounds); round++) {
      const rows = [
        ["PublishStream msgs/s", await stream(g, "queue:local"), await stream(g, "queue:remote")],
        ["unary Publish calls/s", await unary(g, "queue:local"), await unary(g, "queue:remote")],
        ["UDP msgs/s", await udp(n2, n2, "queue:local"), await udp(n2, n1, "queue:remote")],
      ] as const;
      console.log(`round ${round}: client on n2; local = n2 leads, forwarded = n1 leads`);
      for (const [what, local, fwd] of rows) {
        const ratio = (fwd.rate / local.rate).toFixed(2);
        console.log(
          `  ${what.padEnd(22)} local ${JSON.stringify(local)}  forwarded ${
            JSON.stringify(fwd)
          }  forwarded/local ${ratio}`,
        );
      }
    }
  } finally {
    g.close();
  }
} finally {
  for (const n of nodes) await n.stop("SIGKILL");
  await etcd.stop();
}
