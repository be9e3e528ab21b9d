/**
 * `ClusterNode` in process, two of them on a real etcd, with the queues each
 * holds given by the test (the seam `serve` fills from the broker): claims,
 * `leads`, `fence`, handing back a queue no longer held, a taken node id,
 * and a clean stop handing the leaderships on.
 */
import assert from "node:assert/strict";
import {
  type ClusterMeta,
  ClusterNode,
  ClusterStartError,
  type ClusterStats,
  EtcdMeta,
} from "../../src/cluster/mod.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";

/** What a test node may be given besides its queues: its etcd client wrapped, and the seams watched. */
interface NodeExtras {
  wrap?: (meta: ClusterMeta) => ClusterMeta;
  /** Told each time the node asks whether it holds a queue (once per led queue per pass). */
  asked?: (queue: string) => void;
  onLeader?: (queue: string, leader: { node: string } | undefined) => void;
}

function node(
  url: string,
  id: string,
  queues: Set<string>,
  logs: string[] = [],
  extras: NodeExtras = {},
): ClusterNode {
  const meta = new EtcdMeta(url);
  return new ClusterNode({
    meta: extras.wrap?.(meta) ?? meta,
    endpoint: meta.endpoint,
    nodeId: id,
    advertise: `127.0.0.1:${id === "a" ? 1 : 2}`,
    leaseTtlS: 5,
    queues: () => queues,
    holds: (q) => {
      extras.asked?.(q);
      return queues.has(q);
    },
    log: (_level, message) => logs.push(message),
    onLeader: extras.onLeader,
  });
}

async function until(n: ClusterNode, ok: (s: ClusterStats) => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!ok(n.stats())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(n.stats())}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return n.stats();
}

const leaderOf = (s: ClusterStats, q: string) => s.leaders.find((l) => l.queue === q)?.node;

Deno.test({
  name: "ClusterNode: claims, leads, fence, hand-back, taken id, clean stop",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const qa = new Set(["queue:q1", "queue:q2"]);
    const qb = new Set(["queue:q2", "queue:q3"]);
    const logs: string[] = [];
    const a = node(etcd.url, "a", qa, logs);
    const b = node(etcd.url, "b", qb);
    let aStopped = false;
    try {
      await a.start();
      // a claims its two queues before b exists: q2 is a's.
      await until(a, (s) => s.leaders.length === 2, "a's claims");
      await b.start();
      const s = await until(b, (s) => s.leaders.length === 3 && s.members.length === 2, "b's view");
      assert.deepEqual(s.leaders.map((l) => [l.queue, l.node]), [
        ["queue:q1", "a"],
        ["queue:q2", "a"],
        ["queue:q3", "b"],
      ]);
      assert.equal(s.leaders_total, 3);
      // A page of the leaders, by queue name.
      const page = b.stats({ offset: 1, limit: 1 });
      assert.deepEqual(page.leaders.map((l) => l.queue), ["queue:q2"]);
      assert.equal(page.leaders_total, 3);
      assert.deepEqual(b.stats({ offset: 0, limit: 0 }).leaders, []);
      assert.ok(a.leads("queue:q1") && a.leads("queue:q2") && !a.leads("queue:q3"));
      assert.ok(b.leads("queue:q3") && !b.leads("queue:q2"));
      const epoch = a.leader("queue:q1")!.epoch;
      assert.equal(await a.fence("queue:q1", epoch), true);
      assert.equal(await b.fence("queue:q1", epoch - 1), false);
      assert.match(logs.join("\n"), /leader of queue queue:q1 \(epoch \d+\)/);

      // a no longer holds q1: it hands it back; nobody holds it, nobody claims it.
      qa.delete("queue:q1");
      await until(b, (s) => leaderOf(s, "queue:q1") === undefined, "q1 handed back");
      // a counts the hand-back when etcd answered its delete, which b's watch may see first.
      await until(a, (s) => s.resigned === 1, "a's hand-back counted");
      assert.equal(await a.fence("queue:q1", epoch), false);

      // A second "a" is refused while the first lives.
      const dup = node(etcd.url, "a", new Set());
      await assert.rejects(() => dup.start(), (e) => {
        assert.ok(e instanceof ClusterStartError);
        assert.match(
          e.message,
          /^--node-id "a" is taken by a live node advertising 127\.0\.0\.1:1; /,
        );
        return true;
      });

      // a stops cleanly: its lease is revoked, b sees it leave at once and takes q2.
      await a.stop();
      aStopped = true;
      const after = await until(
        b,
        (s) => s.members.length === 1 && leaderOf(s, "queue:q2") === "b",
        "b takes q2",
      );
      assert.ok(after.leaders.find((l) => l.queue === "queue:q2")!.epoch > epoch);
      assert.equal(after.elections_won, 2);
    } finally {
      if (!aStopped) await a.stop();
      await b.stop();
      await etcd.stop();
    }
  },
});

