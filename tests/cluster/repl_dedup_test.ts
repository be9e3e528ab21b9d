/**
 * Dedup windows across a failover (docs/CLUSTERING.md, "Dedup across a
 * failover"), with a real etcd and three real broker processes: a message's
 * `dedup_id` is replicated with it, so the next leader answers a client's
 * retry of an outcome-unknown publish as a duplicate instead of storing it twice.
 */
import assert from "node:assert/strict";
import { startNodes } from "./cluster_helpers.ts";
import { ETCD_MISSING } from "./etcd.ts";
import { answerRetry, consume, leaderOf, publishRetry, withCluster } from "./repl_helpers.ts";

Deno.test({
  name:
    "dedup windows: kill -9 of the leader; a PUB retried with the same dedup_id at the new leader is a duplicate, not stored again",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const D = "queue:decl-dedup";
      await startNodes(etcd.url, ["n1", "n2", "n3"], ["--cluster-lease-ttl", "1"], nodes);
      await publishRetry(nodes[0], D, "m0");
      const leader = await leaderOf(nodes, D);
      const first = await answerRetry(leader, `PUB ${D} dedup_id:order-7 2\r\nm1`);
      const id = /^OK msg_id:(\S+)/.exec(first)?.[1];
      assert.ok(id !== undefined, first);
      assert.match(
        await answerRetry(leader, `PUB ${D} dedup_id:order-7 2\r\nm1`),
        / duplicate:true/,
      );

      await leader.stop("SIGKILL");
      const rest = nodes.filter((n) => n !== leader);
      const next = await leaderOf(rest, D);
      // The client's retry of an outcome-unknown publish, at the new leader, and forwarded to it.
      for (const n of [next, rest.find((x) => x !== next)!]) {
        assert.equal(
          await answerRetry(n, `PUB ${D} dedup_id:order-7 2\r\nm1`),
          `OK msg_id:${id} duplicate:true`,
        );
      }
      assert.match(await answerRetry(next, `PUB ${D} dedup_id:order-8 2\r\nm2`), /^OK msg_id:\S+$/);
      // m0 and m1 once, then m2: the retries stored nothing.
      const got = await consume(next, D, { ack: () => true, done: (seen) => seen.size >= 3 });
      assert.deepEqual(got.delivered, ["m0", "m1", "m2"]);
    }),
});
