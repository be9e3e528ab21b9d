/**
 * Declared topics across the cluster (docs/CLUSTERING.md, "Declared topics
 * across nodes"), with a real etcd and three real broker processes: a
 * declared topic is led by one node and its retained log replicated like a
 * queue; publishes from any node reach every subscriber once and in order;
 * replays and durables are served from the leader's log from any node; and
 * a SIGKILLed leader's successor serves what was answered `OK`. With a users
 * file, a user's durable made on a node that does not lead the topic is kept
 * by the leader under that user (two users' durables of one name apart), and
 * the option that carries the user is refused from a client.
 */
import assert from "node:assert/strict";
import { hashPassword } from "../../src/auth/mod.ts";
import type { ClusterStats } from "../../src/cluster/mod.ts";
import { CHEAP, SECRETS, writeUsers } from "../auth/fixtures.ts";
import { RawClient, type ServerFrame } from "../helpers.ts";
import { bunVersion } from "../child.ts";
import {
  clusterOf,
  type Node,
  startNode,
  startNodes,
  writeClusterSecret,
} from "./cluster_helpers.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  consume,
  dumpLogs,
  leaderOf,
  publishAll,
  publishRetry,
  replOf,
  RETRYABLE,
} from "./repl_helpers.ts";

const T = "topic:orders";
const decoder = new TextDecoder();

/** The bodies of `n` messages named `prefix-i`. */
const bodies = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** Runs `fn` with a fresh etcd and the nodes it starts; all killed and etcd stopped afterwards. */
async function withCluster(
  fn: (etcd: Etcd, nodes: Node[], clients: RawClient[]) => Promise<void>,
): Promise<void> {
  const etcd = await Etcd.start();
  const nodes: Node[] = [];
  const clients: RawClient[] = [];
  try {
    await fn(etcd, nodes, clients);
  } catch (e) {
    dumpLogs(nodes);
    throw e;
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const n of nodes) await n.stop("SIGKILL");
    await etcd.stop();
  }
}

/**
 * Sends `line` on a new connection to `node` until it is answered `OK`
 * (the connection stays open), retrying a refusal made before anything was
 * done (`UNAVAILABLE`, `NOT_LEADER`: a claim that etcd was slow to answer on
 * this loaded machine, a leader change), as a client should; bounded.
 */
