/**
 * Bindings across the cluster (docs/CLUSTERING.md, "Bindings across nodes"),
 * with a real etcd and three real broker processes: a BIND made on any node
 * holds for the whole cluster and outlives a node's restart; a topic message
 * published on any node puts exactly one copy per binding into the bound
 * queue at its leader, before the publisher's OK; UNBIND likewise.
 */
import assert from "node:assert/strict";
import type { BindingStats } from "../../src/broker/mod.ts";
import { bunVersion } from "../child.ts";
import { RawClient } from "../helpers.ts";
import { clusterOf, type Node, startNode, startNodes, untilView } from "./cluster_helpers.ts";
import { type Etcd, ETCD_MISSING } from "./etcd.ts";
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

const Q = "queue:audit";

/** The node's bindings, as `/api/stats` (and `relayr stats`) list them. */
async function bindingsOf(node: Node): Promise<BindingStats[]> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/stats`);
  return (await res.json()).bindings.list;
}

/** Waits (bounded) until every node lists exactly the bindings `want` (pattern and queue). */
async function untilBindings(nodes: Node[], want: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const seen = await Promise.all(
      nodes.map(async (n) => (await bindingsOf(n)).map((b) => `${b.pattern} ${b.queue}`)),
    );
    if (seen.every((s) => JSON.stringify(s) === JSON.stringify(want))) return;
    if (Date.now() > deadline) {
      throw new Error(`bindings never became ${JSON.stringify(want)}: ${JSON.stringify(seen)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends `line` on a new connection to `node`; returns its answer. */
async function command(node: Node, line: string): Promise<string> {
  const c = await RawClient.connect(node.port);
  try {
    await c.send(`${line}\r\n`);
    return await c.line(5000);
  } finally {
    await c.close();
  }
}

/**
 * Three nodes (`--cluster-lease-ttl ttl`) into `nodes`, n3 on Bun when it is
 * installed (it publishes: its copies go over its copy link), n1 leading `Q`
 * (with its seed message), and `BIND topic:orders.> queue:audit` made on n2,
 * seen by every node.
 */
async function boundCluster(etcd: Etcd, nodes: Node[], ttl: string): Promise<Node[]> {
  const [n1, n2] = await startNodes(etcd.url, ["n1", "n2"], ["--cluster-lease-ttl", ttl], nodes);
  const bun = (await bunVersion()) !== undefined;
  const n3 = await startNode(etcd.url, "n3", ["--cluster-lease-ttl", ttl], bun);
  nodes.push(n3);
  if (bun) assert.match(n3.output(), /\(bun [0-9.]+\) listening on/);
  await publishRetry(n1, Q, "seed");
  await untilLeading(n1, Q);
  assert.equal(await command(n2, `BIND topic:orders.> ${Q}`), "OK");
  await untilBindings(nodes, [`topic:orders.> ${Q}`]);
  return nodes;
}

/** Asserts that the leader's copy of `Q` holds `n` messages; else names what it holds. */
async function holds(leader: Node, n: number): Promise<void> {
  const have = (await replOf(leader, Q))!.messages;
  if (have === n) return;
  const res = await fetch(`http://127.0.0.1:${leader.httpPort}/api/queues/${Q}/peek?n=200`);
  const peeked = (await res.json()).messages as { body?: string }[];
  assert.fail(`${leader.id} holds ${have} messages, not ${n}: ${JSON.stringify(peeked)}`);
}

const bodies = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

Deno.test({
  name:
    "bindings: a BIND on any node holds cluster-wide; one copy per binding at the leader, before the OK",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      // n1 leads the queue (replicated to n2 and n3); the binding is made on n2.
      const [n1, n2, n3] = await boundCluster(etcd, nodes, "30");
      const seeds = await seedsOf(n1, Q);
      // A topic subscriber on every node: each node gets every message over the link, and
      // must still not make a copy of a peer's message (one copy per binding, not per node).
      const subs = await Promise.all(nodes.map((n) => RawClient.connect(n.port)));
      for (const s of subs) {
        await s.send("SUB topic:orders.> sub_id:t\r\n");
        assert.match(await s.line(5000), /^OK/);
      }
      for (const n of nodes) {
        await untilView(
          n,
          (c) => c.links.length === 2 && c.links.every((l) => l.patterns >= 1),
          `${n.id} to know the other nodes' subscribers`,
        );
      }
      // With a selector, made on n3: only the messages it takes.
      assert.equal(await command(n3, `BIND topic:vip.* ${Q} filter:"priority > 4"`), "OK");
      await untilBindings(nodes, [`topic:orders.> ${Q}`, `topic:vip.* ${Q}`]);
      const [vip] = (await bindingsOf(n1)).filter((b) => b.pattern === "topic:vip.*");
      assert.equal(vip.filter, "priority > 4");

      // Published on each node: the non-leaders' copies are sent to n1, the leader's stored there.
      const sent: string[] = [];
      for (const [n, prefix] of [[n3, "c"], [n2, "b"], [n1, "a"]] as const) {
        const bs = bodies(prefix, 20);
        const answers = await publishAll(n, "topic:orders.eu", bs);
        assert.ok(answers.every((a) => a.startsWith("OK msg_id:")), answers.join(" | "));
        sent.push(...bs);
        // The OK waited for the copies: the leader holds them when the last OK is read.
        await holds(n1, seeds + sent.length);
      }
      // Each copy sent to the leader is a forwarded command of its node; the leader sent none.
      for (const [n, copies] of [[n3, 20], [n2, 20], [n1, 0]] as const) {
        assert.equal((await clusterOf(n)).forwarded_commands, copies, n.id);
      }
      // Only the copies the selector takes (priority 5), from a non-leader.
      const vc = await RawClient.connect(n2.port);
      await vc.pub("topic:vip.x", "vip-low", "priority:1");
      await vc.pub("topic:vip.x", "vip-high", "priority:5");
      assert.match(await vc.line(5000), /^OK/);
      assert.match(await vc.line(5000), /^OK/);
      await vc.close();
      sent.push("vip-high");
      await holds(n1, seeds + sent.length);
      // Every topic subscriber got the topic messages as before (60 each).
      for (const s of subs) {
        for (let i = 0; i < 60; i++) assert.ok((await s.frame(5000)).payload !== undefined);
      }
      // A delayed topic message is scheduled on every node with a subscriber, and copied once:
      // by n3, where it was published, when it is due.
      assert.match((await publishAll(n3, "topic:orders.eu", ["later"]))[0], /^OK/);
      const delayed = await RawClient.connect(n3.port);
      await delayed.pub("topic:orders.eu", "delayed", "delay:200");
      assert.match(await delayed.line(5000), /^OK/);
      await delayed.close();
      for (const s of subs) {
        assert.equal(new TextDecoder().decode((await s.frame(5000)).payload), "later");
        assert.equal(new TextDecoder().decode((await s.frame(5000)).payload), "delayed");
      }
      // A copy a peer made when it fired would be on its link to n1 before these markers' copies.
      for (const n of [n2, n3]) {
        assert.match((await publishAll(n, "topic:orders.eu", [`mark-${n.id}`]))[0], /^OK/);
      }
      sent.push("later", "mark-n2", "mark-n3");
      const deadline = Date.now() + 10_000;
      while ((await replOf(n1, Q))!.messages < seeds + 1 + sent.length && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50)); // the due copy is sent when it fires
      }
      sent.push("delayed");
      await holds(n1, seeds + sent.length);
      // Consumed through n3 (forwarded): each copy once, with the seed.
      const want = new Set(["seed", ...sent]);
      const copies = seeds - 1 + want.size; // the seeds, and each copy once
      const got = await consume(n3, Q, {
        ack: () => true,
        done: (seen) => seen.size === want.size,
      });
      assert.deepEqual(new Set(got.delivered), want);
      assert.equal(got.delivered.length, copies, "a copy was delivered twice");
      assert.equal(got.acked.length, copies);
      assert.equal((await replOf(n1, Q))!.messages, 0);

      // A node restarted (on an empty data dir) has the bindings from etcd, and routes again.
      await n2.stop("SIGTERM");
      const n2b = await startNode(etcd.url, "n2", ["--cluster-lease-ttl", "30"]);
      nodes[1] = n2b;
      await untilBindings([n2b], [`topic:orders.> ${Q}`, `topic:vip.* ${Q}`]);
      const again = await publishAll(n2b, "topic:orders.us", ["after-restart"]);
      assert.match(again[0], /^OK/);
      await holds(n1, 1);

      // UNBIND on n1 goes for every node; then nothing more is copied.
      assert.equal(await command(n1, `UNBIND topic:orders.> ${Q}`), "OK");
      await untilBindings([n1, n2b, n3], [`topic:vip.* ${Q}`]);
      assert.match((await publishAll(n3, "topic:orders.eu", ["unbound"]))[0], /^OK/);
      assert.match((await publishAll(n2b, "topic:orders.eu", ["unbound"]))[0], /^OK/);
      await holds(n1, 1);
      for (const s of subs) await s.close();
    }),
});

