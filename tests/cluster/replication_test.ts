/**
 * Replication of queues with majority acknowledgement, with a real etcd and
 * three real broker processes (docs/CLUSTERING.md, "Replication"). Clients
 * talk to the queue's leader (found in `/api/cluster`), so that what is
 * measured is replication; forwarding has its own tests (forward_test.ts).
 */
import assert from "node:assert/strict";
import { CLUSTER_COMMIT_MS_MAX } from "../../src/config/mod.ts";
import { bunVersion } from "../child.ts";
import { relayr } from "../client_helpers.ts";
import { RawClient } from "../helpers.ts";
import { parseExposition, value } from "../prometheus.ts";
import { clusterOf, type Node, startNode, startNodes, untilView } from "./cluster_helpers.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  consume,
  leaderOf,
  publishAll,
  publishRetry,
  replOf,
  seedsOf,
  untilLeading,
  withCluster,
} from "./repl_helpers.ts";

const Q = "queue:jobs";

/** Waits until `node`'s copy of `queue` is `leader`'s: same data epoch, lsn and message count. */
async function untilCopyEquals(node: Node, leader: Node, queue: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [l, f] = [await replOf(leader, queue), await replOf(node, queue)];
    if (
      l !== undefined && f !== undefined && f.role === "follower" &&
      f.data_epoch === l.epoch && f.lsn === l.lsn && f.messages === l.messages
    ) return;
    if (Date.now() > deadline) {
      throw new Error(`${node.id}'s copy ${JSON.stringify(f)} never equalled ${JSON.stringify(l)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Publishes one message that stays in `Q`, so that `leader` keeps leading it while a test
 * compares the copies (untilCopyEquals). A queue left empty and unused is forgotten by the
 * broker's sweep and its leadership handed back two claim passes later (docs/CLUSTERING.md,
 * "Queue leadership and epochs"): the leader then lists no copy of it at all, and a comparison
 * slower than that under load (seen at load 5-8) waited for ever on "undefined".
 */
async function keep(leader: Node): Promise<void> {
  await publishRetry(leader, Q, "kept");
}

/** The bodies of `n` messages named `prefix-i`. */
const bodies = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

Deno.test({
  name: "replication: a PUB is OK once a majority has it; with no majority it is UNAVAILABLE",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const stopped: number[] = [];
      try {
        const [n1, n2, n3] = await startNodes(
          etcd.url,
          ["n1", "n2", "n3"],
          ["--cluster-lease-ttl", "30"],
          nodes,
        );
        // The first PUB to a queue nobody leads is held while n1 claims it and sets up its replicas.
        await publishRetry(n1, Q, "first");
        const led = await untilLeading(n1, Q);
        assert.equal(led.replicas.length, 3);
        assert.equal(led.replicas[0], "n1");
        const seeded = await seedsOf(n1, Q);
        const oks = ["first"];
        const batch = bodies("a", 50);
        for (const [i, r] of (await publishAll(n1, Q, batch)).entries()) {
          assert.match(r, /^OK msg_id:/, batch[i]);
          oks.push(batch[i]);
        }
        await untilCopyEquals(n2, n1, Q);
        await untilCopyEquals(n3, n1, Q);
        assert.equal((await replOf(n2, Q))!.messages, seeded + 50);

        // One follower stopped: 2 of 3 still make a majority.
        Deno.kill(n3.pid, "SIGSTOP");
        stopped.push(n3.pid);
        const two = bodies("b", 20);
        for (const [i, r] of (await publishAll(n1, Q, two)).entries()) {
          assert.match(r, /^OK msg_id:/, `${two[i]} with one follower stopped`);
          oks.push(two[i]);
        }
        // Both stopped: no majority, so no OK; UNAVAILABLE once the commit bound passes.
        Deno.kill(n2.pid, "SIGSTOP");
        stopped.push(n2.pid);
        const t0 = Date.now();
        const [alone] = await publishAll(n1, Q, ["c-alone"]);
        assert.match(alone, /^ERR UNAVAILABLE /);
        assert.ok(Date.now() - t0 >= CLUSTER_COMMIT_MS_MAX - 200, "answered only at the bound");
        const c1 = await clusterOf(n1);
        assert.ok(c1.replication!.commit_timeouts >= 1);
        // The metrics and `relayr cluster status` say the same.
        const m = parseExposition(
          await (await fetch(`http://127.0.0.1:${n1.httpPort}/metrics`)).text(),
        );
        assert.equal(value(m, "relayr_cluster_repl_replicas", { queue: Q }), 3);
        assert.equal(value(m, "relayr_cluster_repl_epoch", { queue: Q }), led.epoch);
        assert.ok(value(m, "relayr_cluster_repl_commit_timeouts_total")! >= 1);
        assert.ok(value(m, "relayr_cluster_repl_lag_batches", { queue: Q, node: "n2" })! >= 1);
        const cli = await relayr(["cluster", "status", "--http", `127.0.0.1:${n1.httpPort}`]);
        assert.equal(cli.code, 0, cli.stderr);
        const status = JSON.parse(cli.stdout);
        assert.deepEqual(status.replication.queues[0].replicas, ["n1", "n2", "n3"]);
        assert.equal(status.replication.queues[0].role, "leader");
        for (const pid of stopped.splice(0)) Deno.kill(pid, "SIGCONT");

        await publishRetry(n1, Q, "d-after");
        oks.push("d-after");
        await untilCopyEquals(n2, n1, Q);
        await untilCopyEquals(n3, n1, Q);
        const { delivered } = await consume(n1, Q, {
          ack: () => true,
          done: (seen) => oks.every((b) => seen.has(b)),
        });
        const got = new Set(delivered);
        for (const b of oks) assert.ok(got.has(b), `OK'd ${b} delivered`);
        // The ACKs are replicated: the followers' copies empty out with the leader's, but for
        // one message kept so that the leader keeps the queue (see `keep`).
        await keep(n1);
        await untilCopyEquals(n2, n1, Q);
        assert.equal((await replOf(n2, Q))!.messages, 1);
      } finally {
        for (const pid of stopped) Deno.kill(pid, "SIGCONT");
      }
    }),
});

