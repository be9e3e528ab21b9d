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
  publishOn,
  startNodes,
  takeOver,
  untilView,
} from "./cluster_helpers.ts";
import { type Client, connect } from "../../src/client/mod.ts";
import { RawClient } from "../helpers.ts";

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

Deno.test({
  name:
    "cluster: consumers on a deposed leader are closed with ERR LEADER_CHANGED; the SDK resubscribes and gets the new leader's messages",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    let paused: number | undefined;
    let raw: RawClient | undefined;
    let sdk: Client | undefined;
    try {
      const [n1, n2] = await startNodes(
        etcd.url,
        ["n1", "n2"],
        ["--cluster-lease-ttl", "1"],
        nodes,
      );
      await leadThenShare(n1, n2, "queue:q");
      // Both consumers sit on n1, the leader: their subscriptions are local there.
      raw = await RawClient.connect(n1.port);
      await raw.send("SUB queue:q sub_id:s ack:explicit prefetch:100\r\n");
      assert.match(await raw.line(), /^OK/);
      sdk = await connect(`127.0.0.1:${n1.port}`, { reconnectDelayMs: 50 });
      const sub = await sdk.subscribe("queue:q", { ack: "none" });
      const got = (async () => {
        for await (const m of sub) {
          if (new TextDecoder().decode(m.body) === "after") return true;
        }
        return false;
      })();

      Deno.kill(paused = n1.pid, "SIGSTOP");
      await takeOver(n2, "queue:q", 1);
      Deno.kill(n1.pid, "SIGCONT");
      paused = undefined;

      // The raw consumer reads its deliveries, then the ERR, and the server closes.
      let err = "";
      for (let i = 0; i < 100 && err === ""; i++) {
        const line = await raw.line(15_000);
        if (line.startsWith("ERR")) err = line;
      }
      assert.match(err, /^ERR LEADER_CHANGED no longer the leader of queue:q/);
      assert.equal(await raw.closedByServer(5000), true);
      // The SDK reconnects to n1, which forwards its SUB to n2: a message published at n2 reaches it.
      await untilView(n1, (c) => leaderIn(c, "queue:q")?.node === "n2", "n1 to see n2 lead");
      await publishOn(n2, "queue:q", "after");
      const timer = AbortSignal.timeout(15_000);
      assert.equal(
        await Promise.race([
          got,
          new Promise<boolean>((r) => timer.addEventListener("abort", () => r(false))),
        ]),
        true,
        "the SDK's subscription reached the new leader",
      );
      assert.ok(sdk.reconnects >= 1);
    } finally {
      if (paused !== undefined) Deno.kill(paused, "SIGCONT");
      await raw?.close();
      await sdk?.close();
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});
