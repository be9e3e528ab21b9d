/**
 * `deno run -A bench/replication.ts`: what replication costs a publisher, in
 * one run (the machine is shared: compare the two numbers, not across runs).
 * One connection pipelines `--msgs` PUBs of `--size` bytes to a queue and
 * waits for every OK: first on a single node, then on the leader of the
 * queue in a three-node cluster (real etcd, `--replicas 3`), where each OK
 * waits for a majority. Both under `--fsync` (default interval).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startServerProcess } from "../tests/child.ts";
import { type Node, startNodes } from "../tests/cluster/cluster_helpers.ts";
import { Etcd, ETCD_MISSING } from "../tests/cluster/etcd.ts";
import { leaderOf, publishRetry } from "../tests/cluster/repl_helpers.ts";

const { values } = parseArgs({
  options: {
    msgs: { type: "string", default: "20000" },
    size: { type: "string", default: "128" },
    fsync: { type: "string", default: "interval" },
  },
});
if (ETCD_MISSING !== undefined) {
  console.error(ETCD_MISSING);
  Deno.exit(1);
}
const MSGS = Number(values.msgs);
const SIZE = Number(values.size);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const BATCH = 1000;

/** Pipelines the PUBs in writes of `BATCH`, counts the replies; returns msgs/s. */
async function publish(port: number, queue: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const frame = new TextEncoder().encode(`PUB ${queue} ${SIZE}\r\n${"x".repeat(SIZE)}\r\n`);
  const batch = new Uint8Array(frame.length * BATCH);
  for (let i = 0; i < BATCH; i++) batch.set(frame, i * frame.length);
  const t0 = performance.now();
  const replies = (async () => {
    const buf = new Uint8Array(1 << 20);
    for (let seen = 0; seen < MSGS;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`closed after ${seen} replies`);
      if (buf[0] === 0x45) throw new Error(new TextDecoder().decode(buf.subarray(0, 120)));
      for (let i = 0; i < n; i++) if (buf[i] === 10) seen++;
    }
  })();
  for (let sent = 0; sent < MSGS; sent += BATCH) {
    for (let at = 0; at < batch.length;) at += await conn.write(batch.subarray(at));
  }
  await replies;
  const rate = MSGS / ((performance.now() - t0) / 1000);
  conn.close();
  return Math.round(rate);
}

const single = await startServerProcess(Deno.execPath(), [
  "run",
  "-A",
  MAIN,
  "serve",
  "--fsync",
  values.fsync,
]);
let one: number;
try {
  one = await publish(single.port, "queue:bench");
} finally {
  await single.stop();
}
const etcd = await Etcd.start();
const nodes: Node[] = [];
let r3: number;
try {
  await startNodes(etcd.url, ["n1", "n2", "n3"], ["--fsync", values.fsync], nodes);
  await publishRetry(nodes[0], "queue:bench", "warm-up");
  r3 = await publish((await leaderOf(nodes, "queue:bench")).port, "queue:bench");
} finally {
  for (const n of nodes) await n.stop();
  await etcd.stop();
}
console.log(
  `queue PUB to OK, ${MSGS} x ${SIZE} B pipelined on one connection, --fsync ${values.fsync}: ` +
    `single node ${one} msgs/s, R3 leader ${r3} msgs/s (${(r3 / one).toFixed(2)}x)`,
);
