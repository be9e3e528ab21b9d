/**
 * TLS on the inter-node link with real etcd, real broker processes and
 * certificates made by `openssl`: three nodes (n3 on Bun when installed) over
 * mutual TLS carry topics, forward queue commands and replicate, and a
 * kill -9 of a queue's leader loses no OK'd publish; a node whose
 * certificate comes from another CA never links (both sides count it, the
 * refusals are logged at most once a second per peer), plain TCP to the TLS
 * port is served nothing, and the node goes on serving.
 */
import assert from "node:assert/strict";
import { bunVersion } from "../child.ts";
import { tlsDial } from "../tls_helpers.ts";
import { expectLine, RawClient } from "../helpers.ts";
import { parseExposition, value } from "../prometheus.ts";
import { splitHostPort } from "../../src/cluster/mod.ts";
import { Etcd, ETCD_MISSING } from "./etcd.ts";
import {
  clusterOf,
  leadThenShare,
  type Node,
  publishOn,
  startNode,
  untilView,
  writeClusterSecret,
} from "./cluster_helpers.ts";
import { linkTlsArgs, makeLinkCerts } from "./link_tls_certs.ts";
import { consume, leaderOf, publishAll, publishRetry } from "./repl_helpers.ts";

const decoder = new TextDecoder();