Deno.test({
  name:
    "bindings: after the queue's leader is SIGKILLed, every copy whose publish was OK is delivered",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const [n1, n2, n3] = await boundCluster(etcd, nodes, "1");
      // 300 pipelined topic publishes on n3 while n1, the queue's leader, is SIGKILLed.
      const c = await RawClient.connect(n3.port);
      const bs = bodies("m", 300);
      for (const b of bs.slice(0, 100)) await c.pub("topic:orders.eu", b);
      const answers: string[] = [];
      for (let i = 0; i < 20; i++) answers.push(await c.line(15_000));
      for (const b of bs.slice(100)) await c.pub("topic:orders.eu", b);
      await n1.stop("SIGKILL");
      for (let i = 20; i < bs.length; i++) answers.push(await c.line(20_000));
      await c.close();
      const ok = bs.filter((_, i) => answers[i].startsWith("OK"));
      // Anything else says the copy's outcome is unknown, never a silent loss.
      for (const a of answers) assert.match(a, /^(OK|ERR UNAVAILABLE|ERR NOT_LEADER)/);
      assert.ok(ok.length >= 20, `${ok.length} OK`);
      // Publishing goes on: a later publish is OK once n2 or n3 leads the queue.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const [a] = await publishAll(n3, "topic:orders.eu", ["later"]);
        if (a.startsWith("OK")) break;
        // Between leaders: this node held it and another won the claim (NOT_LEADER), or no leader yet.
        assert.match(a, /^ERR (UNAVAILABLE|NOT_LEADER)/);
        if (Date.now() > deadline) throw new Error(`no leader took ${Q}: ${a}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const leader = await leaderOf([n2, n3], Q);
      const got = await consume(leader, Q, {
        ack: () => true,
        done: (seen) => ok.every((b) => seen.has(b)) && seen.has("later"),
      });
      const seen = new Set(got.delivered);
      const lost = ok.filter((b) => !seen.has(b));
      assert.deepEqual(lost, [], `OK'd copies lost: ${lost.join(" ")}`);
      for (const b of got.delivered) assert.ok(b === "seed" || b === "later" || bs.includes(b));
    }),
});

