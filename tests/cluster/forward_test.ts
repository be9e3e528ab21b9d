/**
 * Queue commands forwarded to the queue's leader, with three broker
 * processes and a real etcd: a client on any node publishes to and consumes
 * from a queue led by another, replies stay in command order however many
 * are forwarded, competing consumers on different nodes share one queue with
 * the leader honouring each one's prefetch, a DECLARE reaches the leader; and
 * when the leader is SIGKILLed every pending publish is answered (OK or
 * UNAVAILABLE), an ACK of a delivery from it is refused as an unknown id, and
 * the subscription goes on at the queue's next leader under its sub id.
 */
import assert from "node:assert/strict";
import { parseExposition, value } from "../prometheus.ts";
import { connect } from "../../src/client/mod.ts";
import { expectLine, RawClient, type ServerFrame } from "../helpers.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  clusterOf,
  leaderIn,
  type Node,
  publishOn,
  startNode,
  startNodes,
  untilView,
  writeClusterSecret,
} from "./cluster_helpers.ts";
import { bunVersion } from "../child.ts";
import { CHEAP, SECRETS, writeUsers } from "../auth/fixtures.ts";
import { hashPassword } from "../../src/auth/mod.ts";
import type { ClusterStats } from "../../src/cluster/mod.ts";

const decoder = new TextDecoder();

function pub(dest: string, body: string): string {
  return `PUB ${dest} ${new TextEncoder().encode(body).length}\r\n${body}\r\n`;
}

