/**
 * The first PUB to a queue whose leadership was handed back (an idle,
 * empty queue's leader gives it back at its sweep), at a node outside the
 * queue's old replica set: that node claims the queue and holds the PUB
 * while it recovers it from the old set. Its own sweeps must not hand the
 * queue back meanwhile: the broker forgets an empty queue with no consumer
 * at every sweep (the held PUB is not in the queue yet), and the node's
 * claim sweep then saw a queue it did not hold. It answered the PUB
 * `ERR UNAVAILABLE ... has no leader now; retry`; now the PUB waits and is
 * answered `OK` once the recovery is done.
 *
 * The recovery is kept waiting by SIGSTOPping one member of the old set
 * (both answers are needed: a majority of two); a second queue the node
 * leads and leaves idle shows when its claim sweep has run (its hand-back is
 * counted in `resigned`). Then the recovered copy must reach a majority of
 * the old set too: with `--replicas 2` the new set (this node and one old
 * member) leaves the other old member out, and until it was sent the
 * records as well, the recovery waited for it for ever.
 */
import assert from "node:assert/strict";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  clusterOf,
  leaderIn,
  type Node,
  publishOn,
  startNodes,
  untilView,
} from "./cluster_helpers.ts";
import { RawClient } from "../helpers.ts";

const Q = "queue:handed";
const OTHER = "queue:idle";

Deno.test({
  name:
    "cluster: the first PUB to a handed-back queue at a node outside its old replica set waits for the recovery and is OK",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    let paused: number | undefined;
    const clients: RawClient[] = [];
    try {
      // Replica sets of two out of three nodes, so that one node is outside a queue's set; a lease
      // long enough that the stopped node stays a member.
      await startNodes(etcd.url, ["n1", "n2", "n3"], [
        "--replicas",
        "2",
        "--cluster-lease-ttl",
        "5",
      ], nodes);
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const n1 = byId.get("n1")!;
      await untilView(n1, (c) => c.members.length === 3, "three members");
      await publishOn(n1, Q, "first");
      const led = await untilView(
        n1,
        (c) => c.replication?.queues.find((q) => q.queue === Q)?.replicas.length === 2,
        `${Q} replicated to two nodes`,
      );
      const set = led.replication!.queues.find((q) => q.queue === Q)!.replicas;
      const follower = byId.get(set.find((id) => id !== "n1")!)!;
      const outside = nodes.find((n) => !set.includes(n.id))!;

      // Consumed and acked: empty, no consumer, so n1 hands the leadership back.
      const c1 = await RawClient.connect(n1.port);
      clients.push(c1);
      await c1.send(`SUB ${Q} sub_id:s\r\n`);
      assert.equal(await c1.line(10_000), "OK");
      const msg = await c1.frame(10_000);
      await c1.send(`ACK msg_id:${msg.fields!.msg_id}\r\n`);
      assert.equal(await c1.line(10_000), "OK");
      await c1.close();
      clients.pop();
      for (const n of nodes) {
        await untilView(n, (c) => leaderIn(c, Q) === undefined, `${n.id} to see ${Q} handed back`);
      }

      // The outside node leads another queue, with a consumer for now.
      const idle = await RawClient.connect(outside.port);
      clients.push(idle);
      await idle.send(`SUB ${OTHER} sub_id:i\r\n`);
      assert.equal(await idle.line(10_000), "OK");
      const before = await untilView(
        outside,
        (c) => c.replication?.queues.find((q) => q.queue === OTHER)?.role === "leader",
        `${outside.id} to lead ${OTHER}`,
      );

      Deno.kill(paused = follower.pid, "SIGSTOP");
      const pub = await RawClient.connect(outside.port);
      clients.push(pub);
      await pub.send(`PUB ${Q} 6\r\nsecond\r\n`);
      await untilView(
        outside,
        (c) => c.replication?.queues.find((q) => q.queue === Q)?.role === "recovering",
        `${outside.id} to claim ${Q} and recover it from ${set.join(",")}`,
      );
      // The other queue left idle: handed back by the outside node's next claim sweep, which
      // (before the fix) handed back the queue it was recovering too.
      await idle.close();
      clients.splice(clients.indexOf(idle), 1);
      const swept = await untilView(
        outside,
        (c) => c.resigned > before.resigned,
        `${outside.id} to hand ${OTHER} back`,
      );
      assert.equal(leaderIn(swept, Q)?.node, outside.id, `${outside.id} still leads ${Q}`);
      assert.equal(swept.replication!.queues.find((q) => q.queue === Q)?.role, "recovering");

      Deno.kill(follower.pid, "SIGCONT");
      paused = undefined;
      const reply = await pub.line(10_000);
      assert.match(reply, /^OK msg_id:\d+$/, "the held PUB is stored once the queue is recovered");
      const after = await clusterOf(outside);
      assert.equal(after.replication!.queues.find((q) => q.queue === Q)?.role, "leader");
    } finally {
      if (paused !== undefined) Deno.kill(paused, "SIGCONT");
      for (const c of clients) await c.close().catch(() => {});
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});