Deno.test({
  name: "bindings: while etcd is away a BIND is refused UNAVAILABLE and the bindings are kept",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const [n1, n2] = await startNodes(
        etcd.url,
        ["n1", "n2"],
        ["--cluster-lease-ttl", "30"],
        nodes,
      );
      assert.equal(await command(n1, `BIND topic:orders.> ${Q}`), "OK");
      await untilBindings(nodes, [`topic:orders.> ${Q}`]);
      await etcd.kill();
      for (const n of nodes) await untilView(n, (c) => !c.etcd_reachable, `${n.id} to see etcd go`);
      assert.match(
        await command(n2, `BIND topic:eu.> ${Q}`),
        /^ERR UNAVAILABLE the cluster's bindings cannot be changed now \(etcd: .*\); retry$/,
      );
      assert.match(await command(n1, `UNBIND topic:orders.> ${Q}`), /^ERR UNAVAILABLE /);
      await untilBindings(nodes, [`topic:orders.> ${Q}`]); // kept, on both
      await etcd.restart();
      for (const n of nodes) await untilView(n, (c) => c.etcd_reachable, `${n.id} to see etcd`);
      assert.equal(await command(n2, `BIND topic:eu.> ${Q}`), "OK");
      await untilBindings(nodes, [`topic:eu.> ${Q}`, `topic:orders.> ${Q}`]);
    }),
});
