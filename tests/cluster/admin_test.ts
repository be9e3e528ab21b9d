/**
 * The admin HTTP API in a cluster (docs/CLUSTERING.md, "The admin API in a
 * cluster"), with a real etcd and real broker processes: an action on a
 * queue or a declared topic runs only on the node that serves it. On a
 * follower a purge, a peek, a delete or a replay is refused `421 NOT_LEADER`
 * naming the leader, and the leader's queue is left as it was (before, the
 * follower acted on its own view: here `404`, elsewhere a success on a stale
 * copy); at the leader it acts, and the follower's copy follows. After the
 * leader is SIGKILLed, the node that takes the queue over recovers its copy
 * and purges what the old leader held, and the other node names it. A queue
 * nobody leads is claimed by the node the call reached.
 */
import assert from "node:assert/strict";
import { relayr } from "../client_helpers.ts";
import { ownStderr, RawClient } from "../helpers.ts";
import { clusterOf, leaderIn, leadThenShare, startNodes, untilView } from "./cluster_helpers.ts";
import { ETCD_MISSING } from "./etcd.ts";
import { answerRetry, leaderOf, replOf, withCluster } from "./repl_helpers.ts";

const Q = "queue:admin-jobs";
const T = "topic:admin-log";

/** An admin call on the node's HTTP port: its status and JSON body. */
async function call(
  node: { httpPort: number },
  method: string,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}${path}`, { method });
  return { status: res.status, body: await res.json() };
}

/** Calls until the answer is not one `skip` passes (`503`: a leader recovering, or between leaders), bounded. */
async function callServed(
  node: { httpPort: number },
  method: string,
  path: string,
  skip: (r: { status: number; body: Record<string, unknown> }) => boolean = (r) => r.status === 503,
  timeoutMs = 20_000,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await call(node, method, path);
    if (!skip(r) || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

Deno.test({
  name: "cluster admin API: actions on a follower are refused 421 naming the leader and leave " +
    "its queue as it was; at the leader they act; after kill -9 the follower takes over and purges",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      // Three nodes: after the leader's death the two left are a majority of its replicas.
      const [n1, n2, n3] = await startNodes(
        etcd.url,
        ["n1", "n2", "n3"],
        ["--cluster-lease-ttl", "1"],
        nodes,
      );
      await untilView(n1, (c) => c.members.length === 3, "three members");
      await leadThenShare(n1, n2, Q);
      const q = encodeURIComponent(Q);

      for (
        const [method, path] of [
          ["POST", `/api/queues/${q}/purge`],
          ["GET", `/api/queues/${q}/peek?n=5`],
          ["DELETE", `/api/queues/${q}`],
          ["POST", `/api/queues/${q}/replay-dlq`],
        ]
      ) {
        const r = await call(n2, method, path);
        assert.equal(r.status, 421, `${method} ${path} on n2: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, "NOT_LEADER");
        assert.equal(r.body.leader, "n1");
        assert.match(String(r.body.error), /led by node n1/);
      }
      // The short name is the same queue.
      assert.equal((await call(n2, "POST", `/api/queues/admin-jobs/purge`)).status, 421);
      // The CLI (a child process) says it, and that nothing was done.
      const cli = await relayr(["queue", "purge", Q, "--http", `127.0.0.1:${n2.httpPort}`]);
      assert.equal(cli.code, 1, cli.stderr);
      assert.match(
        ownStderr(cli.stderr),
        /^relayr queue purge: queue:admin-jobs is led by node n1: send this to its HTTP port/,
      );
      // Nothing happened at the leader.
      const peek = await call(n1, "GET", `/api/queues/${q}/peek?n=5`);
      assert.equal(peek.status, 200);
      assert.equal((peek.body.messages as unknown[]).length, 2);

      // At the leader it acts, and the follower's copy follows.
      const purged = await call(n1, "POST", `/api/queues/${q}/purge`);
      assert.deepEqual([purged.status, purged.body.purged], [200, 2]);
      await untilView(
        n2,
        (c) => c.replication?.queues.some((r) => r.queue === Q && r.messages === 0) ?? false,
        "n2's copy to be purged too",
      );

      // Two more messages, held by both; the leader dies.
      for (const body of ["a", "b"]) {
        assert.match(await answerRetry(n1, `PUB ${Q} ${body.length}\r\n${body}`), /^OK/);
      }
      await untilView(
        n2,
        (c) => c.replication?.queues.some((r) => r.queue === Q && r.messages === 2) ?? false,
        "n2 to hold the two",
      );
      await n1.stop("SIGKILL");
      // n2 or n3 claims the queue once n1's key lapsed, recovers its copy and serves it: there
      // the purge removes the two; the other node names it (while n1's key lives, n1).
      const next = await leaderOf([n2, n3], Q);
      const other = next === n2 ? n3 : n2;
      const gone = (r: { status: number; body: Record<string, unknown> }) =>
        r.status === 503 || (r.status === 421 && r.body.leader === "n1");
      const named = await callServed(other, "POST", `/api/queues/${q}/purge`, gone);
      assert.deepEqual([named.status, named.body.leader], [421, next.id], JSON.stringify(named));
      const after = await callServed(next, "POST", `/api/queues/${q}/purge`, gone);
      assert.equal(after.status, 200, JSON.stringify(after.body));
      assert.equal(after.body.purged, 2);
      assert.equal(leaderIn(await clusterOf(next), Q)?.node, next.id);
      assert.equal((await replOf(next, Q))?.messages, 0);
    }),
});

