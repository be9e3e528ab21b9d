/**
 * Topics across three broker processes joined by a real etcd: a message
 * published on any node reaches every matching subscriber on every node
 * exactly once, in publish order per publisher, wildcards included; a node
 * forwards a message only to nodes with a matching subscriber (counted on
 * the link), once per node however many subscribers it has there; interest
 * goes away on UNSUB, on a disconnect, and with a node's death.
 */
import assert from "node:assert/strict";
import { bunVersion } from "../child.ts";
import { parseExposition, value } from "../prometheus.ts";
import { expectLine, RawClient, type ServerFrame } from "../helpers.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import { clusterOf, type Node, startNode, untilView } from "./cluster_helpers.ts";
import type { ClusterStats } from "../../src/cluster/mod.ts";

const decoder = new TextDecoder();

function link(c: ClusterStats, node: string) {
  return c.links.find((l) => l.node === node);
}

/** Reads `n` MSG frames from `c`; returns "dest body" strings. */
async function read(c: RawClient, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const f: ServerFrame = await c.frame(10_000);
    assert.ok(f.line.startsWith("MSG "), f.line);
    out.push(`${f.fields!.dest} ${decoder.decode(f.payload)}`);
  }
  return out;
}

/** Sends PING and expects PONG: everything sent before it was handled, nothing more arrived. */
async function nothingMore(c: RawClient): Promise<void> {
  await expectLine(c, "PING", "PONG", 5000);
}

