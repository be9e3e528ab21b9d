/**
 * What `relayr pub` says when a command's leader is out of reach
 * (docs/CLUSTERING.md, "Queues across nodes"): the CLI as a child process
 * against real broker processes and a real etcd. A leader SIGKILLed whose
 * keys still live: the dial fails, nothing was sent, and the error says so
 * (not "the outcome is unknown"), naming the leader by what it leads, a
 * queue or a topic. A leader SIGSTOPped: the PUB was written, so when the
 * node gives up on it the outcome is unknown, and it says that.
 */
import assert from "node:assert/strict";
import { relayr } from "../client_helpers.ts";
import { ownStderr } from "../helpers.ts";
import { leaderIn, type Node, publishOn, startNodes, untilView } from "./cluster_helpers.ts";
import { type Etcd, ETCD_MISSING } from "./etcd.ts";
import { answerRetry, withCluster } from "./repl_helpers.ts";

const Q = "queue:cli-jobs";
const T = "topic:cli-log";

/**
 * Nodes n1 and n2 (`--replicas 1`, the lease `leaseS` s); n1 leads `Q`, and
 * the declared topic `T` too with `topic`, as n2 sees.
 */
async function ledByN1(etcd: Etcd, nodes: Node[], leaseS: number, topic: boolean): Promise<Node[]> {
  const [n1, n2] = await startNodes(
    etcd.url,
    ["n1", "n2"],
    ["--cluster-lease-ttl", String(leaseS), "--replicas", "1"],
    nodes,
  );
  await publishOn(n1, Q, "first");
  if (topic) assert.equal(await answerRetry(n1, `DECLARE ${T} retain_messages:10`), "OK");
  await untilView(
    n2,
    (c) => leaderIn(c, Q)?.node === "n1" && (!topic || leaderIn(c, T)?.node === "n1"),
    "n2 to see n1 lead",
  );
  return [n1, n2];
}

/** `relayr pub <dest> hello` on `node`: it fails (exit 1); its one stderr line. */
async function pubFails(node: Node, dest: string): Promise<string> {
  const r = await relayr(["pub", dest, "hello", "-s", `127.0.0.1:${node.port}`]);
  assert.equal(r.code, 1, r.stderr);
  return ownStderr(r.stderr);
}

Deno.test({
  name: "relayr pub in a cluster: a failed dial to a dead leader says nothing was sent, naming " +
    "the queue's or the topic's leader",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      // A long lease: the dead leader's keys outlive the test, so n2 dials its closed port.
      const [n1, n2] = await ledByN1(etcd, nodes, 60, true);
      await n1.stop("SIGKILL");
      assert.match(
        await pubFails(n2, Q),
        /^relayr pub: UNAVAILABLE: cannot reach the queue's leader n1: .+: nothing was sent; retry$/,
      );
      assert.match(
        await pubFails(n2, T),
        /^relayr pub: UNAVAILABLE: cannot reach the topic's leader n1: .+: nothing was sent; retry$/,
      );
    }),
});

Deno.test({
  name: "relayr pub in a cluster: a PUB written to a leader that stops answering is " +
    "'the outcome is unknown' when the node gives up on it",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      // A lease long enough that n1 is still a member when the CLI (started after the SIGSTOP) sends
      // its PUB, else n2 would claim the queue and store it.
      const [n1, n2] = await ledByN1(etcd, nodes, 10, false);
      // Stopped, its port still accepts (the kernel's backlog): the PUB is written, never answered,
      // until n1's lease lapses and n2 cuts its connection to a node no longer a member.
      Deno.kill(n1.pid, "SIGSTOP");
      try {
        assert.match(
          await pubFails(n2, Q),
          /^relayr pub: UNAVAILABLE: the queue's leader n1 left the cluster: the outcome is unknown$/,
        );
      } finally {
        Deno.kill(n1.pid, "SIGCONT");
      }
    }),
});
