/**
 * Redeliveries after a failover are marked (docs/CLUSTERING.md, "Replication
 * of queues"; src/cluster/redelivered.ts), with a real etcd, three real
 * broker processes and a SIGKILL of the queue's leader: what was in flight at
 * the old leader comes from the new one with `delivery:2`, never as if it had
 * never been delivered.
 */
import assert from "node:assert/strict";
import { RawClient } from "../helpers.ts";
import { startNodes } from "./cluster_helpers.ts";
import { ETCD_MISSING } from "./etcd.ts";
import { leaderOf, publishAll, publishRetry, untilLeading, withCluster } from "./repl_helpers.ts";

const Q = "queue:work";
const decoder = new TextDecoder();

Deno.test({
  name: "redelivered: after a SIGKILL of the leader, what it had in flight comes marked delivery:2",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const [n1, n2, n3] = await startNodes(
        etcd.url,
        ["n1", "n2", "n3"],
        ["--cluster-lease-ttl", "1"],
        nodes,
      );
      await publishRetry(n1, Q, "m-0");
      await untilLeading(n1, Q);
      const rest = Array.from({ length: 9 }, (_, i) => `m-${i + 1}`);
      for (const a of await publishAll(n1, Q, rest)) assert.match(a, /^OK/);
      // A consumer on n3 (forwarded to n1) takes 4 and holds them, unacked.
      const c = await RawClient.connect(n3.port);
      await c.send(`SUB ${Q} sub_id:s ack:explicit prefetch:4\r\n`);
      assert.match(await c.line(5000), /^OK/);
      const held = await c.msgs(4, 5000);
      // `delivery` is on a MSG from the second delivery on (docs/PROTOCOL.md).
      for (const f of held) assert.equal(f.fields!.delivery, undefined);
      const inFlight = held.map((f) => decoder.decode(f.payload));
      assert.deepEqual(inFlight, ["m-0", "m-1", "m-2", "m-3"]);

      await n1.stop("SIGKILL");
      // Publishing goes on once n2 or n3 leads the queue; this one was never delivered anywhere.
      await publishRetry(n2, Q, "after");
      const leader = await leaderOf([n2, n3], Q);
      assert.notEqual(leader, n1);
      // The subscription is made again at the new leader under its sub id: every message comes
      // again, each ACKed; the four held at n1 are marked, as is every message recovered.
      const delivery = new Map<string, number>();
      const deadline = Date.now() + 20_000;
      while (delivery.size < 11) {
        if (Date.now() > deadline) throw new Error(`only ${[...delivery.keys()]} came`);
        const f = await c.frame(15_000);
        if (f.payload === undefined) continue; // the ACKs' OKs
        const body = decoder.decode(f.payload);
        assert.ok(!delivery.has(body), `${body} delivered twice by the new leader`);
        delivery.set(body, Number(f.fields!.delivery ?? "1"));
        await c.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
      }
      for (const b of inFlight) assert.equal(delivery.get(b), 2, `${b} in flight at n1`);
      // Recovered but never delivered at n1: the new leader cannot know, and marks it too.
      for (const b of rest.slice(3)) assert.equal(delivery.get(b), 2, b);
      assert.equal(delivery.get("after"), 1, "published to the new leader: a first delivery");
      await c.close();
    }),
});
