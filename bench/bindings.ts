/**
 * `deno run -A bench/bindings.ts`: what a binding's copy costs a topic
 * publisher, in one run (the machine is shared: compare within the run).
 * One connection pipelines `--msgs` PUBs of `--size` bytes and waits for
 * every OK, to a topic bound to a queue (`BIND topic:bench.> queue:bench`)
 * and, for reference, to the queue itself:
 *
 * - on a single node;
 * - in a three-node cluster (real etcd, `--replicas 3`) on the queue's
 *   leader (the copy is stored and replicated there), and on another node
 *   (the copy goes to the leader over a copy link; the OK waits for it).
 *
 * All under `--fsync` (default interval). `--against <dir>` also runs the
 * single node from another checkout (`git archive <commit> | tar -x -C <dir>`),
 * right after this one's, for an A/B in one run (`--rounds N` times in turn;
 * `--single-only`: no cluster).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startServerProcess } from "../tests/child.ts";
import { pipelinedRate } from "./pipelined.ts";
import { type Node, startNodes } from "../tests/cluster/cluster_helpers.ts";
import { Etcd, ETCD_MISSING } from "../tests/cluster/etcd.ts";
import { leaderOf, publishRetry } from "../tests/cluster/repl_helpers.ts";
import { RawClient } from "../tests/helpers.ts";

const { values } = parseArgs({
  options: {
    msgs: { type: "string", default: "20000" },
    size: { type: "string", default: "128" },
    fsync: { type: "string", default: "interval" },
    against: { type: "string" },
    rounds: { type: "string", default: "1" },
    "single-only": { type: "boolean", default: false },
  },
});
if (ETCD_MISSING !== undefined) {
  console.error(ETCD_MISSING);
  Deno.exit(1);
}
const MSGS = Number(values.msgs);
const SIZE = Number(values.size);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const BATCH = 500;
const TOPIC = "topic:bench.x";
const QUEUE = "queue:bench";

/** Pipelines `MSGS` PUBs to `dest` in writes of `BATCH`, waits for every reply; returns msgs/s. */
function rate(port: number, dest: string): Promise<number> {
  return pipelinedRate(port, dest, { msgs: MSGS, size: SIZE, batch: BATCH });
}

/** `BIND topic:bench.> queue:bench` on the node at `port`. */
async function bind(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    await c.send(`BIND topic:bench.> ${QUEUE}\r\n`);
    const line = await c.line(5000);
    if (line !== "OK") throw new Error(`BIND answered ${line}`);
  } finally {
    await c.close();
  }
}

const line = (what: string, topic: number, queue: number) =>
  `  ${what.padEnd(28)} topic with a binding ${String(topic).padStart(7)} msgs/s, ` +
  `queue ${String(queue).padStart(7)} msgs/s (topic/queue ${(topic / queue).toFixed(2)}x)`;

console.log(
  `PUB to OK, ${MSGS} x ${SIZE} B pipelined on one connection, --fsync ${values.fsync}:`,
);
/** One single node from `root` (a checkout; this one by default). */
async function singleNode(what: string, root?: string): Promise<void> {
  const main = root === undefined ? [MAIN] : ["--config", `${root}/deno.json`, `${root}/main.ts`];
  const single = await startServerProcess(Deno.execPath(), [
    "run",
    "-A",
    ...main,
    "serve",
    "--fsync",
    values.fsync,
  ]);
  try {
    await bind(single.port);
    console.log(line(what, await rate(single.port, TOPIC), await rate(single.port, QUEUE)));
  } finally {
    await single.stop();
  }
}
for (let round = 0; round < Number(values.rounds); round++) {
  await singleNode("single node");
  if (values.against !== undefined) {
    await singleNode(`single node, ${values.against}`, values.against);
  }
}
if (values["single-only"]) Deno.exit(0);
const etcd = await Etcd.start();
const nodes: Node[] = [];
try {
  await startNodes(etcd.url, ["n1", "n2", "n3"], ["--fsync", values.fsync], nodes);
  await publishRetry(nodes[0], QUEUE, "warm-up");
  const leader = await leaderOf(nodes, QUEUE);
  const other = nodes.find((n) => n !== leader)!;
  await bind(other.port);
  console.log(
    line(`R3, on the leader`, await rate(leader.port, TOPIC), await rate(leader.port, QUEUE)),
  );
  console.log(
    line(`R3, on another node`, await rate(other.port, TOPIC), await rate(other.port, QUEUE)),
  );
} finally {
  for (const n of nodes) await n.stop();
  await etcd.stop();
}