Deno.test({
  name:
    "cluster topics: 3 nodes, cross-node pub/sub, wildcards, once and in order, interest removal",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const clients: RawClient[] = [];
    const client = async (n: Node) => {
      const c = await RawClient.connect(n.port);
      clients.push(c);
      return c;
    };
    try {
      // n3 runs on Bun when it is installed: the shipped binary is Bun-built, and a mixed
      // cluster shows the link and the etcd client behave the same on both runtimes.
      const bun = (await bunVersion()) !== undefined;
      for (const id of ["n1", "n2", "n3"]) {
        nodes.push(await startNode(etcd.url, id, ["--cluster-lease-ttl", "1"], bun && id === "n3"));
      }
      const [n1, n2, n3] = nodes;
      if (bun) assert.match(n3.output(), /\(bun [0-9.]+\) listening on/);
      // Every node has both links up with both others.
      for (const n of nodes) {
        await untilView(
          n,
          (c) => c.links.length === 2 && c.links.every((l) => l.out && l.in),
          `${n.id} links`,
        );
      }
      const eu2 = await client(n2);
      await expectLine(eu2, "SUB topic:orders.eu sub_id:eu", "OK", 5000);
      const star3 = await client(n3);
      await expectLine(star3, "SUB topic:orders.* sub_id:star", "OK", 5000);
      const eu3 = await client(n3);
      await expectLine(eu3, "SUB topic:orders.eu sub_id:eu3", "OK", 5000);
      const all1 = await client(n1);
      await expectLine(all1, "SUB topic:orders.> sub_id:all", "OK", 5000);
      await untilView(
        n1,
        (c) => link(c, "n2")?.patterns === 1 && link(c, "n3")?.patterns === 2,
        "n1 learns interest",
      );
      await untilView(
        n2,
        (c) => link(c, "n1")?.patterns === 1 && link(c, "n3")?.patterns === 2,
        "n2 learns interest",
      );

      // Two publishers on two nodes, pipelined (no wait for each OK).
      const p1 = await client(n1);
      const p2 = await client(n2);
      const N = 200;
      const M = 100;
      let batch = "";
      for (let i = 0; i < N; i++) batch += `PUB topic:orders.eu ${String(i).length}\r\n${i}\r\n`;
      await p1.send(batch);
      batch = "";
      for (let i = 0; i < M; i++) batch += `PUB topic:orders.us ${String(i).length}\r\n${i}\r\n`;
      await p2.send(batch);
      for (let i = 0; i < N; i++) assert.match(await p1.line(10_000), /^OK/);
      for (let i = 0; i < M; i++) assert.match(await p2.line(10_000), /^OK/);

      const eu = Array.from({ length: N }, (_, i) => `topic:orders.eu ${i}`);
      const us = Array.from({ length: M }, (_, i) => `topic:orders.us ${i}`);
      const byTopic = (got: string[], t: string) => got.filter((s) => s.startsWith(t));
      // n2: its exact subscription, n1's messages only, in order, once.
      assert.deepEqual(await read(eu2, N), eu);
      // n3: the wildcard gets both publishers, each in its order; the exact sub on the same node too.
      const star = await read(star3, N + M);
      assert.deepEqual(byTopic(star, "topic:orders.eu"), eu);
      assert.deepEqual(byTopic(star, "topic:orders.us"), us);
      assert.deepEqual(await read(eu3, N), eu);
      // n1: `>` gets its own publisher's and n2's (over the link).
      const all = await read(all1, N + M);
      assert.deepEqual(byTopic(all, "topic:orders.eu"), eu);
      assert.deepEqual(byTopic(all, "topic:orders.us"), us);
      for (const c of [eu2, star3, eu3, all1]) await nothingMore(c); // nothing twice

      // Forwarding is by interest, once per node: n1 sent its 200 to n2 and to n3 once each
      // (two subscribers there); n2 sent its 100 to n1 and n3, and nothing to itself.
      let v1 = await clusterOf(n1);
      assert.equal(link(v1, "n2")!.forwarded_msgs, N);
      assert.equal(link(v1, "n3")!.forwarded_msgs, N);
      assert.equal(link(v1, "n2")!.received_msgs, M);
      const v3 = await clusterOf(n3);
      assert.equal(link(v3, "n1")!.received_msgs, N);
      assert.equal(link(v3, "n2")!.received_msgs, M);
      assert.equal(link(v3, "n1")!.forwarded_msgs, 0, "n3 published nothing");
      assert.equal(v1.forwarded_msgs, 2 * N);
      assert.equal(v3.received_msgs, N + M);
      const scrape = parseExposition(
        await (await fetch(`http://127.0.0.1:${n3.httpPort}/metrics`)).text(),
      );
      assert.equal(value(scrape, "relayr_cluster_received_messages_total"), N + M);
      assert.equal(value(scrape, "relayr_cluster_links_up"), 2);

      // Nobody elsewhere wants topic:other: nothing crosses.
      await expectLine(p1, "PUB topic:other 1\r\nx", /^OK/, 5000);
      v1 = await clusterOf(n1);
      assert.equal(link(v1, "n2")!.forwarded_msgs, N);
      assert.equal(link(v1, "n3")!.forwarded_msgs, N);

      // UNSUB on n2: n1 stops forwarding orders.eu there.
      await expectLine(eu2, "UNSUB eu", "OK", 5000);
      await untilView(n1, (c) => link(c, "n2")?.patterns === 0, "n2's interest gone after UNSUB");
      await expectLine(p1, "PUB topic:orders.eu 4\r\nlate", /^OK/, 5000);
      assert.deepEqual(await read(star3, 1), ["topic:orders.eu late"]);
      assert.deepEqual(await read(eu3, 1), ["topic:orders.eu late"]);
      assert.deepEqual(await read(all1, 1), ["topic:orders.eu late"]);
      await nothingMore(eu2);
      assert.equal(link(await clusterOf(n1), "n2")!.forwarded_msgs, N);

      // A disconnect on n3 drops one of its two patterns; the wildcard stays.
      await eu3.close();
      clients.splice(clients.indexOf(eu3), 1);
      await untilView(
        n1,
        (c) => link(c, "n3")?.patterns === 1,
        "n3's exact interest gone on disconnect",
      );

      // n3 dies: its link and interest go, n1 forwards nothing to it, and says so.
      await n3.stop("SIGKILL");
      await untilView(n1, (c) => link(c, "n3") === undefined && c.members.length === 2, "n3 gone");
      await expectLine(p1, "PUB topic:orders.eu 5\r\nafter", /^OK/, 5000);
      assert.deepEqual(await read(all1, 1), ["topic:orders.eu after"]);
      await untilView(n2, (c) => link(c, "n3") === undefined, "n2 drops its link to n3");
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});
