/**
 * Queue declarations across the cluster (docs/CLUSTERING.md, "Queue
 * declarations across nodes"), with a real etcd and three real broker
 * processes: a queue declared at its leader keeps its settings when the
 * leader is SIGKILLed and a replica takes over.
 */
import assert from "node:assert/strict";
import { startNodes } from "./cluster_helpers.ts";
import { ETCD_MISSING } from "./etcd.ts";
import {
  answerRetry,
  leaderOf,
  publishAll,
  publishRetry,
  replOf,
  withCluster,
} from "./repl_helpers.ts";

const Q = "queue:decl-jobs";

Deno.test({
  name:
    "queue declarations: kill -9 of the leader; the new leader keeps max_messages and overflow:reject (QUEUE_FULL) and refuses other settings (DECLARE_CONFLICT)",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      await startNodes(etcd.url, ["n1", "n2", "n3"], ["--cluster-lease-ttl", "1"], nodes);
      await publishRetry(nodes[0], Q, "m0");
      const leader = await leaderOf(nodes, Q);
      const decl = `DECLARE ${Q} max_messages:5 overflow:reject`;
      assert.equal(await answerRetry(leader, decl), "OK");
      const oks = await publishAll(leader, Q, ["m1", "m2", "m3", "m4", "m5"]);
      for (const a of oks.slice(0, 4)) assert.match(a, /^OK/);
      assert.match(oks[4], /^ERR QUEUE_FULL/);
      const epoch = (await replOf(leader, Q))!.epoch;

      await leader.stop("SIGKILL");
      const rest = nodes.filter((n) => n !== leader);
      const next = await leaderOf(rest, Q);
      assert.ok((await replOf(next, Q))!.epoch > epoch, "a later leader");
      // The 5 messages OK'd are there, so the 6th is refused as before.
      assert.match(await answerRetry(next, `PUB ${Q} 2\r\nm6`), /^ERR QUEUE_FULL/);
      // Other settings conflict, at the leader and forwarded from the other node; the same are OK.
      const other = rest.find((n) => n !== next)!;
      for (const n of [next, other]) {
        assert.match(await answerRetry(n, `DECLARE ${Q} max_messages:50`), /^ERR DECLARE_CONFLICT/);
        assert.equal(await answerRetry(n, `DECLARE ${Q} overflow:reject max_messages:5`), "OK");
      }
    }),
});
