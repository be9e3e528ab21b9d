/**
 * Membership and queue leadership with three broker processes and a real
 * etcd: the nodes see each other, one node leads a queue with an epoch, a
 * SIGKILLed leader's lease lapses and a node that holds the queue (its replica) takes it
 * with a larger epoch; a clean stop leaves at once; `relayr cluster status`
 * and the metrics say the same; bad starts are one line and exit 2.
 */
import assert from "node:assert/strict";
import { relayr } from "../client_helpers.ts";
import { createHandler } from "../../src/http/mod.ts";
import { startTestBroker } from "../helpers.ts";
import { parseExposition, value } from "../prometheus.ts";
import { Etcd, ETCD_MISSING, freePort } from "./etcd.ts";
import {
  clusterOf,
  leaderIn,
  type Node,
  publishOn,
  startNode,
  untilView,
} from "./cluster_helpers.ts";

// Two replicas of each queue: one node of three holds no copy, and so claims nothing.
const TTL = ["--cluster-lease-ttl", "1", "--replicas", "2"];

Deno.test({
  name: "cluster: 3 nodes, members, leader per queue with epochs, failover on SIGKILL",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    try {
      for (const id of ["n1", "n2", "n3"]) {
        nodes.push(await startNode(etcd.url, id, TTL));
      }
      const [n1] = nodes;
      const all = await untilView(nodes[2], (c) => c.members.length === 3, "3 members");
      assert.deepEqual(all.members.map((m) => [m.id, m.self]), [
        ["n1", false],
        ["n2", false],
        ["n3", true],
      ]);
      // The advertised address defaults to the bound --cluster-listen port.
      for (const m of all.members) assert.match(m.advertise, /^127\.0\.0\.1:[1-9][0-9]*$/);
      assert.equal(all.etcd_reachable, true);

      // n1 holds queue:jobs first: it leads it, and picks a replica (n2) that holds it too
      // and sees n1 lead; the third node (n3) holds no copy.
      await publishOn(n1, "queue:jobs", "one");
      const v1 = await untilView(
        n1,
        (c) =>
          leaderIn(c, "queue:jobs")?.node === "n1" &&
          c.replication?.queues[0]?.role === "leader",
        "n1 to lead jobs",
      );
      const epoch1 = leaderIn(v1, "queue:jobs")!.epoch;
      const replica = v1.replication!.queues[0].replicas[1];
      const n2 = nodes.find((n) => n.id === replica)!;
      const n3 = nodes.find((n) => n !== n1 && n !== n2)!;
      await publishOn(n1, "queue:jobs", "two");
      const v2 = await untilView(
        n2,
        (c) => leaderIn(c, "queue:jobs") !== undefined && c.replication?.queues[0]?.messages === 2,
        `${n2.id} to see a leader and hold a copy`,
      );
      assert.deepEqual(leaderIn(v2, "queue:jobs"), {
        queue: "queue:jobs",
        node: "n1",
        epoch: epoch1,
      });
      assert.equal(v1.leading, 1);
      assert.equal(v1.elections_won, 1);

      // n1 dies without a word: its lease lapses, it leaves, n2 takes jobs with a larger epoch.
      assert.equal((await n1.stop("SIGKILL")).signal, "SIGKILL");
      const v3 = await untilView(
        n2,
        // Its own claim's answer (elections_won) can come after its watch showed the new key.
        (c) =>
          c.members.length === 2 && leaderIn(c, "queue:jobs")?.node === n2.id &&
          c.elections_won === 1,
        `${n2.id} to lead jobs after n1's lease lapsed`,
      );
      assert.ok(leaderIn(v3, "queue:jobs")!.epoch > epoch1, "a later leader, a larger epoch");
      assert.equal(v3.elections_won, 1);
      // The third node holds no copy of queue:jobs: it claims nothing, and sees the same leader.
      const v3b = await untilView(
        n3,
        (c) => leaderIn(c, "queue:jobs")?.node === n2.id,
        "n3's view",
      );
      assert.equal(v3b.elections_won, 0);
      assert.ok(v3b.leader_changes >= 2, "n3 saw both elections");

      // The metrics and the CLI say the same as /api/cluster.
      const scrape = await (await fetch(`http://127.0.0.1:${n2.httpPort}/metrics`)).text();
      const families = parseExposition(scrape);
      assert.equal(value(families, "relayr_cluster_members"), 2);
      assert.equal(value(families, "relayr_cluster_leaders"), 1);
      assert.equal(value(families, "relayr_cluster_leading"), 1);
      assert.equal(value(families, "relayr_cluster_elections_won_total"), 1);
      assert.equal(value(families, "relayr_cluster_etcd_reachable"), 1);
      const r = await relayr([
        "cluster",
        "status",
        "--http",
        `127.0.0.1:${n2.httpPort}`,
        "--compact",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const status = JSON.parse(r.stdout);
      const paged =
        await (await fetch(`http://127.0.0.1:${n2.httpPort}/api/cluster?limit=1&offset=1`))
          .json();
      assert.deepEqual([paged.leaders, paged.leaders_total], [[], 1]);
      const bad = await fetch(`http://127.0.0.1:${n2.httpPort}/api/cluster?limit=x`);
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
      assert.equal(status.node_id, n2.id);
      assert.deepEqual(
        status.leaders.map((l: { queue: string; node: string }) => [l.queue, l.node]),
        [
          ["queue:jobs", n2.id],
        ],
      );

      // A clean stop revokes the lease: n3 sees n2 leave, and jobs without a leader.
      const t0 = Date.now();
      await n2.stop();
      await untilView(
        n3,
        (c) => c.members.length === 1 && leaderIn(c, "queue:jobs") === undefined,
        "n2 gone",
      );
      assert.ok(Date.now() - t0 < 5_000);
    } finally {
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
    }
  },
});

Deno.test("cluster: a single node (no --cluster-etcd) has no /api/cluster and no cluster metrics", async () => {
  const b = await startTestBroker();
  try {
    const handler = createHandler(b.server);
    const res = await handler(new Request("http://x/api/cluster"));
    assert.equal(res.status, 404);
    assert.match((await res.json()).error, /^not clustered/);
    const scrape = await (await handler(new Request("http://x/metrics"))).text();
    assert.doesNotMatch(scrape, /relayr_cluster_/);
    assert.equal(b.cluster, undefined);
  } finally {
    await b.stop();
  }
});

Deno.test({
  name: "cluster: start-up refusals are one line and exit 2",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const serve = (args: string[]) =>
      relayr(["serve", "--memory", "--port", "0", "--no-http", "--no-grpc", ...args]);
    const down = `http://127.0.0.1:${freePort()}`;
    const link = ["--cluster-listen", "127.0.0.1:0"];
    let r = await serve(["--cluster-etcd", down, "--node-id", "n1", ...link]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^relayr: cluster: cannot reach etcd at ${down}: .+\\n$`));

    r = await serve(["--cluster-etcd", down]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "relayr: --cluster-etcd needs --node-id\n");
    r = await serve(["--node-id", "n1"]);
    assert.equal(r.stderr, "relayr: --node-id and --cluster-listen need --cluster-etcd\n");
    r = await serve(["--cluster-etcd", down, "--node-id", "n1"]);
    assert.equal(r.stderr, "relayr: --cluster-etcd needs --cluster-listen host:port\n");
    r = await serve([
      "--cluster-etcd",
      down,
      "--node-id",
      "n1",
      "--cluster-listen",
      "0.0.0.0:7101",
    ]);
    assert.match(
      r.stderr,
      /^relayr: --cluster-listen 0\.0\.0\.0:7101 is not an address .+--cluster-advertise\n$/,
    );
    r = await serve(["--cluster-etcd", down, "--node-id", "n1", "--cluster-listen", "nope"]);
    assert.match(r.stderr, /^relayr: --cluster-listen must be host:port/);
    r = await serve(["--cluster-etcd", "127.0.0.1:2379", "--node-id", "n1", ...link]);
    assert.match(r.stderr, /^relayr: --cluster-etcd must be an http:\/\/host:port URL/);
    r = await serve(["--cluster-etcd", down, "--node-id", "n 1", ...link]);
    assert.match(r.stderr, /^relayr: --node-id must be 1-64 letters/);

    const etcd = await Etcd.start();
    let n1: Node | undefined;
    try {
      n1 = await startNode(etcd.url, "n1");
      const taken = (await clusterOf(n1)).advertise.replaceAll(".", "\\.");
      r = await serve([
        "--cluster-etcd",
        etcd.url,
        "--node-id",
        "n1",
        "--cluster-listen",
        "127.0.0.1:0",
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `^relayr: cluster: --node-id "n1" is taken by a live node advertising ${taken}; .+\\n$`,
        ),
      );
      // The refused node left nothing behind: n1 is still the one member.
      assert.deepEqual((await clusterOf(n1)).members.map((m) => m.id), ["n1"]);
    } finally {
      await n1?.stop();
      await etcd.stop();
    }
  },
});
