/**
 * The inter-node handshake (src/cluster/link_auth.ts) over real TCP in one
 * process: two nodes with the same secret get through to the first line
 * (bytes behind it kept); a different secret is refused on both sides, each
 * saying why; a dialer without the handshake, a first line naming another
 * node and an over-long line are refused; refusals are counted and logged at
 * most once a second per host; no message carries the secret. And the secret's
 * configuration: file or `RELAYR_CLUSTER_SECRET`, too short or both refused.
 */
import assert from "node:assert/strict";
import { ClusterAuthError, LinkAuth } from "../../src/cluster/mod.ts";
import { CLUSTER_AUTH_LINE_BYTES_MAX, ConfigError, loadConfig } from "../../src/config/mod.ts";
import type { Conn } from "../../src/runtime/mod.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret-0123456789";
const OTHER = "other-other-other-other-other-other-0123456789";

function node(id: string, secret: string, logs: string[]): LinkAuth {
  return new LinkAuth({ nodeId: id, secret: enc.encode(secret), log: (_, m) => logs.push(m) });
}

/** Accepts one connection on a fresh listener and runs `accept` on it; `dial` gets the port. */
async function pair<T>(
  acceptor: LinkAuth,
  dial: (port: number) => Promise<T>,
): Promise<{ first: Awaited<ReturnType<LinkAuth["accept"]>>; dialled: T | Error }> {
  const listener = denoRuntime.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const accepted = listener.accept().then(async (conn) => {
      try {
        return await acceptor.accept(conn!);
      } finally {
        conn!.close();
      }
    });
    const dialled = await dial(listener.port).catch((e: Error) => e);
    return { first: await accepted, dialled };
  } finally {
    listener.close();
  }
}

const connect = (h: string, p: number) => denoRuntime.connect({ hostname: h, port: p });

/** Reads from `conn` until it closes (bounded), as text. */
async function readAll(conn: Conn): Promise<string> {
  let text = "";
  for (let i = 0; i < 100; i++) {
    const chunk = await conn.read!().catch(() => null);
    if (chunk === null) return text;
    text += dec.decode(chunk);
  }
  throw new Error("too many chunks");
}

Deno.test("same secret: the first line and the bytes behind it come through", async () => {
  const logs: string[] = [];
  const a = node("n1", SECRET, logs);
  const b = node("n2", SECRET, logs);
  const { first, dialled } = await pair(a, async (port) => {
    const conn = await b.dialer(connect)("127.0.0.1", port);
    await conn.write(enc.encode("HELLO n2\r\nSUB topic:a\r\n"));
    return conn;
  });
  assert.ok(!(dialled instanceof Error), String(dialled));
  (dialled as Conn).close();
  assert.equal(first?.line, "HELLO n2");
  const rest = dec.decode(first?.rest);
  assert.ok(rest === "" || rest === "SUB topic:a\r\n", rest);
  assert.deepEqual(a.stats(), { auth_failures: 0, auth_dial_failures: 0 });
  assert.deepEqual(b.stats(), { auth_failures: 0, auth_dial_failures: 0 });
  assert.deepEqual(logs, []);
});

Deno.test("different secrets: refused on both sides, each says why, no secret in any message", async () => {
  const logs: string[] = [];
  const a = node("n1", SECRET, logs);
  const b = node("n9", OTHER, logs);
  const { first, dialled } = await pair(a, (port) => b.dialer(connect)("127.0.0.1", port));
  assert.equal(first, undefined);
  assert.ok(dialled instanceof ClusterAuthError, String(dialled));
  assert.match(
    dialled.message,
    /node n1 at 127\.0\.0\.1:\d+ refused us: our cluster secrets differ/,
  );
  assert.equal(a.stats().auth_failures, 1);
  assert.equal(b.stats().auth_dial_failures, 1);
  assert.equal(logs.length, 1);
  assert.match(logs[0], /cluster connection from 127\.0\.0\.1:\d+ refused: node n9's proof/);
  for (const m of [...logs, dialled.message]) {
    assert.ok(!m.includes(SECRET) && !m.includes(OTHER) && !m.includes("s3cret"), m);
  }
});

Deno.test("an acceptor with another secret cannot prove itself to the dialer", async () => {
  // A fake acceptor that answers OK with a proof under another secret: the dialer must not go on.
  const logs: string[] = [];
  const dialer = node("n2", SECRET, logs);
  const listener = denoRuntime.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const served = listener.accept().then(async (conn) => {
      // The impostor's own check fails on the dialer's proof; it answers OK anyway.
      await conn!.write(enc.encode(`AUTH n1 ${"A".repeat(43)}\r\n`));
      const line = await readLine(conn!);
      await conn!.write(enc.encode(`AUTH OK ${"B".repeat(43)}\r\n`));
      const rest = await readAll(conn!);
      conn!.close();
      return { line, rest };
    });
    const e = await dialer.dialer(connect)("127.0.0.1", listener.port).catch((e) => e);
    assert.ok(e instanceof ClusterAuthError);
    assert.match(e.message, /node n1 at .* could not prove the cluster secret/);
    const { line, rest } = await served;
    assert.match(line, /^AUTH n2 [A-Za-z0-9_-]{43} [A-Za-z0-9_-]{43}$/);
    assert.equal(rest, "", "the dialer sent no first line to an unproven acceptor");
    assert.equal(dialer.stats().auth_dial_failures, 1);
  } finally {
    listener.close();
  }
});

