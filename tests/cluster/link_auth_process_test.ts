/**
 * The authenticated inter-node link with real etcd and real broker
 * processes: three nodes with the same cluster secret carry topics, forward
 * queue commands and replicate; a node with another secret never gets a link
 * up (both sides count it, the dialer says who refused it and keeps trying),
 * a raw `PROXY` without the handshake is served nothing and closed, a raw
 * `HELLO` injects no topic message; a node without a secret warns that its
 * port is open, one whose secret file others may read is told so. The secret is in no log line, `/api/cluster` or `/metrics`.
 * And a node with client authentication and no secret refuses to start.
 */
import assert from "node:assert/strict";
import { bunVersion } from "../child.ts";
import { parseExposition, value } from "../prometheus.ts";
import { expectLine, RawClient } from "../helpers.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  clusterOf,
  leadThenShare,
  type Node,
  publishOn,
  startNode,
  startNodes,
  untilView,
  writeClusterSecret,
} from "./cluster_helpers.ts";
import { splitHostPort } from "../../src/cluster/mod.ts";

const decoder = new TextDecoder();
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

Deno.test({
  name: "cluster link auth: same secret links, forwards and replicates; " +
    "another secret, a raw PROXY or HELLO, no secret: refused",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const clients: RawClient[] = [];
    const secret = "same-secret-" + crypto.randomUUID() + crypto.randomUUID();
    const other = "other-secret-" + crypto.randomUUID() + crypto.randomUUID();
    const files = [await writeClusterSecret(secret), await writeClusterSecret(other, 0o644)];
    const client = async (n: Node) => {
      const c = await RawClient.connect(n.port);
      clients.push(c);
      return c;
    };
    try {
      const args = ["--cluster-lease-ttl", "1", "--cluster-secret-file", files[0]];
      await startNodes(etcd.url, ["n1", "n2"], args, nodes);
      // n3 on Bun when it is installed: the handshake reads a web stream there.
      nodes.push(await startNode(etcd.url, "n3", args, (await bunVersion()) !== undefined));
      const [n1, n2, n3] = nodes;
      for (const n of nodes) {
        await untilView(
          n,
          (c) =>
            c.link_authenticated && c.links.length === 2 && c.links.every((l) => l.out && l.in),
          `${n.id} links`,
        );
      }
      // Topics across the authenticated links.
      const sub1 = await client(n1);
      await expectLine(sub1, "SUB topic:news sub_id:s", "OK", 5000);
      await untilView(n3, (c) => c.links.find((l) => l.node === "n1")?.patterns === 1, "interest");
      await publishOn(n3, "topic:news", "from-n3");
      const [m] = await sub1.msgs(1, 10_000);
      assert.equal(decoder.decode(m.payload), "from-n3");
      // Forwarded queue commands (n2 to n1, PROXY) and replication (n1 to n2, REPL).
      await leadThenShare(n1, n2, "queue:orders");
      assert.ok((await clusterOf(n2)).forwarded_commands >= 1);
      for (const n of nodes) assert.equal((await clusterOf(n)).auth_failures, 0, n.id);

      // A node with another secret: its dials are refused, and it keeps trying.
      const n4 = await startNode(etcd.url, "n4", ["--cluster-secret-file", files[1]]);
      nodes.push(n4);
      await untilView(n4, (c) => c.members.length === 4 && c.auth_dial_failures >= 6, "redials");
      assert.match(n4.output(), /cluster secret file ".+" is readable by others \(mode 0644\)/);
      assert.doesNotMatch(n1.output(), /readable by others/);
      await untilView(n1, (c) => c.auth_failures >= 2, "n1 refuses n4");
      await waitOutput(
        n4,
        /cannot dial n\d at [^:]+:\d+: node n\d at \S+ refused us: our cluster secrets differ; retrying/,
      );
      await waitOutput(
        n1,
        /cluster connection from 127\.0\.0\.1:\d+ refused: node n4's proof does not match/,
      );
      for (const n of [n1, n2, n3]) {
        const v = await clusterOf(n);
        const l = v.links.find((l) => l.node === "n4");
        assert.ok(l === undefined || (!l.out && !l.in), `${n.id}: ${JSON.stringify(l)}`);
      }
      assert.ok((await clusterOf(n4)).links.every((l) => !l.out && !l.in));

      // A raw PROXY without the handshake: the challenge, then closed; nothing served.
      const [host, port] = splitHostPort((await clusterOf(n1)).advertise);
      assert.equal(host, "127.0.0.1");
      const proxy = await RawClient.connect(port);
      clients.push(proxy);
      await proxy.send("PROXY n2\r\nPUB queue:orders 1\r\nx\r\nPING\r\n");
      assert.match(await proxy.line(5000), /^AUTH n1 [A-Za-z0-9_-]{43}$/);
      await assert.rejects(proxy.line(5000));
      assert.ok(await proxy.closedByServer(5000));
      // A raw HELLO: its MSG is never delivered; the next message n1's subscriber gets is n2's.
      const hello = await RawClient.connect(port);
      clients.push(hello);
      await hello.send("HELLO n2\r\nMSG topic:news 0 8\r\ninjected\r\n");
      assert.match(await hello.line(5000), /^AUTH n1 /);
      assert.ok(await hello.closedByServer(5000));
      await publishOn(n2, "topic:news", "from-n2");
      const [next] = await sub1.msgs(1, 10_000);
      assert.equal(decoder.decode(next.payload), "from-n2");

      // A node without any secret (and no client auth): starts, warns; its HELLO is refused.
      const before = (await clusterOf(n1)).auth_failures;
      const n5 = await startNode(etcd.url, "n5", ["--cluster-lease-ttl", "1"]);
      nodes.push(n5);
      assert.match(n5.output(), /the cluster port is open to anyone who can reach it/);
      await untilView(n1, (c) => c.auth_failures > before, "n1 refuses n5");

      // The secret in no log line, /api/cluster or /metrics; the failures counted there.
      for (const n of nodes) {
        const api = JSON.stringify(await clusterOf(n));
        const metrics = await (await fetch(`http://127.0.0.1:${n.httpPort}/metrics`)).text();
        for (const text of [n.output(), api, metrics]) {
          assert.ok(!text.includes(secret) && !text.includes(other), `${n.id} leaks the secret`);
          assert.ok(!text.includes(secret.slice(12, 30)), `${n.id} leaks part of the secret`);
        }
        if (n === n1) {
          const failures = value(parseExposition(metrics), "relayr_cluster_auth_failures_total");
          assert.ok(failures !== undefined && failures >= 4, String(failures));
        }
      }
    } finally {
      for (const c of clients) await c.close();
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
      for (const f of files) await Deno.remove(f);
    }
  },
});

/** Waits (bounded) until the node's output matches `re`. */
async function waitOutput(n: Node, re: RegExp): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!re.test(n.output())) {
    if (Date.now() > deadline) throw new Error(`${n.id} never logged ${re}:\n${n.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("a node with client auth in a cluster without a cluster secret refuses to start", async () => {
  const users = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(users, JSON.stringify({ users: [] }));
  try {
    for (const auth of [["--auth-token", "tok-123"], ["--users", users]]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "serve", "--memory", "--host", "127.0.0.1", "--port", "0"].concat(
          ["--http-port", "0", "--no-grpc", "--cluster-etcd", "http://127.0.0.1:9"],
          ["--node-id", "n1", "--cluster-listen", "127.0.0.1:0", ...auth],
        ),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const err = decoder.decode(out.stderr).trim();
      assert.equal(out.code, 2, err);
      assert.equal(err.split("\n").length, 1, err);
      assert.match(err, /set --cluster-secret-file <file> \(or RELAYR_CLUSTER_SECRET\)/);
      assert.doesNotMatch(decoder.decode(out.stdout), /listening/);
    }
  } finally {
    await Deno.remove(users);
  }
});