Deno.test({
  name:
    "replication: kill -9 of the leader under load, 3 rounds: a replica takes over with a larger epoch each time; every OK'd PUB is delivered, no OK'd ACK comes back",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const TTL = ["--cluster-lease-ttl", "1"];
      await startNodes(etcd.url, ["n1", "n2", "n3"], TTL, nodes);
      await publishRetry(nodes[0], Q, "first");
      const published = new Set<string>(["first"]);
      const oks = new Set<string>(["first"]);
      const acked = new Set<string>();
      let epoch = 0;
      for (let round = 0; round < 3; round++) {
        const leader = await leaderOf(nodes, Q);
        const e = (await replOf(leader, Q))!.epoch;
        assert.ok(e > epoch, `round ${round}: epoch ${e} > ${epoch}`);
        epoch = e;
        const batch = bodies(`p${round}`, 100);
        for (const [i, r] of (await publishAll(leader, Q, batch)).entries()) {
          published.add(batch[i]);
          if (r.startsWith("OK")) oks.add(batch[i]);
        }
        // Some consumed and acknowledged: those must never come back.
        const c1 = await consume(leader, Q, {
          ack: (b) => b.includes("-") && Number(b.split("-")[1]) % 2 === 0,
          done: (seen) => seen.size >= 60,
        });
        for (const b of c1.acked) acked.add(b);
        // Load while the leader dies: a publisher on it records what was OK'd.
        const c = await RawClient.connect(leader.port);
        const load = bodies(`q${round}`, 300);
        for (const b of load) {
          published.add(b);
          await c.pub(Q, b);
        }
        let answered = 0;
        for (; answered < 100; answered++) {
          if ((await c.line(10_000)).startsWith("OK")) oks.add(load[answered]);
        }
        await leader.stop("SIGKILL");
        for (; answered < load.length; answered++) {
          let line: string;
          try {
            line = await c.line(5000);
          } catch {
            break; // the connection died with the node: the rest are unknown
          }
          if (line.startsWith("OK")) oks.add(load[answered]);
        }
        await c.close().catch(() => {});
        // Back under its id, on an empty data dir, once its lease is gone.
        nodes.splice(nodes.indexOf(leader), 1);
        nodes.push(await restartNode(etcd.url, leader.id, TTL));
      }
      const leader = await leaderOf(nodes, Q);
      assert.ok((await replOf(leader, Q))!.epoch > epoch);
      await publishRetry(leader, Q, "after");
      published.add("after");
      oks.add("after");
      const all = await consume(leader, Q, {
        ack: () => true,
        done: (seen) => [...oks].every((b) => seen.has(b) || acked.has(b)),
      });
      const got = new Set(all.delivered);
      assert.ok(acked.size >= 50, `${acked.size} acked`);
      for (const b of oks) {
        if (!acked.has(b)) assert.ok(got.has(b), `OK'd ${b} delivered after the failovers`);
      }
      for (const b of acked) assert.ok(!got.has(b), `acked ${b} not delivered again`);
      for (const b of got) assert.ok(published.has(b), `${b} was published`);
      // Every other member holds the leader's copy (one message kept: see `keep`).
      await keep(leader);
      for (const n of nodes) if (n !== leader) await untilCopyEquals(n, leader, Q);
    }),
});