/** One line (small, in one chunk or a few). */
async function readLine(conn: Conn): Promise<string> {
  let text = "";
  for (let i = 0; i < 100 && !text.includes("\n"); i++) {
    const chunk = await conn.read!();
    if (chunk === null) break;
    text += dec.decode(chunk);
  }
  return text.trimEnd();
}

Deno.test("no handshake, another node named, a line too long: refused, counted, logged once a second", async () => {
  const logs: string[] = [];
  const a = node("n1", SECRET, logs);
  // A raw client: PROXY first, no handshake. It gets the challenge and is closed, nothing served.
  const raw = await pair(a, async (port) => {
    const c = await connect("127.0.0.1", port);
    await c.write(enc.encode("PROXY n2\r\nPUB queue:q 1\r\nx\r\n"));
    const got = await readAll(c);
    c.close();
    return got;
  });
  assert.equal(raw.first, undefined);
  assert.match(raw.dialled as string, /^AUTH n1 [A-Za-z0-9_-]{43}\r\n$/);
  // A dialer with the secret whose first line names another node.
  const b = node("n2", SECRET, logs);
  const named = await pair(a, async (port) => {
    const conn = await b.dialer(connect)("127.0.0.1", port);
    await conn.write(enc.encode("PROXY n3\r\n"));
    conn.close();
  });
  assert.equal(named.first, undefined);
  // An over-long handshake line.
  const long = await pair(a, async (port) => {
    const c = await connect("127.0.0.1", port);
    await c.write(enc.encode("AUTH " + "x".repeat(CLUSTER_AUTH_LINE_BYTES_MAX + 10)));
    const got = await readAll(c);
    c.close();
    return got;
  });
  assert.equal(long.first, undefined);
  assert.equal(a.stats().auth_failures, 3);
  // All three from 127.0.0.1 within a second: logged once (the later ones are counted for the next).
  assert.equal(logs.length, 1, logs.join("\n"));
  assert.match(logs[0], /no handshake, another line first/);
});

Deno.test("the secret: from a file (flag, env, --config) or RELAYR_CLUSTER_SECRET, trimmed; short or both refused, never quoted", () => {
  const base = ["--cluster-etcd", "http://127.0.0.1:2379", "--node-id", "n1"];
  const args = [...base, "--cluster-listen", "127.0.0.1:0"];
  const files: Record<string, string> = { "/s": SECRET + "\n", "/short": "tooshort\n" };
  const load = (extra: string[], env: Record<string, string> = {}) =>
    loadConfig({
      args: [...args, ...extra],
      env: (n) => env[n],
      readFile: (p) => {
        if (p in files) return files[p];
        throw new Error(`${p}: not found`);
      },
    }).config;
  assert.equal(dec.decode(load(["--cluster-secret-file", "/s"]).clusterSecret), SECRET);
  assert.equal(dec.decode(load([], { RELAYR_CLUSTER_SECRET: SECRET }).clusterSecret), SECRET);
  assert.equal(
    dec.decode(load([], { RELAYR_CLUSTER_SECRET_FILE: "/s" }).clusterSecret),
    SECRET,
  );
  files["/c.json"] = JSON.stringify({ "cluster-secret-file": "/s" });
  assert.equal(dec.decode(load(["--config", "/c.json"]).clusterSecret), SECRET);
  assert.equal(load([]).clusterSecret, undefined);
  const refused = (extra: string[], env: Record<string, string>, re: RegExp) => {
    assert.throws(() => load(extra, env), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("tooshort") && !e.message.includes(SECRET), e.message);
      return true;
    });
  };
  refused(
    ["--cluster-secret-file", "/short"],
    {},
    /holds 8 bytes; a cluster secret needs at least 32/,
  );
  refused([], { RELAYR_CLUSTER_SECRET: "tooshort" }, /RELAYR_CLUSTER_SECRET holds 8 bytes/);
  refused(["--cluster-secret-file", "/s"], { RELAYR_CLUSTER_SECRET: SECRET }, /not both/);
  refused(["--cluster-secret-file", "/nope"], {}, /cannot read cluster secret file "\/nope"/);
  // There is no flag that takes the secret itself.
  assert.throws(() => load(["--cluster-secret", SECRET]), /Unknown option/);
});