/** The queue's stats on a node (`/api/stats`). */
async function queueOn(node: Node, name: string): Promise<Record<string, unknown> | undefined> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/stats?limit=1000`);
  const stats = await res.json() as { queues: { list: { name: string }[] } };
  return stats.queues.list.find((q) => q.name === name);
}

/** Polls the queue's stats on a node until `ok` (bounded). */
async function untilQueue(
  node: Node,
  name: string,
  ok: (q: Record<string, unknown>) => boolean,
  what: string,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const q = await queueOn(node, name);
    if (q !== undefined && ok(q)) return q;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(q)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Consumes on `c`, ACKing every MSG, into `got`, until a PONG (sent by
 * `done` once everything expected arrived) after which no ACK is unanswered.
 */
async function consume(c: RawClient, got: string[], done: () => void): Promise<number> {
  let acks = 0;
  let oks = 0;
  for (let i = 0; i < 10_000; i++) {
    const f: ServerFrame = await c.frame(10_000);
    if (f.line.startsWith("MSG ")) {
      got.push(decoder.decode(f.payload));
      acks++;
      await c.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
      done();
    } else if (f.line === "OK") oks++;
    else if (f.line === "PONG") {
      assert.equal(oks, acks, "every ACK answered before the PONG behind it");
      return acks;
    } else throw new Error(`unexpected ${f.line}`);
  }
  throw new Error("too many frames");
}

/**
 * Runs `fn` with three nodes (lease TTL 1 s) that see each other, on a test
 * etcd, and a client maker; stops them all, by PID, whatever happens. n3 runs
 * on Bun when it is installed (the shipped binary is Bun-built): proxy
 * connections are dialled and served by both runtimes.
 */
async function withThreeNodes(
  fn: (nodes: Node[], client: (n: Node) => Promise<RawClient>) => Promise<void>,
): Promise<void> {
  const etcd = await Etcd.start();
  const nodes: Node[] = [];
  const clients: RawClient[] = [];
  try {
    const bun = (await bunVersion()) !== undefined;
    await startNodes(etcd.url, ["n1", "n2"], ["--cluster-lease-ttl", "1"], nodes);
    nodes.push(await startNode(etcd.url, "n3", ["--cluster-lease-ttl", "1"], bun));
    for (const n of nodes) await untilView(n, (c) => c.members.length === 3, `${n.id} members`);
    await fn(nodes, async (n) => {
      const c = await RawClient.connect(n.port);
      clients.push(c);
      return c;
    });
  } finally {
    for (const c of clients) await c.close();
    for (const n of nodes) await n.stop("SIGKILL");
    await etcd.stop();
  }
}

Deno.test({
  name: "cluster queues: forwarded to the leader, replies in order, competing consumers, DECLARE",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withThreeNodes(async ([n1, n2, n3], client) => {
      // The first command for the queue, on n1, makes n1 claim it.
      await publishOn(n1, "queue:jobs", "m-0");
      for (const n of [n2, n3]) {
        await untilView(n, (c) => leaderIn(c, "queue:jobs")?.node === "n1", `${n.id} sees n1 lead`);
      }

      // Pipelined on n2: forwarded PUBs, local PINGs and local topic PUBs, in one write; the
      // replies come back in command order (a local reply waits behind forwarded ones).
      const p = await client(n2);
      let wire = "";
      const expected: string[] = [];
      const sent = ["m-0"];
      for (let i = 1; i <= 60; i++) {
        wire += pub("queue:jobs", `m-${i}`);
        sent.push(`m-${i}`);
        expected.push("OK msg_id:");
        if (i % 10 === 0) {
          wire += "PING\r\n" + pub("topic:nobody", "x");
          expected.push("PONG", "OK msg_id:");
        }
      }
      await p.send(wire);
      for (const e of expected) assert.ok((await p.line(10_000)).startsWith(e), e);
      // verbose off for a burst and on again before its answers are in (the SDK's fast path):
      // the burst's OKs stay unsent, the last CONNECT's OK and the PONG come.
      await p.send(
        'CONNECT {"verbose":false}\r\n' + pub("queue:jobs", "v-1") + pub("queue:jobs", "v-2") +
          'CONNECT {"verbose":true}\r\nPING\r\n',
      );
      sent.push("v-1", "v-2");
      assert.equal(await p.line(10_000), "OK");
      assert.equal(await p.line(10_000), "PONG");
      // Every one of them is at the leader, none on n2.
      await untilQueue(n1, "queue:jobs", (q) => q.depth === 63, "63 at the leader");
      assert.equal(await queueOn(n2, "queue:jobs"), undefined, "n2 holds no copy");

      // A DECLARE on n3 reaches the leader.
      const d = await client(n3);
      await expectLine(d, "DECLARE queue:jobs max_deliveries:3", "OK", 10_000);
      await untilQueue(n1, "queue:jobs", (q) => q.declared === true, "declared at the leader");

      // Competing consumers on n3 and n2, prefetch 5 each: the leader keeps 5 in flight to each.
      const c3 = await client(n3);
      await expectLine(c3, "SUB queue:jobs sub_id:w prefetch:5", "OK", 10_000);
      const c2 = await client(n2);
      await expectLine(c2, "SUB queue:jobs prefetch:5", "OK sub_id:1", 10_000);
      await untilQueue(
        n1,
        "queue:jobs",
        (q) => q.consumers === 2 && q.inflight === 10 && q.depth === 53,
        "prefetch 5 each at the leader",
      );
      const got: string[] = [];
      let pinged = false;
      const done = () => {
        if (got.length < sent.length || pinged) return;
        pinged = true;
        void c2.send("PING\r\n");
        void c3.send("PING\r\n");
      };
      const [acked3, acked2] = await Promise.all([consume(c3, got, done), consume(c2, got, done)]);
      assert.deepEqual([...got].sort(), [...sent].sort(), "each message once, none invented");
      assert.ok(acked3 >= 5 && acked2 >= 5, `both consumed (${acked3}, ${acked2})`);
      await untilQueue(
        n1,
        "queue:jobs",
        (q) => q.depth === 0 && q.inflight === 0 && q.acked === 63,
        "all acked at the leader",
      );

      // One ACK line for several deliveries (one line to their leader) and an unknown id: the
      // known ones are acked at the leader, the unknown one named in the one ERR.
      await expectLine(c3, "UNSUB w", "OK", 10_000);
      await p.send(pub("queue:jobs", "z-1") + pub("queue:jobs", "z-2") + pub("queue:jobs", "z-3"));
      for (let i = 0; i < 3; i++) assert.match(await p.line(10_000), /^OK msg_id:/);
      const zs = await c2.msgs(3, 10_000);
      assert.deepEqual(zs.map((f) => decoder.decode(f.payload)).sort(), ["z-1", "z-2", "z-3"]);
      const ids = zs.map((f) => `msg_id:${f.fields!.msg_id}`).join(" ");
      await expectLine(
        c2,
        `ACK ${ids} msg_id:12345`,
        /^ERR UNKNOWN_MSG_ID msg_id:12345 not in flight/,
        10_000,
      );
      await untilQueue(
        n1,
        "queue:jobs",
        (q) => q.depth === 0 && q.inflight === 0 && q.acked === 66,
        "the three acked at the leader",
      );

      // A consumer that goes with a delivery unacked: its proxy connection closes with it, and
      // the leader gives the message to the next consumer (elsewhere), as a redelivery.
      await p.send(pub("queue:jobs", "r-1"));
      assert.match(await p.line(10_000), /^OK msg_id:/);
      const [r1] = await c2.msgs(1, 10_000);
      assert.equal(decoder.decode(r1.payload), "r-1");
      await c2.close();
      const c4 = await client(n3);
      await expectLine(c4, "SUB queue:jobs sub_id:again", "OK", 10_000);
      const [again] = await c4.msgs(1, 10_000);
      assert.equal(decoder.decode(again.payload), "r-1");
      assert.equal(again.fields!.delivery, "2");
      await expectLine(c4, `ACK msg_id:${again.fields!.msg_id}`, "OK", 10_000);

      // A queue led by n3 (on Bun when installed: its cluster port serves the proxy connection),
      // consumed from n2.
      await publishOn(n3, "queue:b3", "b-0");
      await untilView(n2, (c) => leaderIn(c, "queue:b3")?.node === "n3", "n2 sees n3 lead b3");
      const b = await client(n2);
      await expectLine(b, "SUB queue:b3 sub_id:b", "OK", 10_000);
      const [b0] = await b.msgs(1, 10_000);
      assert.equal(decoder.decode(b0.payload), "b-0");
      await expectLine(b, `ACK msg_id:${b0.fields!.msg_id}`, "OK", 10_000);
      await untilQueue(n3, "queue:b3", (q) => q.acked === 1 && q.depth === 0, "b-0 acked at n3");
      if ((await bunVersion()) !== undefined) {
        assert.match(n3.output(), /\(bun [0-9.]+\) listening on/);
      }

      // Counted on the nodes that forwarded, and the metric agrees.
      const v2 = await clusterOf(n2);
      assert.ok(v2.forwarded_commands >= 64, `n2 forwarded ${v2.forwarded_commands}`);
      assert.equal((await clusterOf(n1)).forwarded_commands, 0, "the leader forwarded nothing");
      const scrape = await (await fetch(`http://127.0.0.1:${n2.httpPort}/metrics`)).text();
      assert.ok(
        value(parseExposition(scrape), "relayr_cluster_forwarded_commands_total")! >= 64,
      );
    }),
});