Deno.test({
  name:
    "replication: a leader SIGSTOPped past its lease accepts no write after SIGCONT and catches up as a follower",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      let paused: number | undefined;
      try {
        await startNodes(etcd.url, ["n1", "n2", "n3"], ["--cluster-lease-ttl", "1"], nodes);
        await publishRetry(nodes[0], Q, "first");
        const old = await leaderOf(nodes, Q);
        const epoch0 = (await replOf(old, Q))!.epoch;
        for (const r of await publishAll(old, Q, bodies("p", 20))) assert.match(r, /^OK/);
        const stale = await RawClient.connect(old.port);
        // A consumer of the old leader holds 5 messages in flight.
        const holder = await RawClient.connect(old.port);
        await holder.send(`SUB ${Q} sub_id:h ack:explicit prefetch:5\r\n`);
        assert.match(await holder.line(5000), /^OK/);
        const held = await holder.msgs(5, 5000);

        Deno.kill(paused = old.pid, "SIGSTOP");
        // Written while it is stopped: read by it only after SIGCONT, when another node leads.
        await stale.pub(Q, "stale-write");
        const rest = nodes.filter((n) => n !== old);
        const fresh = await leaderOf(rest, Q);
        assert.ok((await replOf(fresh, Q))!.epoch > epoch0);
        await publishRetry(fresh, Q, "new-leader");
        Deno.kill(old.pid, "SIGCONT");
        paused = undefined;

        // Refused by the deposed node (its view still names itself, or its store is fenced), or,
        // once its view names the new leader, forwarded there and stored by it: never stored on
        // the old epoch.
        const reply = await stale.line(15_000);
        assert.match(reply, /^(OK msg_id:|ERR (NOT_LEADER|UNAVAILABLE) )/);
        const forwarded = reply.startsWith("OK");
        await stale.close();
        // Its consumer is closed with ERR LEADER_CHANGED (its ACKs that arrive before are
        // refused): those messages are still to be delivered.
        for (const m of held) {
          await holder.send(`ACK msg_id:${m.fields!.msg_id}\r\n`).catch(() => {}); // closed
        }
        let closedWith = "";
        for (let i = 0; i <= held.length && closedWith === ""; i++) {
          const line = await holder.line(15_000);
          assert.match(line, /^ERR (NOT_LEADER|UNAVAILABLE|LEADER_CHANGED) /, "ACK refused");
          if (line.startsWith("ERR LEADER_CHANGED")) closedWith = line;
        }
        assert.notEqual(closedWith, "", "the consumer is closed with LEADER_CHANGED");
        await holder.close();
        await untilCopyEquals(old, fresh, Q);
        const { delivered } = await consume(fresh, Q, {
          ack: () => true,
          done: (seen) => seen.has("new-leader") && seen.size >= (forwarded ? 23 : 22),
        });
        assert.equal(
          delivered.includes("stale-write"),
          forwarded,
          forwarded ? "forwarded and stored by the new leader" : "refused, and nowhere",
        );
        for (const b of ["first", ...bodies("p", 20), "new-leader"]) {
          assert.ok(delivered.includes(b), b);
        }
      } finally {
        if (paused !== undefined) Deno.kill(paused, "SIGCONT");
      }
    }),
});

