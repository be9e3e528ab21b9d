/**
 * `deno run -A bench/replication.ts`: what replication costs a publisher, in
 * one run (the machine is shared: compare the two numbers, not across runs).
 * One connection pipelines `--msgs` PUBs of `--size` bytes to a queue and
 * waits for every OK: first on a single node, then on the leader of the
 * queue in a three-node cluster (real etcd, `--replicas 3`), where each OK
 * waits for a majority. Both under `--fsync` (default interval).
 * `--profile`: the cluster's nodes run under the V8 inspector, and the R3
 * run prints the functions with the most self time on the leader and on a
 * follower (profiling slows them: compare the rates without it).
 * `--against <dir>`: an A/B in one run: each of `--rounds` rounds also runs
 * the R3 cluster from another checkout (`git archive <commit> | tar -x -C
 * <dir>`), this one and that one in turn.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startServerProcess } from "../tests/child.ts";
import { type Node, serveArgs, startNode } from "../tests/cluster/cluster_helpers.ts";
import { Etcd, ETCD_MISSING, freePort } from "../tests/cluster/etcd.ts";
import { pipelinedRate } from "./pipelined.ts";
import { hotspots, Profiler } from "./profile.ts";
import { leaderOf, publishRetry } from "../tests/cluster/repl_helpers.ts";

const { values } = parseArgs({
  options: {
    msgs: { type: "string", default: "20000" },
    size: { type: "string", default: "128" },
    fsync: { type: "string", default: "interval" },
    profile: { type: "boolean", default: false },
    against: { type: "string" },
    rounds: { type: "string", default: "1" },
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
function publish(port: number, queue: string): Promise<number> {
  return pipelinedRate(port, queue, { msgs: MSGS, size: SIZE, batch: BATCH });
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
type StartNode = typeof startNode;
const against = values.against;
/** `startNode` of the other checkout: its main.ts under its own deno.json. */
const others: StartNode | undefined = against === undefined
  ? undefined
  : async (etcdUrl, id, extra = []) => {
    const p = await startServerProcess(Deno.execPath(), [
      "run",
      "--config",
      `${against}/deno.json`,
      "-A",
      `${against}/main.ts`,
      ...serveArgs(etcdUrl, id, extra),
    ]);
    return Object.assign(p, { id });
  };

/** One R3 run on a fresh cluster (nodes by `start`); returns msgs/s. */
async function r3With(start: StartNode): Promise<number> {
  const etcd = await Etcd.start();
  const nodes: Node[] = [];
  try {
    const inspect = new Map<string, number>();
    for (const id of ["n1", "n2", "n3"]) {
      const flags = values.profile ? [`--inspect=127.0.0.1:${freePort()}`] : [];
      if (flags.length > 0) inspect.set(id, Number(flags[0].split(":").pop()));
      nodes.push(await start(etcd.url, id, ["--fsync", values.fsync], false, flags));
    }
    await publishRetry(nodes[0], "queue:bench", "warm-up");
    const leader = await leaderOf(nodes, "queue:bench");
    const follower = nodes.find((n) => n.id !== leader.id)!;
    const profiled = values.profile ? [leader, follower] : [];
    const profilers = await Promise.all(profiled.map((n) => Profiler.attach(inspect.get(n.id)!)));
    for (const p of profilers) await p.start();
    const rate = await publish(leader.port, "queue:bench");
    for (const [i, p] of profilers.entries()) {
      const profile = await p.stop();
      p.close();
      console.log(`${i === 0 ? "leader" : "follower"} ${profiled[i].id}, self time:`);
      for (const h of hotspots(profile, 25)) {
        console.log(`  ${(h.self * 100).toFixed(1).padStart(5)}%  ${h.fn}  ${h.where}`);
      }
    }
    return rate;
  } finally {
    for (const n of nodes) await n.stop();
    await etcd.stop();
  }
}

const rounds = Math.max(1, Number(values.rounds));
for (let round = 1; round <= rounds; round++) {
  const r3 = await r3With(startNode);
  const base = others === undefined ? undefined : await r3With(others);
  console.log(
    `queue PUB to OK, ${MSGS} x ${SIZE} B pipelined on one connection, --fsync ${values.fsync}: ` +
      `single node ${one} msgs/s, R3 leader ${r3} msgs/s (${(r3 / one).toFixed(2)}x)` +
      (base === undefined
        ? ""
        : `, R3 leader of ${values.against} ${base} msgs/s (this one ${(r3 / base).toFixed(2)}x)`),
  );
}