Deno.test({
  name:
    "cluster queues: the leader SIGKILLed: pending publishes answered, ACK of its ids refused, " +
    "the subscription resumes at the next leader",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withThreeNodes(async ([n1, n2, n3], client) => {
      await publishOn(n1, "queue:k", "pre");
      for (const n of [n2, n3]) {
        await untilView(n, (c) => leaderIn(c, "queue:k")?.node === "n1", `${n.id} sees n1 lead`);
      }
      // A consumer on n3 gets "pre" from n1 and holds it unacked.
      const sub = await client(n3);
      await expectLine(sub, "SUB queue:k sub_id:s", "OK", 10_000);
      const [pre] = await sub.msgs(1, 10_000);
      assert.equal(decoder.decode(pre.payload), "pre");
      assert.equal(pre.fields!.sub_id, "s");

      // A publisher on n2 pipelines 200 PUBs; n1 is killed after the first answer.
      const p = await client(n2);
      let wire = "";
      for (let i = 0; i < 100; i++) wire += pub("queue:k", `a-${i}`);
      await p.send(wire);
      const replies = [await p.line(10_000)];
      assert.match(replies[0], /^OK msg_id:/);
      assert.equal((await n1.stop("SIGKILL")).signal, "SIGKILL");
      wire = "";
      for (let i = 100; i < 200; i++) wire += pub("queue:k", `a-${i}`);
      await p.send(wire);
      while (replies.length < 200) replies.push(await p.line(15_000));
      // Every publish is answered exactly once, OK or UNAVAILABLE, in order: OKs, then refusals.
      let oks = 0;
      for (const r of replies) {
        if (r.startsWith("OK msg_id:")) {
          assert.equal(oks, replies.indexOf(r), "no OK after an UNAVAILABLE");
          oks++;
        } else assert.match(r, /^ERR UNAVAILABLE /);
      }
      assert.ok(oks >= 1 && oks < 200, `${oks} OK before the kill took effect`);

      // The ACK of the delivery from the dead leader: refused as an unknown id (or, if it was on
      // its way when the link broke, UNAVAILABLE); never OK.
      const frames: ServerFrame[] = [];
      await sub.send(`ACK msg_id:${pre.fields!.msg_id}\r\n`);
      for (;;) {
        const f = await sub.frame(10_000);
        if (f.line.startsWith("MSG ")) frames.push(f); // delivered before the kill
        else {
          assert.match(f.line, /^ERR (UNKNOWN_MSG_ID|UNAVAILABLE) /);
          break;
        }
      }

      // Publishing goes on: once n1's lease lapsed, the next publish on n2 finds a new leader
      // (n2 or n3: whichever node first claimed the queue).
      const deadline = Date.now() + 20_000;
      for (let i = 0;; i++) {
        await p.send(pub("queue:k", `b-${i}`));
        if ((await p.line(10_000)).startsWith("OK")) break;
        assert.ok(Date.now() < deadline, "a new leader within 20 s");
        await new Promise((r) => setTimeout(r, 100));
      }
      const v = await untilView(n2, (c) => c.members.length === 2, "n1 gone");
      assert.ok(["n2", "n3"].includes(leaderIn(v, "queue:k")!.node));
      let tail = "";
      for (let i = 0; i < 5; i++) tail += pub("queue:k", `c-${i}`);
      await p.send(tail);
      for (let i = 0; i < 5; i++) assert.match(await p.line(10_000), /^OK msg_id:/);

      // The subscription resumed there under its sub id and gets them all (ACK replies and
      // further deliveries interleave: the leader sends on while the ACKs travel).
      const seen = new Set<string>();
      let acks = 0;
      let acked = 0;
      for (let i = 0; i < 10_000 && ![0, 1, 2, 3, 4].every((j) => seen.has(`c-${j}`)); i++) {
        const f = await sub.frame(15_000);
        if (f.line === "OK") {
          acked++;
          continue;
        }
        assert.ok(f.line.startsWith("MSG "), f.line);
        assert.equal(f.fields!.sub_id, "s");
        const body = decoder.decode(f.payload);
        assert.match(body, /^(pre|(a|b|c)-\d+)$/, "only what was published");
        assert.ok(!seen.has(body), `${body} once`);
        seen.add(body);
        await sub.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
        acks++;
      }
      await sub.send("PING\r\n");
      for (let f = await sub.frame(10_000); f.line !== "PONG"; f = await sub.frame(10_000)) {
        if (f.line === "OK") acked++;
        else assert.ok(f.line.startsWith("MSG "), f.line);
      }
      assert.equal(acked, acks, "every ACK at the new leader answered OK");
      // Replicated: what n1 held comes from the next leader, before the later publishes (FIFO):
      // "pre", whose ACK at n1 was refused, and every publish n1 answered OK.
      assert.ok(seen.has("pre"), "the unacked delivery of the dead leader, again");
      for (const [i, r] of replies.entries()) {
        if (r.startsWith("OK")) assert.ok(seen.has(`a-${i}`), `OK'd a-${i} delivered`);
      }
    }),
});