/** `meta` whose `deleteIf` waits until `gate` is opened; `asked` resolves when the first one waits. */
function gatedDeletes(meta: ClusterMeta, gate: Promise<void>, asked: () => void): ClusterMeta {
  return new Proxy(meta, {
    get(target, p) {
      if (p === "deleteIf") {
        return async (key: string, rev: number) => {
          asked();
          await gate;
          return await target.deleteIf(key, rev);
        };
      }
      const v = Reflect.get(target, p);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

Deno.test({
  name:
    "ClusterNode: while a hand-back's delete is on its way the node is resigning the queue; held again, it claims it anew",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    // The race it closes: a publish stored by the leader while etcd deleted its idle queue's key
    // was answered "outcome unknown" (bindings_test, once in a few runs under load).
    const etcd = await Etcd.start();
    const held = new Set(["queue:h"]);
    const gate = Promise.withResolvers<void>();
    const asked = Promise.withResolvers<void>();
    const changes: string[] = [];
    const a = node(etcd.url, "a", held, [], {
      wrap: (meta) => gatedDeletes(meta, gate.promise, asked.resolve),
      onLeader: (q, l) => changes.push(`${q} ${l?.node ?? "-"}`),
    });
    try {
      await a.start();
      await until(a, (s) => s.leaders.length === 1, "a's claim");
      const epoch = a.leader("queue:h")!.epoch;
      assert.ok(a.leads("queue:h"));
      held.delete("queue:h"); // idle and empty: handed back at the next sweep
      await asked.promise;
      assert.ok(a.resigning("queue:h"), "resigning while the delete is on its way");
      assert.equal(a.leader("queue:h")?.epoch, epoch, "the key is still there");
      held.add("queue:h"); // a publish arrives (and is held: replication.ts)
      gate.resolve();
      // The delete is applied at once, then the held queue is claimed anew.
      const s = await until(
        a,
        (s) => (s.leaders.find((l) => l.queue === "queue:h")?.epoch ?? 0) > epoch,
        "a claims queue:h again",
      );
      assert.equal(s.resigned, 1);
      assert.ok(a.leads("queue:h") && !a.resigning("queue:h"));
      assert.deepEqual(changes, ["queue:h a", "queue:h -", "queue:h a"]);
    } finally {
      gate.resolve();
      await a.stop();
      await etcd.stop();
    }
  },
});

Deno.test({
  name:
    "ClusterNode: a queue claimed for a command is not handed back by the next pass before the command lands in it",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const held = new Set<string>();
    let asked = 0; // passes that asked whether queue:cmd is held
    const a = node(etcd.url, "a", held, [], {
      asked: (q) => {
        if (q === "queue:cmd") asked++;
      },
    });
    const passes = async (n: number) => {
      const want = asked + n;
      const deadline = Date.now() + 10_000;
      while (asked < want) {
        if (Date.now() > deadline) throw new Error(`${n} passes did not come`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await a.start();
      // Claimed for a command (forward.ts), which lands in the queue a moment later: the pass
      // in between sees a queue this node leads and does not hold.
      const { epoch } = await a.claim("queue:cmd");
      await passes(1);
      held.add("queue:cmd");
      await passes(2);
      assert.equal(a.leader("queue:cmd")?.epoch, epoch, "still led, under its first epoch");
      assert.equal(a.stats().resigned, 0);
      // Idle again for two passes: handed back.
      held.delete("queue:cmd");
      await until(a, (s) => s.resigned === 1, "queue:cmd handed back");
      assert.equal(a.leader("queue:cmd"), undefined);
    } finally {
      await a.stop();
      await etcd.stop();
    }
  },
});