Deno.test({
  name:
    "replication: a follower restarted with an empty data dir catches up (snapshot, then records)",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      await startNodes(etcd.url, ["n1", "n2", "n3"], [], nodes);
      await publishRetry(nodes[0], Q, "first");
      const leader = await leaderOf(nodes, Q);
      const seeds = await seedsOf(leader, Q);
      for (const r of await publishAll(leader, Q, bodies("p", 100))) assert.match(r, /^OK/);
      const follower = nodes.find((n) => n !== leader)!;
      await untilCopyEquals(follower, leader, Q);
      // A clean stop leaves the cluster at once; its data dir goes with it (a fresh one below).
      await follower.stop();
      nodes.splice(nodes.indexOf(follower), 1);
      for (const r of await publishAll(leader, Q, bodies("q", 50))) assert.match(r, /^OK/);
      const again = await startNode(etcd.url, follower.id);
      nodes.push(again);
      await untilCopyEquals(again, leader, Q);
      assert.equal((await replOf(again, Q))!.messages, seeds + 150);
      // And it follows on: new records reach it.
      for (const r of await publishAll(leader, Q, bodies("r", 10))) assert.match(r, /^OK/);
      await untilCopyEquals(again, leader, Q);
      assert.equal((await replOf(again, Q))!.messages, seeds + 160);
      await untilView(again, (c) => c.replication!.queues.length === 1, "one queue copied");
    }),
});