Deno.test({
  name: "cluster admin API: a queue nobody leads is claimed by the node called; a declared " +
    "topic's durable is deleted only at the topic's leader",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const [n1, n2] = await startNodes(etcd.url, ["n1", "n2"], ["--replicas", "2"], nodes);
      await untilView(n1, (c) => c.members.length === 2, "two members");

      // Nobody leads it: n2 claims it, serves it (empty), and answers as one broker would.
      const fresh = await callServed(
        n2,
        "DELETE",
        `/api/queues/${encodeURIComponent("queue:nobody")}`,
      );
      assert.equal(fresh.status, 404, JSON.stringify(fresh.body));
      assert.equal(fresh.body.code, "NOT_FOUND");
      assert.equal(leaderIn(await clusterOf(n2), "queue:nobody")?.node, "n2");
      // A name no command could give is not claimed (nothing is written to etcd for it).
      const bad = await call(n2, "POST", `/api/queues/${encodeURIComponent("queue:a b")}/purge`);
      assert.equal(bad.status, 404, JSON.stringify(bad.body));
      assert.equal(leaderIn(await clusterOf(n2), "queue:a b"), undefined);

      // A declared topic led by n1 with a durable there.
      assert.equal(await answerRetry(n1, `DECLARE ${T} retain_messages:100`), "OK");
      const sub = await RawClient.connect(n1.port);
      try {
        await sub.send(`SUB ${T} durable:d1 start:first\r\n`);
        assert.match(await sub.line(5000), /^OK/);
      } finally {
        await sub.close();
      }
      const path = `/api/topics/${encodeURIComponent(T)}/durables/d1`;
      // Until n2's watch has the declaration it takes the topic for a plain one (404).
      const r = await callServed(n2, "DELETE", path, (r) => r.status === 404 || r.status === 503);
      assert.equal(r.status, 421, JSON.stringify(r.body));
      assert.equal(r.body.leader, "n1");
      // At n1 it goes (once its subscription has closed there: CONFLICT while it is open).
      const done = await callServed(n1, "DELETE", path, (r) => r.status === 409);
      assert.deepEqual([done.status, done.body.deleted], [200, true]);
      assert.equal((await call(n1, "DELETE", path)).status, 404);
    }),
});