Deno.test({
  name: "cluster queues with users: permissions are checked where the client is; " +
    "a refused command claims nothing",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const clients: RawClient[] = [];
    const path = await writeUsers([{
      user: "alice",
      password: await hashPassword(SECRETS.alicePass, CHEAP),
      permissions: {
        publish: { allow: ["queue:orders.*"] },
        consume: { allow: ["queue:orders.*"] },
      },
    }]);
    // Client auth in a cluster needs the cluster secret (the cluster port would let anyone past it).
    const secretFile = await writeClusterSecret(crypto.randomUUID() + crypto.randomUUID());
    const alice = async (n: Node) => {
      const c = await RawClient.connect(n.port);
      clients.push(c);
      assert.match(await c.line(5000), /^INFO /);
      const auth = JSON.stringify({ user: "alice", pass: SECRETS.alicePass });
      await expectLine(c, `CONNECT ${auth}`, "OK", 5000);
      return c;
    };
    // The monitoring API wants the token when users are on.
    const view = async (n: Node): Promise<ClusterStats> => {
      const res = await fetch(`http://127.0.0.1:${n.httpPort}/api/cluster`, {
        headers: { authorization: `Bearer ${SECRETS.token}` },
      });
      return await res.json();
    };
    const until = async (n: Node, ok: (c: ClusterStats) => boolean, what: string) => {
      const deadline = Date.now() + 10_000;
      for (let v = await view(n); !ok(v); v = await view(n)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      const [n1, n2] = await startNodes(
        etcd.url,
        ["n1", "n2"],
        ["--cluster-lease-ttl", "1", "--users", path, "--auth-token", SECRETS.token].concat(
          ["--cluster-secret-file", secretFile],
        ),
        nodes,
      );
      for (const n of nodes) await until(n, (c) => c.members.length === 2, `${n.id} members`);
      const a2 = await alice(n2);
      // Refused before anything: no leader key is made for a queue she may not use.
      await expectLine(a2, "PUB queue:secret 1\r\nx", /^ERR PERMISSION_DENIED queue:secret/, 5000);
      await expectLine(a2, "SUB queue:secret", /^ERR PERMISSION_DENIED queue:secret/, 5000);
      assert.equal(leaderIn(await view(n2), "queue:secret"), undefined);
      // Allowed: n2 claims queue:orders.eu for her first publish.
      await expectLine(a2, "PUB queue:orders.eu 2\r\no1", /^OK msg_id:/, 5000);
      await until(n1, (c) => leaderIn(c, "queue:orders.eu")?.node === "n2", "n1 sees n2 lead");
      // On n1 her commands are checked on n1, then forwarded to n2 (which trusts n1's check).
      const a1 = await alice(n1);
      await expectLine(a1, "PUB queue:secret 1\r\nx", /^ERR PERMISSION_DENIED queue:secret/, 5000);
      await expectLine(a1, "PUB queue:orders.eu 2\r\no2", /^OK msg_id:/, 5000);
      await expectLine(a1, "SUB queue:orders.eu sub_id:o", "OK", 5000);
      const got = await a1.msgs(2, 10_000);
      assert.deepEqual(got.map((f) => decoder.decode(f.payload)).sort(), ["o1", "o2"]);
      const ids = got.map((f) => `msg_id:${f.fields!.msg_id}`).join(" ");
      await expectLine(a1, `ACK ${ids}`, "OK", 5000);
      const v1 = await view(n1);
      assert.equal(leaderIn(v1, "queue:orders.eu")?.node, "n2");
      assert.equal(leaderIn(v1, "queue:secret"), undefined);
      assert.ok(v1.forwarded_commands >= 3, "n1 forwarded PUB, SUB and ACK");
    } finally {
      for (const c of clients) await c.close();
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
      await Deno.remove(path);
      await Deno.remove(secretFile);
    }
  },
});