/** Starts node `id` on its data dir, again and again while its old lease still holds the id (bounded). */
async function restartNode(etcdUrl: string, id: string, extra: string[]): Promise<Node> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await startNode(etcdUrl, id, extra);
    } catch (e) {
      // Refused (exit 2) until the killed process's lease has run out.
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

Deno.test({
  name:
    "replication: log store under --fsync always: kill -9 of all three nodes and a restart lose nothing OK'd",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const dirs: string[] = [];
    const args = (i: number) => [
      "--data-dir",
      dirs[i],
      "--fsync",
      "always",
      "--cluster-lease-ttl",
      "1",
    ];
    try {
      for (let i = 0; i < 3; i++) dirs.push(await Deno.makeTempDir({ prefix: "relayr-repl-" }));
      for (let i = 0; i < 3; i++) nodes.push(await startNode(etcd.url, `n${i + 1}`, args(i)));
      await publishRetry(nodes[0], Q, "first");
      const leader = await leaderOf(nodes, Q);
      const oks = new Set(["first"]);
      for (const [i, r] of (await publishAll(leader, Q, bodies("p", 100))).entries()) {
        assert.match(r, /^OK/);
        oks.add(`p-${i}`);
      }
      const first = await consume(leader, Q, {
        ack: (b) => b.startsWith("p-") && Number(b.slice(2)) < 30,
        done: (seen) => seen.has("p-29"),
      });
      const acked = new Set(first.acked);
      assert.ok(acked.has("p-0"));
      // Publishes in flight as every node dies at once.
      const c = await RawClient.connect(leader.port);
      const load = bodies("q", 200);
      for (const b of load) await c.pub(Q, b);
      for (let i = 0; i < 50; i++) if ((await c.line(10_000)).startsWith("OK")) oks.add(load[i]);
      for (const n of nodes) Deno.kill(n.pid, "SIGKILL");
      for (let i = 50; i < load.length; i++) {
        try {
          if ((await c.line(2000)).startsWith("OK")) oks.add(load[i]);
        } catch {
          break;
        }
      }
      await c.close().catch(() => {});
      for (const n of nodes.splice(0)) await n.stop("SIGKILL");
      // The data dirs stay: each node comes back on its own.
      for (let i = 0; i < 3; i++) nodes.push(await restartNode(etcd.url, `n${i + 1}`, args(i)));
      const back = await leaderOf(nodes, Q, 30_000);
      const all = await consume(back, Q, {
        ack: () => true,
        done: (seen) => [...oks].every((b) => seen.has(b) || acked.has(b)),
      });
      const got = new Set(all.delivered);
      for (const b of oks) if (!acked.has(b)) assert.ok(got.has(b), `OK'd ${b} survived`);
      for (const b of acked) assert.ok(!got.has(b), `acked ${b} stays acked`);
    } finally {
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
      for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "replication: a follower that leaves is replaced, and its replacement gets a snapshot",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      await startNodes(etcd.url, ["n1", "n2", "n3"], ["--replicas", "2"], nodes);
      // Two nodes get the first PUB of a new queue at once: one claims it, the other forwards
      // its PUB there; both are OK, and both messages are in the one queue.
      const race = await Promise.all(
        [nodes[0], nodes[1]].map((n) => publishAll(n, "queue:race", [`from-${n.id}`])),
      );
      for (const [r] of race) assert.match(r, /^OK msg_id:/, JSON.stringify(race));
      const racer = await leaderOf(nodes, "queue:race");
      assert.equal((await replOf(racer, "queue:race"))!.messages, 2);
      await publishRetry(nodes[0], Q, "first");
      const leader = await leaderOf(nodes, Q);
      const before = await untilLeading(leader, Q);
      const seeds = await seedsOf(leader, Q);
      assert.equal(before.replicas.length, 2);
      for (const r of await publishAll(leader, Q, bodies("p", 40))) assert.match(r, /^OK/);
      const gone = nodes.find((n) => n.id === before.replicas[1])!;
      const spare = nodes.find((n) => n !== leader && n !== gone)!;
      assert.equal(await replOf(spare, Q), undefined, "the spare holds no copy yet");
      await gone.stop(); // a clean stop: it leaves the cluster at once
      const after = await untilView(
        leader,
        (c) => c.replication?.queues[0]?.replicas.join() === `${leader.id},${spare.id}`,
        `${spare.id} to replace ${gone.id}`,
      );
      assert.equal(after.replication!.queues[0].epoch, before.epoch, "the same leadership");
      await untilCopyEquals(spare, leader, Q);
      assert.equal((await replOf(spare, Q))!.messages, seeds + 40);
      // The records go on reaching the new member.
      for (const r of await publishAll(leader, Q, bodies("q", 5))) assert.match(r, /^OK/);
      await untilCopyEquals(spare, leader, Q);
    }),
});

Deno.test({
  name:
    "replication across runtimes: two nodes on Bun, one on Deno; a kill -9 fails over with nothing lost",
  ignore: ETCD_MISSING !== undefined || (await bunVersion()) === undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const TTL = ["--cluster-lease-ttl", "1"];
      nodes.push(await startNode(etcd.url, "n1", TTL, true));
      nodes.push(await startNode(etcd.url, "n2", TTL, true));
      nodes.push(await startNode(etcd.url, "n3", TTL));
      await publishRetry(nodes[0], Q, "first");
      const leader = await leaderOf(nodes, Q);
      const batch = bodies("p", 50);
      const okIds = new Map<string, string>();
      for (const [i, r] of (await publishAll(leader, Q, batch)).entries()) {
        assert.match(r, /^OK msg_id:/);
        okIds.set(batch[i], r.slice("OK msg_id:".length));
      }
      for (const n of nodes) if (n !== leader) await untilCopyEquals(n, leader, Q);
      await leader.stop("SIGKILL");
      const next = await leaderOf(nodes.filter((n) => n !== leader), Q);
      const { delivered, ids } = await consume(next, Q, {
        ack: () => true,
        done: (seen) => seen.size >= 51,
      });
      for (const b of ["first", ...batch]) assert.ok(delivered.includes(b), b);
      // A message keeps its id through the failover: the id its PUB was answered with.
      for (const b of batch) assert.equal(ids.get(b), okIds.get(b), b);
    }),
});
