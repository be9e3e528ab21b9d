/**
 * A NACK's delay survives a failover (docs/CLUSTERING.md, "Replication of
 * queues"): three real broker processes, a real etcd, a SIGKILL of the
 * queue's leader. A message NACKed with `delay:` at the old leader is
 * delivered by the new one no sooner than the old leader scheduled it, and
 * not lost; a message in flight at the old leader comes at once. Before the
 * `DUE` record, the new leader handed the delayed one out as soon as it took
 * the queue over.
 */
import assert from "node:assert/strict";
import { RawClient } from "../helpers.ts";
import { startNodes } from "./cluster_helpers.ts";
import { ETCD_MISSING } from "./etcd.ts";
import { leaderOf, publishAll, publishRetry, untilLeading, withCluster } from "./repl_helpers.ts";

const Q = "queue:nacked";
const DELAY_MS = 10_000;
const decoder = new TextDecoder();

Deno.test({
  name: "nack delay: after a SIGKILL of the leader, a message NACKed with delay: comes from the " +
    "new leader no sooner than due, and comes",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const [n1, n2, n3] = await startNodes(
        etcd.url,
        ["n1", "n2", "n3"],
        ["--cluster-lease-ttl", "1"],
        nodes,
      );
      await publishRetry(n1, Q, "later");
      await untilLeading(n1, Q);
      for (const a of await publishAll(n1, Q, ["held"])) assert.match(a, /^OK/);
      // A consumer on n3 (forwarded to n1) takes both; "later" is NACKed with a delay, "held" kept.
      const c = await RawClient.connect(n3.port);
      try {
        await c.send(`SUB ${Q} sub_id:s ack:explicit prefetch:2\r\n`);
        assert.match(await c.line(5000), /^OK/);
        const got = await c.msgs(2, 5000);
        const id = new Map(got.map((f) => [decoder.decode(f.payload), f.fields!.msg_id]));
        const nackedAt = Date.now();
        await c.send(`NACK msg_id:${id.get("later")} delay:${DELAY_MS}\r\n`);
        // Its OK waits for a majority of the replicas to hold the delay.
        assert.equal(await c.line(5000), "OK");

        await n1.stop("SIGKILL");
        assert.notEqual(await leaderOf([n2, n3], Q), n1);
        // The subscription is re-made at the new leader: "held" comes again at once, "later"
        // only once due.
        const came = new Map<string, { at: number; delivery: number }>();
        const deadline = nackedAt + DELAY_MS + 20_000;
        while (came.size < 2) {
          if (Date.now() > deadline) throw new Error(`only ${[...came.keys()]} came`);
          const f = await c.frame(deadline - Date.now());
          if (f.payload === undefined) continue; // an ACK's OK
          const body = decoder.decode(f.payload);
          assert.ok(!came.has(body), `${body} delivered twice by the new leader`);
          came.set(body, { at: Date.now(), delivery: Number(f.fields!.delivery ?? "1") });
          await c.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
        }
        const held = came.get("held")!;
        const later = came.get("later")!;
        assert.ok(
          held.at < nackedAt + DELAY_MS,
          `the failover took ${held.at - nackedAt} ms, longer than the delay: nothing is proved`,
        );
        assert.equal(held.delivery, 2, "in flight at n1: marked");
        assert.ok(
          later.at >= nackedAt + DELAY_MS,
          `"later" came ${nackedAt + DELAY_MS - later.at} ms before its due time`,
        );
        assert.ok(later.delivery >= 2, "delivered before: marked");
      } finally {
        await c.close();
      }
    }),
});
