/**
 * A node that restarts under the same id (SIGKILL, then a new process on a
 * new link port once its lease lapsed) is dialled again at its new address;
 * the new link starts with every pattern, so topics flow both ways again.
 */
import assert from "node:assert/strict";
import { expectLine, RawClient } from "../helpers.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import { type Node, startNode, untilView } from "./cluster_helpers.ts";

Deno.test({
  name: "cluster topics: a restarted node is linked again and its interest re-learned",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const clients: RawClient[] = [];
    try {
      const ttl = ["--cluster-lease-ttl", "1"];
      const n1 = await startNode(etcd.url, "n1", ttl);
      nodes.push(n1);
      let n2 = await startNode(etcd.url, "n2", ttl);
      nodes.push(n2);
      const sub1 = await RawClient.connect(n1.port);
      clients.push(sub1);
      await expectLine(sub1, "SUB topic:t sub_id:s", "OK", 5000);
      await untilView(n2, (c) => c.links[0]?.patterns === 1, "n2 learns n1's interest");
      const oldAddress = (await untilView(n1, (c) => c.links.length === 1, "n1's link")).links[0]
        .advertise;

      await n2.stop("SIGKILL");
      await untilView(n1, (c) => c.links.length === 0 && c.members.length === 1, "n2 gone from n1");
      nodes.push(n2 = await startNode(etcd.url, "n2", ttl));
      // n1 dials n2's new address; n2's new link to n1 carries nothing until n1 tells it SUB topic:t.
      const v1 = await untilView(
        n1,
        (c) => c.links[0]?.out === true && c.links[0]?.in === true,
        "n1 relinked",
      );
      assert.notEqual(v1.links[0].advertise, oldAddress);
      await untilView(n2, (c) => c.links[0]?.patterns === 1, "n2 re-learns n1's interest");

      const pub2 = await RawClient.connect(n2.port);
      clients.push(pub2);
      await expectLine(pub2, "PUB topic:t 5\r\nagain", /^OK/, 5000);
      const f = await sub1.frame(10_000);
      assert.match(f.line, /^MSG topic:t /);
      assert.equal(new TextDecoder().decode(f.payload), "again");
      // While n2 was dead but still a member, n1 redialled it every 200 ms: said once, not each time.
      assert.equal(
        n1.output().match(/cannot dial n2 at [^ ]+: .*; retrying/g)?.length,
        1,
        n1.output(),
      );
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});
