/**
 * A deposed leader: SIGSTOP the leader of a queue until its lease lapses
 * (a process cut off from etcd), let another node take the queue, then
 * SIGCONT it. It finds its lease gone, registers again, sees the new leader,
 * leads nothing, and etcd's fence refuses its old epoch.
 */
import assert from "node:assert/strict";
import { CLUSTER_PREFIX, EtcdMeta } from "../../src/cluster/mod.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  leaderIn,
  leadThenShare,
  type Node,
  startNodes,
  takeOver,
  untilView,
} from "./cluster_helpers.ts";

Deno.test({
  name: "cluster: a SIGSTOPped leader is deposed; after SIGCONT its old epoch is fenced",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    let paused: number | undefined;
    try {
      const [n1, n2] = await startNodes(
        etcd.url,
        ["n1", "n2"],
        ["--cluster-lease-ttl", "1"],
        nodes,
      );
      const old = await leadThenShare(n1, n2, "queue:q");

      Deno.kill(paused = n1.pid, "SIGSTOP");
      const v2 = await takeOver(n2, "queue:q", 1);
      const epoch = leaderIn(v2, "queue:q")!.epoch;
      assert.ok(epoch > old);
      Deno.kill(n1.pid, "SIGCONT");
      paused = undefined;

      const back = await untilView(
        n1,
        (c) =>
          c.lease_losses === 1 && c.members.length === 2 && leaderIn(c, "queue:q")?.node === "n2",
        "n1 to rejoin under a new lease and see n2 lead",
      );
      assert.equal(back.leading, 0);
      assert.deepEqual(leaderIn(back, "queue:q"), { queue: "queue:q", node: "n2", epoch });
      assert.match(n1.output(), /the lease ran out/);
      const meta = new EtcdMeta(etcd.url);
      const key = `${CLUSTER_PREFIX}leaders/queue:q`;
      assert.equal(await meta.holds(key, old), false, "the deposed epoch is fenced");
      assert.equal(await meta.holds(key, epoch), true);
      // n2 still leads: n1's return did not take q back.
      assert.deepEqual(
        leaderIn(await untilView(n2, (c) => c.members.length === 2, "n1 back"), "queue:q"),
        {
          queue: "queue:q",
          node: "n2",
          epoch,
        },
      );
    } finally {
      if (paused !== undefined) Deno.kill(paused, "SIGCONT");
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});