Deno.test({
  name: "cluster link TLS: 3 nodes over mutual TLS carry topics, forward and replicate through " +
    "a kill -9 of the leader; another CA's node and plain TCP are refused, counted, rate-logged",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const certs = await makeLinkCerts();
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const clients: RawClient[] = [];
    try {
      const ttl = ["--cluster-lease-ttl", "1"];
      nodes.push(await startNode(etcd.url, "n1", [...ttl, ...linkTlsArgs(certs, 1)]));
      nodes.push(await startNode(etcd.url, "n2", [...ttl, ...linkTlsArgs(certs, 2)]));
      // n3 on Bun when it is installed: Bun's TLS listener and node:tls dialler.
      const bun = (await bunVersion()) !== undefined;
      nodes.push(await startNode(etcd.url, "n3", [...ttl, ...linkTlsArgs(certs, 3)], bun));
      const [n1, n2, n3] = nodes;
      for (const n of nodes) {
        await untilView(
          n,
          (c) => c.link_tls && c.links.length === 2 && c.links.every((l) => l.out && l.in),
          `${n.id} links over TLS`,
        );
        assert.doesNotMatch(n.output(), /the cluster port is open/);
      }

      // Topics across the TLS links, both ways through the Bun node.
      const sub1 = await RawClient.connect(n1.port);
      clients.push(sub1);
      await expectLine(sub1, "SUB topic:news sub_id:s", "OK", 5000);
      await untilView(n3, (c) => c.links.find((l) => l.node === "n1")?.patterns === 1, "interest");
      await publishOn(n3, "topic:news", "from-n3");
      assert.equal(decoder.decode((await sub1.msgs(1, 10_000))[0].payload), "from-n3");

      // Forwarded queue commands: n2's PUB and n3's SUB go to n1 (PROXY), n2 copies (REPL).
      await leadThenShare(n1, n2, "queue:orders");
      const got = await consume(n3, "queue:orders", {
        ack: () => true,
        done: (seen) => seen.has("first") && seen.has("second"),
      });
      assert.deepEqual(got.delivered.sort(), ["first", "second"]);
      assert.ok((await clusterOf(n2)).forwarded_commands >= 1);
      assert.ok((await clusterOf(n3)).forwarded_commands >= 1);

      // Replication: 100 publishes OK'd by the leader, which is then killed -9.
      const Q = "queue:jobs";
      await publishRetry(n1, Q, "first");
      const leader = await leaderOf(nodes, Q);
      const batch = Array.from({ length: 100 }, (_, i) => `m-${i}`);
      for (const [i, r] of (await publishAll(leader, Q, batch)).entries()) {
        assert.match(r, /^OK msg_id:/, batch[i]);
      }
      // No handshake failed so far (after the kill, one caught half-way may).
      for (const n of nodes) {
        const v = await clusterOf(n);
        assert.equal(v.tls_failures, 0, n.id);
        assert.equal(v.tls_dial_failures, 0, n.id);
      }
      await leader.stop("SIGKILL");
      const left = nodes.filter((n) => n !== leader);
      nodes.splice(nodes.indexOf(leader), 1);
      const next = await leaderOf(left, Q, 30_000);
      const all = await consume(next, Q, {
        ack: () => true,
        done: (seen) => seen.has("first") && batch.every((b) => seen.has(b)),
      });
      const delivered = new Set(all.delivered);
      for (const b of ["first", ...batch]) assert.ok(delivered.has(b), `OK'd ${b} delivered`);
      const [a, b] = left;

      // A node with a certificate from another CA, which trusts ours (its bundle has both CAs):
      // we refuse its certificate both ways; its dials end at our "TLS OK" that never comes,
      // so its links never come up (no up-and-down loop) and it says why.
      const foreign = await startNode(etcd.url, "n9", [
        ...["--cluster-tls-cert", certs.foreign.cert, "--cluster-tls-key", certs.foreign.key],
        ...["--cluster-tls-ca", certs.foreign.caBoth],
      ]);
      nodes.push(foreign);
      await untilView(foreign, (c) => c.tls_dial_failures >= 2, "n9's dials refused");
      await untilView(a, (c) => c.tls_failures >= 1 && c.tls_dial_failures >= 1, `${a.id} refuses`);
      await waitOutput(
        a,
        // Deno's node:tls listener reports the refused certificate as the peer's reset.
        /cluster connection from 127\.0\.0\.1:\d+ refused: TLS handshake failed: (a certificate not signed by our --cluster-tls-ca|the handshake broke off)/,
      );
      await waitOutput(
        a,
        /cannot dial n9 at 127\.0\.0\.1:\d+: TLS with 127\.0\.0\.1:\d+ failed: a certificate not signed by our --cluster-tls-ca/,
      );
      await waitOutput(
        foreign,
        /cannot dial n\d at 127\.0\.0\.1:\d+: TLS with 127\.0\.0\.1:\d+ failed: it closed the connection after the TLS handshake: it refused our certificate/,
      );
      await waitOutput(
        foreign,
        // The alert that says "unknown CA" may be lost to the dialler's reset under load: then
        // node:tls reports ECONNRESET, which we word as a broken-off handshake.
        /refused: TLS handshake failed: (the peer refused our certificate \(its --cluster-tls-ca is another\?\)|the handshake broke off)/,
      );
      assert.doesNotMatch(foreign.output(), /link to n\d at \S+ up/);
      assert.ok((await clusterOf(foreign)).links.every((l) => !l.out && !l.in));
      for (const n of left) {
        const l = (await clusterOf(n)).links.find((l) => l.node === "n9");
        assert.ok(l === undefined || (!l.out && !l.in), `${n.id}: ${JSON.stringify(l)}`);
      }
      await foreign.stop("SIGTERM");
      nodes.pop();

      // Plain TCP to a TLS cluster port: a PROXY or HELLO is served nothing, then closed; a
      // subscriber on that node gets no injected message, and the node goes on serving.
      const sub = await RawClient.connect(a.port);
      clients.push(sub);
      await expectLine(sub, "SUB topic:news sub_id:t", "OK", 5000);
      await untilView(b, (c) => c.links.find((l) => l.node === a.id)?.patterns === 1, "interest");
      const [, port] = splitHostPort((await clusterOf(a)).advertise);
      const before = (await clusterOf(a)).tls_failures;
      const t0 = Date.now();
      const plain = [
        "PROXY n2\r\nPUB queue:orders 1\r\nx\r\nPING\r\n",
        "HELLO n2\r\nMSG topic:news 0 8\r\ninjected\r\n",
      ];
      // Until a plain one is logged (n9's refusals, from the same host, took this second's line).
      let sent = 0;
      const notTls = () =>
        a.output().split("\n").filter((l) => /TLS handshake failed: not TLS/.test(l));
      while (sent < 20 || (notTls().length === 0 && sent < 100)) {
        const answer = await plainExchange(port, plain[sent % 2]);
        assert.doesNotMatch(answer, /PONG|OK|AUTH|injected/, `plain connection ${sent} was served`);
        if (++sent >= 20) await new Promise((r) => setTimeout(r, 100)); // into the next second
      }
      const v = await untilView(
        a,
        (c) => c.tls_failures >= before + sent,
        "plain refusals counted",
      );
      const seconds = (Date.now() - t0) / 1000;
      // At most one line a second per peer host, saying how many were refused since the last.
      const lines = a.output().split("\n").filter((l) => /refused: TLS handshake failed/.test(l));
      assert.ok(notTls().length >= 1, lines.join("\n"));
      assert.ok(lines.some((l) => /refusals from 127\.0\.0\.1 since the last log/.test(l)));
      assert.ok(notTls().length <= Math.ceil(seconds) + 1, `${notTls().length} in ${seconds} s`);
      const metrics = parseExposition(
        await (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text(),
      );
      assert.ok(value(metrics, "relayr_cluster_tls_failures_total")! >= v.tls_failures);

      await publishOn(b, "topic:news", "after-the-refusals");
      assert.equal(decoder.decode((await sub.msgs(1, 10_000))[0].payload), "after-the-refusals");
      for (const n of nodes) assert.doesNotMatch(n.output(), /PRIVATE KEY|BEGIN CERT/, n.id);
    } finally {
      for (const c of clients) await c.close();
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
      certs.remove();
    }
  },
});