async function command(node: Node, line: string, clients: RawClient[]): Promise<RawClient> {
  const c = await RawClient.connect(node.port);
  clients.push(c);
  for (let attempt = 1;; attempt++) {
    await c.send(`${line}\r\n`);
    const answer = await c.line(15_000);
    if (answer.startsWith("OK")) return c;
    assert.ok(RETRYABLE.test(answer) && attempt < 50, `${line} on ${node.id}: ${answer}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Reads `n` MSG frames; returns their bodies (and their ids, by body). */
async function read(c: RawClient, n: number, ids?: Map<string, string>): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const f: ServerFrame = await c.frame(15_000);
    assert.ok(f.line.startsWith("MSG "), f.line);
    const body = decoder.decode(f.payload);
    ids?.set(body, f.fields!.msg_id);
    out.push(body);
  }
  return out;
}

/** Answers a PING with PONG: nothing else was sent on the connection before it. */
async function nothingMore(c: RawClient): Promise<void> {
  await c.send("PING\r\n");
  assert.equal(await c.line(5000), "PONG");
}

/** Waits (bounded) until every node's copy of `dest` holds `n` messages. */
async function untilCopies(nodes: Node[], dest: string, n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const held = await Promise.all(nodes.map((x) => replOf(x, dest)));
    if (held.every((q) => q?.messages === n)) return;
    if (Date.now() > deadline) throw new Error(`copies of ${dest}: ${JSON.stringify(held)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A test on three nodes (`--cluster-lease-ttl ttl`) where `T` is declared
 * through node `at`, which claims the topic and so leads it; with `bun`, n3
 * runs on Bun when it is installed (the shipped binary is Bun-built).
 */
function declaredTest(
  name: string,
  o: { ttl: number; at: number; bun?: boolean },
  fn: (nodes: Node[], clients: RawClient[]) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: ETCD_MISSING !== undefined,
    fn: () =>
      withCluster(async (etcd, nodes, clients) => {
        const extra = ["--cluster-lease-ttl", `${o.ttl}`];
        await startNodes(etcd.url, ["n1", "n2"], extra, nodes);
        const bun = o.bun === true && (await bunVersion()) !== undefined;
        nodes.push(await startNode(etcd.url, "n3", extra, bun));
        if (bun) assert.match(nodes[2].output(), /\(bun [0-9.]+\) listening on/);
        await command(nodes[o.at], `DECLARE ${T} retain_messages:10000`, clients);
        const leader = await leaderOf(nodes, T);
        if (leader.id !== nodes[o.at].id) {
          const views = await Promise.all(nodes.map((n) => clusterOf(n)));
          const log = nodes.map((n) => n.output()).join("\n----\n");
          assert.fail(`${leader.id} leads ${T}: ${JSON.stringify(views)}\n${log}`);
        }
        await fn(nodes, clients);
      }),
  });
}

declaredTest(
  "declared topics: led and replicated, published once from any node, replayed anywhere",
  { ttl: 30, at: 1, bun: true },
  async (nodes, clients) => {
    const [n1, n2, n3] = nodes;
    // Live subscribers on every node.
    const live = await Promise.all(nodes.map((n) => command(n, `SUB ${T} sub_id:l`, clients)));
    // Publishers on the two other nodes: forwarded to n2, answered once a majority holds them.
    const sent1 = bodies("p1", 30);
    const sent3 = bodies("p3", 30);
    const [r1, r3] = await Promise.all([
      publishAll(n1, T, sent1),
      publishAll(n3, T, sent3),
    ]);
    for (const r of [...r1, ...r3]) assert.match(r, /^OK msg_id:/);
    // Each live subscriber gets each message once, each publisher's in order; the origin
    // node delivers only the leader's copy (no second delivery of its own).
    for (const c of live) {
      const got = await read(c, 60);
      assert.deepEqual(got.filter((b) => b.startsWith("p1-")), sent1);
      assert.deepEqual(got.filter((b) => b.startsWith("p3-")), sent3);
      await nothingMore(c);
    }
    // The retained log is on every replica.
    const led = (await replOf(n2, T))!;
    assert.equal(led.role, "leader");
    assert.deepEqual([...led.replicas].sort(), ["n1", "n2", "n3"]);
    await untilCopies(nodes, T, 60);
    // A replay from a node that does not lead the topic: the leader's log, then live ones.
    const replay = await command(n3, `SUB ${T} sub_id:r start:first`, clients);
    const replayed = await read(replay, 60);
    assert.deepEqual(replayed.filter((b) => b.startsWith("p1-")), sent1);
    assert.deepEqual(replayed.filter((b) => b.startsWith("p3-")), sent3);
    const [late] = await publishAll(n1, T, ["late"]);
    assert.match(late, /^OK msg_id:/);
    assert.deepEqual(await read(replay, 1), ["late"]);
    for (const c of live) assert.deepEqual(await read(c, 1), ["late"]);
    await nothingMore(replay);
    // A plain topic keeps its path: not forwarded, no leader.
    const plain = await command(n3, "SUB topic:plain sub_id:x", clients);
    const before = (await clusterOf(n1)).forwarded_commands;
    const [p] = await publishAll(n1, "topic:plain", ["plain"]);
    assert.match(p, /^OK msg_id:/);
    assert.deepEqual(await read(plain, 1), ["plain"]);
    // Published to as a plain topic, then declared on the same connection: it gets a leader.
    const same = await RawClient.connect(n3.port);
    clients.push(same);
    await same.pub("topic:later", "plain");
    assert.match(await same.line(15_000), /^OK msg_id:/);
    await same.send("DECLARE topic:later retain_messages:10\r\n");
    assert.equal(await same.line(15_000), "OK");
    const v1 = await clusterOf(n1);
    assert.equal(v1.forwarded_commands, before);
    assert.equal(v1.leaders.some((l) => l.queue === "topic:plain"), false);
  },
);

/** Waits (bounded) until no subscription uses durable `name` of `T` on its leader `node`. */
async function untilDetached(node: Node, name: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/topics?q=${T}`);
    const body = await res.json() as {
      list: { name: string; durables: { name: string; connected: boolean }[] }[];
    };
    const d = body.list.find((t) => t.name === T)?.durables.find((x) => x.name === name);
    if (d !== undefined && !d.connected) return;
    if (Date.now() > deadline) {
      throw new Error(`durable ${name} still in use: ${JSON.stringify(d)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Subscribes durable `name` to `T` on `node`, reads `n` messages and ACKs
 * those `ack` takes, each ACK answered before the next is sent; returns the
 * bodies delivered and acked. The connection is closed at the end.
 */
async function durable(
  node: Node,
  name: string,
  n: number,
  ack: (body: string) => boolean,
): Promise<{ delivered: string[]; acked: string[] }> {
  const c = await RawClient.connect(node.port);
  try {
    await c.send(`SUB ${T} sub_id:d durable:${name} start:first prefetch:1000\r\n`);
    const ok = await c.line(15_000);
    assert.match(ok, /^OK/, `durable SUB on ${node.id}`);
    const ids = new Map<string, string>();
    const delivered = await read(c, n, ids);
    const acked: string[] = [];
    for (const b of delivered.filter(ack)) {
      await c.send(`ACK msg_id:${ids.get(b)}\r\n`);
      assert.equal(await c.line(15_000), "OK", `ACK of ${b}`);
      acked.push(b);
    }
    return { delivered, acked };
  } finally {
    await c.close();
  }
}

declaredTest(
  "declared topics: a durable on any node is kept by the leader and resumes where it was",
  { ttl: 30, at: 0 },
  async (nodes, clients) => {
    const [n1, n2, n3] = nodes;
    const sent = bodies("m", 20);
    for (const r of await publishAll(n2, T, sent)) assert.match(r, /^OK msg_id:/);
    // On n3 (forwarded to n1): the first 10 delivered and acked in order.
    const first = await durable(n3, "billing", 20, (b) => sent.indexOf(b) < 10);
    assert.deepEqual(first.delivered, sent);
    await untilDetached(n1, "billing");
    // Resumed on n2: after the last acked one, nothing acked comes again.
    const second = await durable(n2, "billing", 10, () => true);
    assert.deepEqual(second.delivered, sent.slice(10));
    // The position is kept in the leader's replicated store of the topic's durables.
    await untilCopies(nodes, `durables:${T}`, 1);
    // In use on one node: refused on another.
    const holder = await command(n2, `SUB ${T} sub_id:h durable:audit`, clients);
    const other = await RawClient.connect(n3.port);
    clients.push(other);
    await other.send(`SUB ${T} sub_id:h durable:audit\r\n`);
    assert.match(await other.line(15_000), /^ERR DURABLE_IN_USE /);
    await nothingMore(holder);
    // A start on a topic no one declared is refused as on one broker.
    await other.send("SUB topic:nothing sub_id:z start:first\r\n");
    assert.match(await other.line(5000), /^ERR NOT_DECLARED /);
  },
);

/**
 * Reads deliveries on `c` until every body of `want` came (bounded), then
 * up to a PONG; returns every body delivered, in order.
 */
async function readAll(c: RawClient, want: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const missing = new Set(want);
  for (let i = 0; missing.size > 0; i++) {
    assert.ok(i < 10_000, "bounded");
    const [b] = await read(c, 1);
    out.push(b);
    missing.delete(b);
  }
  await c.send("PING\r\n");
  for (let i = 0;; i++) {
    assert.ok(i < 10_000, "bounded");
    const f = await c.frame(15_000);
    if (f.line === "PONG") return out;
    assert.ok(f.line.startsWith("MSG "), f.line);
    out.push(decoder.decode(f.payload));
  }
}

declaredTest(
  "declared topics: the leader SIGKILLed: the next one serves every OK'd message and position",
  { ttl: 1, at: 0, bun: true },
  async (nodes, clients) => {
    const [n1, n2, n3] = nodes;
    const epoch = (await replOf(n1, T))!.epoch;
    const sent = bodies("m", 40);
    for (const r of await publishAll(n3, T, sent)) assert.match(r, /^OK msg_id:/);
    // A durable on n2 acks the first 10 (each ACK answered OK once a majority stored it).
    const first = await durable(n2, "billing", 40, (b) => sent.indexOf(b) < 10);
    assert.deepEqual(first.acked, sent.slice(0, 10));
    // A replay through n3 that has the 40 when its leader dies.
    const rp = await command(n3, `SUB ${T} sub_id:rp start:first`, clients);
    assert.deepEqual(await read(rp, 40), sent);
    // 300 publishes in flight on n2 as n1 is SIGKILLed: some OK, the rest UNAVAILABLE.
    const burst = bodies("k", 300);
    const pc = await RawClient.connect(n2.port);
    clients.push(pc);
    for (const b of burst) await pc.pub(T, b);
    const ok = [...sent];
    for (const [i, b] of burst.entries()) {
      if (i === 100) await n1.stop("SIGKILL"); // the first 100 answered, the rest in flight
      const r = await pc.line(20_000);
      if (r.startsWith("OK")) ok.push(b);
      else assert.match(r, /^ERR (UNAVAILABLE|NOT_LEADER) /, b);
    }
    // A survivor takes the topic over with a larger epoch and serves it.
    const next = await leaderOf([n2, n3], T, 30_000);
    assert.ok((await replOf(next, T))!.epoch > epoch);
    assert.ok(ok.length >= sent.length + 100, "the burst's first 100 were answered OK");
    // A replay on each survivor: every OK'd message, once, nothing never published, in order.
    const published = new Set([...sent, ...burst]);
    for (const n of [n2, n3]) {
      const r = await command(n, `SUB ${T} sub_id:r start:first`, clients);
      const got = await readAll(r, ok);
      assert.equal(new Set(got).size, got.length, `no duplicate on ${n.id}`);
      for (const b of got) assert.ok(published.has(b), `${b} was published`);
      const okOrder = got.filter((b) => ok.includes(b));
      assert.deepEqual(okOrder, ok, `the OK'd ones in publish order on ${n.id}`);
    }
    // The durable resumes after its last acked message: nothing acked comes again.
    const c = await RawClient.connect(n3.port);
    clients.push(c);
    await c.send(`SUB ${T} sub_id:d durable:billing prefetch:1000\r\n`);
    for (let i = 0;; i++) {
      const line = await c.line(15_000);
      if (line.startsWith("OK")) break;
      // Its SUB may reach the new leader before the old one's hold on it is known to be gone.
      assert.ok(i < 100 && /^ERR (UNAVAILABLE|DURABLE_IN_USE) /.test(line), line);
      await new Promise((r) => setTimeout(r, 100));
      await c.send(`SUB ${T} sub_id:d durable:billing prefetch:1000\r\n`);
    }
    const resumed = await readAll(c, ok.slice(10));
    assert.equal(resumed[0], sent[10], "resumes after the last acked message");
    for (const b of sent.slice(0, 10)) assert.ok(!resumed.includes(b), `${b} was acked`);
    // Publishing goes on from any node.
    const [after] = await publishAll(n3, T, ["after"]);
    assert.match(after, /^OK msg_id:/);
    assert.deepEqual(await read(c, 1), ["after"]);
    // The replay made through n3 was re-made at the new leader from where it was (before
    // "after", which it gets live): every OK'd message, none of those it had again.
    const rest = await readAll(rp, [...ok.slice(40), "after"]);
    const seen = [...sent, ...rest];
    assert.equal(new Set(seen).size, seen.length, "the replay got no message twice");
    for (const b of rest) assert.ok(published.has(b) || b === "after", `${b} was published`);
  },
);

declaredTest(
  "declared topics: a leader cut off past its lease answers no write OK; its own replays are closed",
  { ttl: 1, at: 0 },
  async (nodes, clients) => {
    const [n1, n2, n3] = nodes;
    const live = await command(n3, `SUB ${T} sub_id:l`, clients);
    const own = await command(n1, `SUB ${T} sub_id:r start:first`, clients);
    const pub = await RawClient.connect(n1.port);
    clients.push(pub);
    await pub.pub(T, "before");
    assert.match(await pub.line(15_000), /^OK msg_id:/);
    assert.deepEqual(await read(live, 1), ["before"]);
    assert.deepEqual(await read(own, 1), ["before"]);
    // n1 stopped until its lease lapsed and another node serves the topic.
    Deno.kill(n1.pid, "SIGSTOP");
    let stopped = true;
    try {
      const next = await leaderOf([n2, n3], T, 30_000);
      assert.match(await publishRetry(n3, T, "new"), /^OK msg_id:/);
      // A PUB waiting in n1's socket as it wakes up, its route cached as "here".
      await pub.pub(T, "stale");
      Deno.kill(n1.pid, "SIGCONT");
      stopped = false;
      const answer = await pub.line(20_000);
      assert.match(answer, /^(OK msg_id:|ERR (NOT_LEADER|UNAVAILABLE) )/);
      // The replay on n1 itself is closed: its client goes to the new leader.
      for (let i = 0;; i++) {
        assert.ok(i < 100, "bounded");
        const f = await own.frame(15_000);
        if (f.line.startsWith("ERR")) {
          assert.match(f.line, /^ERR LEADER_CHANGED /);
          break;
        }
      }
      // The new leader's log: "stale" only if it was answered OK (then stored there).
      const stale = answer.startsWith("OK") ? ["stale"] : [];
      const replay = await command(next, `SUB ${T} sub_id:x start:first`, clients);
      const log = await readAll(replay, ["before", "new", ...stale]);
      assert.deepEqual(log, ["before", "new", ...stale]);
      // The live subscriber got what was answered OK, and nothing that was refused.
      const got = await readAll(live, ["new", ...stale]);
      assert.deepEqual(got, ["new", ...stale]);
    } finally {
      if (stopped) Deno.kill(n1.pid, "SIGCONT");
    }
  },
);

declaredTest(
  "declared topics: a binding gets one copy of each message published to a declared topic",
  { ttl: 30, at: 0 },
  async (nodes, clients) => {
    const [, n2, n3] = nodes;
    // Bound on n3; published through n2 to n1, the topic's leader, where the binding applies.
    await command(n3, `BIND ${T} queue:bound`, clients);
    const sent = bodies("b", 10);
    for (const r of await publishAll(n2, T, sent)) assert.match(r, /^OK msg_id:/);
    const got = await consume(n3, "queue:bound", {
      ack: () => true,
      done: (seen) => sent.every((b) => seen.has(b)),
      idleMs: 15_000,
    });
    assert.deepEqual([...got.delivered].sort(), [...sent].sort(), "each once");
    assert.deepEqual(got.acked.sort(), [...sent].sort());
  },
);

/** A user name of 256 three-byte characters: its `durable_user` takes 2304 bytes on the wire. */
const LONG_USER = "€".repeat(256);

Deno.test({
  name: "declared topics with users: a user's durable made through a node that does not lead " +
    "the topic is kept at the leader under its user; two users' durables of one name stay apart",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const may = { allow: [T] };
    const password = await hashPassword(SECRETS.alicePass, CHEAP);
    const users = await writeUsers(
      ["alice", "bob", LONG_USER].map((user) => ({
        user,
        password,
        permissions: { publish: may, subscribe: may },
      })),
    );
    const secret = await writeClusterSecret(crypto.randomUUID() + crypto.randomUUID());
    const auth = { authorization: `Bearer ${SECRETS.token}` };
    const view = async (n: Node): Promise<ClusterStats> =>
      await (await fetch(`http://127.0.0.1:${n.httpPort}/api/cluster`, { headers: auth })).json();
    try {
      await withCluster(async (etcd, nodes, clients) => {
        const extra = ["--cluster-lease-ttl", "30", "--users", users, "--auth-token"]
          .concat([SECRETS.token, "--cluster-secret-file", secret]);
        await startNodes(etcd.url, ["n1", "n2", "n3"], extra, nodes);
        const [n1, n2, n3] = nodes;
        /** A connection to `n` as `who` (a user, or the token holder). */
        const login = async (n: Node, who: string) => {
          const c = await RawClient.connect(n.port);
          clients.push(c);
          await c.line(5000); // INFO
          const creds = who === "token"
            ? { auth_token: SECRETS.token }
            : { user: who, pass: SECRETS.alicePass };
          await c.send(`CONNECT ${JSON.stringify(creds)}\r\n`);
          assert.equal(await c.line(5000), "OK");
          return c;
        };
        /** Sends `line` until it is answered OK (retrying refusals made before anything). */
        const untilOk = async (c: RawClient, line: string) => {
          for (let attempt = 1;; attempt++) {
            await c.send(`${line}\r\n`);
            const answer = await c.line(15_000);
            if (answer.startsWith("OK")) return;
            assert.ok(RETRYABLE.test(answer) && attempt < 50, `${line}: ${answer}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        const admin = await login(n1, "token");
        await untilOk(admin, `DECLARE ${T} retain_messages:1000`);
        // n2 and n3 route the topic to n1 once their watch has the declaration.
        for (const n of [n2, n3]) {
          const deadline = Date.now() + 15_000;
          for (;;) {
            const v = await view(n);
            if (v.leaders.some((l) => l.queue === T && l.node === "n1")) break;
            assert.ok(Date.now() < deadline, `${n.id} sees n1 lead ${T}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        const sent = bodies("m", 10);
        for (const b of sent) await untilOk(admin, `PUB ${T} ${b.length}\r\n${b}`);

        const durableSub = `SUB ${T} sub_id:d durable:billing start:first prefetch:100`;
        // alice's durable on n2 (forwarded to n1): the first 5 acked.
        const alice = await login(n2, "alice");
        await untilOk(alice, durableSub);
        const ids = new Map<string, string>();
        assert.deepEqual(await read(alice, 10, ids), sent);
        for (const b of sent.slice(0, 5)) {
          await alice.send(`ACK msg_id:${ids.get(b)}\r\n`);
          assert.equal(await alice.line(15_000), "OK", `ACK of ${b}`);
        }
        // bob's durable of the same name on n3, while alice's is in use: another durable.
        const bob = await login(n3, "bob");
        await untilOk(bob, durableSub);
        assert.deepEqual(await read(bob, 10), sent);
        // The leader keeps both, each under its user.
        const res = await fetch(`http://127.0.0.1:${n1.httpPort}/api/topics?q=${T}`, {
          headers: auth,
        });
        const topics = await res.json() as {
          list: { name: string; durables: { name: string }[] }[];
        };
        const names = topics.list.find((t) => t.name === T)!.durables.map((d) => d.name).sort();
        assert.deepEqual(names, ["alice/billing", "bob/billing"]);
        // alice again, on n3: her durable resumes after her last ACK.
        await alice.close();
        const again = await login(n3, "alice");
        const deadline = Date.now() + 15_000;
        for (;;) {
          await again.send(`${durableSub}\r\n`);
          const answer = await again.line(15_000);
          if (answer.startsWith("OK")) break;
          // Her first connection's subscription is let go at n1 a moment after it closed.
          assert.match(answer, /^ERR (DURABLE_IN_USE|UNAVAILABLE|NOT_LEADER)/);
          assert.ok(Date.now() < deadline, answer);
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(await read(again, 5), sent.slice(5));
        await nothingMore(again);
        // A user whose name makes the forwarded line too long for the leader: refused on the
        // front node (the same SUB on the leader itself is made), the connection goes on.
        const filter = `filter:"x = '${'\\"'.repeat(1000)}'"`;
        const long = `SUB ${T} sub_id:f durable:${"d".repeat(256)} start:first ${filter}`;
        const front = await login(n2, LONG_USER);
        await front.send(`${long}\r\n`);
        assert.match(await front.line(5000), /^ERR BAD_ARGUMENT .*over 4096 bytes/);
        await nothingMore(front);
        await untilOk(await login(n1, LONG_USER), long);
        // The option that names the user is a cluster node's: a client sending it is refused.
        for (const n of [n1, n2]) {
          const mallory = await login(n, "bob");
          await mallory.send(`SUB ${T} sub_id:x durable:billing durable_user:alice\r\n`);
          assert.match(await mallory.line(5000), /^ERR BAD_ARGUMENT .*durable_user/);
          await nothingMore(mallory);
        }
      });
    } finally {
      await Deno.remove(users);
      await Deno.remove(secret);
    }
  },
});
