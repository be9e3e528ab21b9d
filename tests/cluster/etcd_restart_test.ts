/**
 * etcd itself goes away and comes back: the nodes say so (etcd_reachable
 * false, the metric 0), keep their view (the leader stays, no election can
 * happen), and once etcd is back they renew the same lease, see each other
 * again, and elections resume: a SIGKILLed leader is replaced.
 */
import assert from "node:assert/strict";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  leaderIn,
  leadThenShare,
  type Node,
  startNodes,
  takeOver,
  untilView,
} from "./cluster_helpers.ts";
import { publishRetry } from "./repl_helpers.ts";

Deno.test({
  name: "cluster: etcd restarted: leadership changes pause, then resume",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    try {
      // A 2 s lease: etcd restores leases on restart, the nodes renew within a second.
      const [n1, n2] = await startNodes(
        etcd.url,
        ["n1", "n2"],
        ["--cluster-lease-ttl", "2"],
        nodes,
      );
      const epoch = await leadThenShare(n1, n2, "queue:q");
      await untilView(
        n2,
        (c) => c.members.length === 2 && leaderIn(c, "queue:q") !== undefined,
        "n2",
      );

      await etcd.kill();
      for (const n of nodes) {
        const v = await untilView(n, (c) => !c.etcd_reachable, `${n.id} to notice etcd is away`);
        assert.deepEqual(leaderIn(v, "queue:q"), { queue: "queue:q", node: "n1", epoch });
        assert.equal(v.members.length, 2, "the view is kept while etcd is away");
        const m = await (await fetch(`http://127.0.0.1:${n.httpPort}/metrics`)).text();
        assert.match(m, /^relayr_cluster_etcd_reachable 0$/m);
      }

      // Past its lease with etcd away, n1 can no longer know it leads: it stops serving q.
      await untilView(
        n1,
        (c) =>
          c.replication?.queues.some((q) => q.queue === "queue:q" && q.role !== "leader") ??
            false,
        "n1 to stop serving q while its lease cannot be renewed",
      );
      await etcd.restart();
      for (const n of nodes) {
        const v = await untilView(n, (c) => c.etcd_reachable, `${n.id} to reach etcd again`);
        assert.deepEqual(leaderIn(v, "queue:q"), { queue: "queue:q", node: "n1", epoch });
        assert.equal(v.lease_losses, 0, "the same lease lived through the restart");
        assert.ok(v.etcd_errors > 0);
      }
      // The queue is served again by its leader (replication took it up again if the outage
      // outlasted the lease), and its replica has the new message.
      await publishRetry(n1, "queue:q", "after-etcd");
      await untilView(
        n2,
        (c) =>
          c.replication?.queues.some((q) => q.queue === "queue:q" && q.messages === 3) ?? false,
        "n2's copy to have the new message",
      );
      assert.match(n1.output(), /etcd unreachable, leadership changes paused/);
      assert.match(n1.output(), /etcd reachable again, leadership changes resume/);

      // Elections work again: n1 dies, n2 takes q with a larger epoch.
      await n1.stop("SIGKILL");
      const after = await takeOver(n2, "queue:q", 1);
      assert.ok(leaderIn(after, "queue:q")!.epoch > epoch);
    } finally {
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});