Deno.test({
  name: "cluster queues: two leaders hand one client the same id: it gets a fresh one, " +
    "and every ACK reaches its own leader",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withThreeNodes(async ([n1, n2, n3], client) => {
      // queue:a led by n1, queue:b by n3; one connection on n2 consumes both.
      await publishOn(n1, "queue:a", "a-first");
      await publishOn(n3, "queue:b", "b-first");
      for (const [q, leader] of [["queue:a", "n1"], ["queue:b", "n3"]]) {
        await untilView(n2, (c) => leaderIn(c, q)?.node === leader, `n2 sees ${leader} lead ${q}`);
      }
      const c = await client(n2);
      const inFlight = new Map<string, string>(); // client-visible id -> payload
      const take = (f: ServerFrame) => {
        const id = f.fields!.msg_id;
        assert.ok(!inFlight.has(id), `id ${id} handed out twice while in flight`);
        inFlight.set(id, decoder.decode(f.payload));
      };
      // The two OKs, and the two waiting messages (which may come before the second OK).
      await c.send(
        "SUB queue:a sub_id:a prefetch:65536\r\nSUB queue:b sub_id:b prefetch:65536\r\n",
      );
      for (let oks = 0, i = 0; i < 4; i++) {
        const f = await c.frame(10_000);
        if (f.line === "OK") oks++;
        else take(f);
        if (i === 3) assert.equal(oks, 2);
      }
      // Each leader takes the first id of a new millisecond for each pair (its ids are
      // ms * 1024 + seq): published to both at once, a pair often lands in one millisecond on
      // both, and so gets one id twice. Pairs until the front node had to hand out a fresh id
      // (above any clock-made one), bounded.
      const p = await client(n2);
      let fresh = 0;
      let pairs = 0;
      for (; fresh === 0 && pairs < 2000; pairs++) {
        await p.send(pub("queue:a", `a-${pairs}`) + pub("queue:b", `b-${pairs}`));
        assert.match(await p.line(10_000), /^OK msg_id:/);
        assert.match(await p.line(10_000), /^OK msg_id:/);
        for (const f of await c.msgs(2, 10_000)) {
          take(f);
          if (Number(f.fields!.msg_id) > 2 ** 52) fresh++;
        }
      }
      assert.ok(fresh > 0, `no id collision in ${pairs} pairs`);
      // Every delivery, whatever id it got here, is acked at its own leader.
      const ids = [...inFlight.keys()];
      for (let i = 0; i < ids.length; i += 200) {
        const line = ids.slice(i, i + 200).map((id) => `msg_id:${id}`).join(" ");
        await expectLine(c, `ACK ${line}`, "OK", 10_000);
      }
      await untilQueue(n1, "queue:a", (q) => q.acked === pairs + 1 && q.inflight === 0, "a acked");
      await untilQueue(n3, "queue:b", (q) => q.acked === pairs + 1 && q.inflight === 0, "b acked");
    }),
});

Deno.test({
  name: "cluster queues: a WebSocket client is forwarded like a TCP one (the same connection code)",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withThreeNodes(async ([n1, n2, n3], client) => {
      await publishOn(n1, "queue:ws", "t-0");
      await untilView(n3, (c) => leaderIn(c, "queue:ws")?.node === "n1", "n3 sees n1 lead");
      // The SDK over ws:// to n3, which does not lead the queue: its publish goes to n1.
      const ws = await connect(`ws://127.0.0.1:${n3.httpPort}/ws`, { reconnect: false });
      try {
        const id = await ws.publish("queue:ws", "w-1");
        assert.match(id, /^\d+$/, "the leader's OK, with its id");
      } finally {
        await ws.close();
      }
      // A TCP consumer on n2 gets both, in publish order, from the leader.
      const c = await client(n2);
      await c.send("SUB queue:ws sub_id:s\r\n");
      assert.equal(await c.line(10_000), "OK");
      const got = (await c.msgs(2, 10_000)).map((f) => decoder.decode(f.payload));
      assert.deepEqual(got, ["t-0", "w-1"]);
      const stats = await untilView(n3, (s) => s.forwarded_commands > 0, "n3 forwarded");
      assert.ok(stats.forwarded_commands >= 1);
    }),
});