/** Sends `text` on a plain TCP connection and reads what comes back until the server closes it (bounded). */
async function plainExchange(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 10_000);
  let out = "";
  try {
    await conn.write(new TextEncoder().encode(text));
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      out += decoder.decode(buf.subarray(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  return out;
}

/** Waits (bounded) until the node's output matches `re`. */
async function waitOutput(n: Node, re: RegExp): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!re.test(n.output())) {
    if (Date.now() > deadline) throw new Error(`${n.id} never logged ${re}:\n${n.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name: "cluster link TLS with a cluster secret and a shared server name: the HMAC handshake " +
    "runs inside TLS, and a node with a good certificate but another secret is refused",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const certs = await makeLinkCerts(0);
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const secret = "same-secret-" + crypto.randomUUID() + crypto.randomUUID();
    const files = [await writeClusterSecret(secret), await writeClusterSecret(secret + "-other")];
    try {
      // A certificate naming only DNS:elsewhere.example, not the 127.0.0.1 dialled: the
      // link comes up only if dials check the shared name instead.
      const { cert, key } = certs.misnamed;
      const args = (file: string) => [
        ...["--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", certs.ca],
        ...["--cluster-tls-server-name", "elsewhere.example", "--cluster-secret-file", file],
      ];
      nodes.push(await startNode(etcd.url, "n1", args(files[0])));
      // n2 on Bun when it is installed: its node:tls dialler checks the name, its handshake
      // reads a web stream behind the TLS greeting.
      const bun = (await bunVersion()) !== undefined;
      nodes.push(await startNode(etcd.url, "n2", args(files[0]), bun));
      const [n1, n2] = nodes;
      for (const n of nodes) {
        await untilView(
          n,
          (c) =>
            c.link_tls && c.link_authenticated && c.links.length === 1 &&
            c.links.every((l) => l.out && l.in),
          `${n.id} links over TLS with the secret`,
        );
      }
      const sub = await RawClient.connect(n1.port);
      try {
        await expectLine(sub, "SUB topic:news sub_id:s", "OK", 5000);
        await untilView(n2, (c) => c.links[0]?.patterns === 1, "interest");
        await publishOn(n2, "topic:news", "inside-both");
        assert.equal(decoder.decode((await sub.msgs(1, 10_000))[0].payload), "inside-both");
      } finally {
        await sub.close();
      }
      // A good certificate does not make up for another secret (deny wins), nor the reverse.
      const n3 = await startNode(etcd.url, "n3", args(files[1]));
      nodes.push(n3);
      await untilView(n3, (c) => c.auth_dial_failures >= 2, "n3's handshakes refused");
      await untilView(n1, (c) => c.auth_failures >= 1, "n1 refuses n3's proof");
      const v1 = await clusterOf(n1);
      assert.equal(v1.tls_failures, 0, "TLS itself was fine");
      const l = v1.links.find((l) => l.node === "n3");
      assert.ok(l === undefined || (!l.out && !l.in), JSON.stringify(l));
      for (const n of nodes) assert.ok(!n.output().includes(secret), `${n.id} logs the secret`);
    } finally {
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
      certs.remove();
      for (const f of files) await Deno.remove(f);
    }
  },
});

Deno.test({
  name: "cluster link TLS: SIGHUP puts a new certificate in force for new connections; " +
    "a bad one is refused and the old stays",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const certs = await makeLinkCerts(2);
    const etcd = await Etcd.start();
    const nodes: Node[] = [];
    const live = { cert: `${certs.dir}/live.pem`, key: `${certs.dir}/live.key` };
    const put = async (from: { cert: string; key: string }) => {
      await Deno.copyFile(from.cert, live.cert);
      await Deno.copyFile(from.key, live.key);
    };
    // A peer's view of the port: the listener's certificate, and its first line.
    const peer = async (port: number) => {
      const c = await tlsDial(port, { ca: certs.ca, ...certs.node(2) });
      try {
        return { cn: c.serverCn, line: await c.line(5000) };
      } finally {
        c.close();
      }
    };
    try {
      await put(certs.node(1));
      const n1 = await startNode(etcd.url, "n1", [
        ...["--cluster-tls-cert", live.cert, "--cluster-tls-key", live.key],
        ...["--cluster-tls-ca", certs.ca],
      ]);
      nodes.push(n1);
      const [, port] = splitHostPort((await clusterOf(n1)).advertise);
      assert.deepEqual(await peer(port), { cn: "n1", line: "TLS OK" });
      await put(certs.node(2));
      Deno.kill(n1.pid, "SIGHUP");
      await waitOutput(n1, /SIGHUP: TLS certificate reloaded/);
      assert.deepEqual(await peer(port), { cn: "n2", line: "TLS OK" });
      // A key of another certificate: refused, said, and the one in force stays.
      await Deno.copyFile(certs.node(1).key, live.key);
      Deno.kill(n1.pid, "SIGHUP");
      await waitOutput(
        n1,
        /SIGHUP: TLS reload failed, the old certificate stays: --cluster-tls-key ".*live\.key" does not belong/,
      );
      assert.deepEqual(await peer(port), { cn: "n2", line: "TLS OK" });
    } finally {
      for (const n of nodes) await n.stop("SIGKILL");
      await etcd.stop();
      certs.remove();
    }
  },
});
