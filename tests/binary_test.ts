/**
 * The single executable (`dist/relayr`, built by scripts/build.sh with `bun
 * build --compile`) and `bun main.ts`, as real child processes: the
 * documented exchange, a queue and a topic over TCP, the monitoring port, and
 * a clean exit 0 on SIGTERM. The binary is rebuilt when any source file is
 * newer than it. Skipped, with the reason printed, when `bun` is absent.
 */
import assert from "node:assert/strict";
import { bunVersion, ensureBinary, type ServerProcess, startServerProcess } from "./child.ts";
import { RawClient } from "./helpers.ts";
import { parseExposition, value } from "./prometheus.ts";
import { keyFileText } from "../src/auth/mod.ts";
import { makeUsers, SECRETS, serveArgs, writeUsers } from "./auth/fixtures.ts";
import { clientTlsArgs, makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("binary_test: skipped, bun is not on PATH");

/** PROTOCOL.md's first example, verbatim, then a queue and a topic with several clients. */
async function exchange(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  const p = await RawClient.connect(port);
  const s2 = await RawClient.connect(port);
  try {
    await c.send('CONNECT {"version":"1.0","client_id":"client123"}\n');
    assert.equal(await c.line(), "OK");
    await c.send('PUB queue:orders 35\n{"order_id":"12345","amount":99.99}\n');
    assert.match(await c.line(), /^OK msg_id:\d+$/);
    await c.send("SUB topic:events sub_id:sub456\n");
    assert.equal(await c.line(), "OK");
    await c.send('PUB topic:events 43\n{"event":"order_placed","order_id":"12345"}\n');
    const two = [await c.frame(), await c.frame()];
    const ok = two.find((f) => f.line.startsWith("OK "))!;
    const msg = two.find((f) => f.line.startsWith("MSG "))!;
    const id = ok.line.match(/^OK msg_id:(\d+)$/)![1];
    assert.equal(msg.line, `MSG topic:events sub_id:sub456 msg_id:${id} 43`);
    assert.equal(
      new TextDecoder().decode(msg.payload),
      '{"event":"order_placed","order_id":"12345"}',
    );
    await c.send(`ACK msg_id:${id}\n`);
    assert.equal(await c.line(), "OK");

    // The queued order goes to a consumer, and more through a queue and a topic.
    await c.send("SUB queue:orders sub_id:q1\r\n");
    assert.equal(await c.line(), "OK");
    const order = await c.frame();
    assert.match(order.line, /^MSG queue:orders sub_id:q1 msg_id:\d+ 35$/);
    await c.send(`ACK msg_id:${order.fields!.msg_id}\r\n`);
    assert.equal(await c.line(), "OK");
    await s2.send("SUB topic:events sub_id:other\r\nPING\r\n");
    assert.equal(await s2.line(), "OK");
    assert.equal(await s2.line(), "PONG");
    const N = 20;
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < N; i++) {
      batch += `PUB queue:orders 4\r\nq${String(i).padStart(3, "0")}\r\n`;
      batch += `PUB topic:events 4\r\nt${String(i).padStart(3, "0")}\r\n`;
    }
    await p.send(batch + "PING\r\n");
    assert.equal(await p.line(), "PONG");
    const atC = await c.msgs(2 * N);
    const queued = atC.filter((f) => f.fields!.dest === "queue:orders");
    assert.deepEqual(
      queued.map((f) => new TextDecoder().decode(f.payload)),
      Array.from({ length: N }, (_, i) => `q${String(i).padStart(3, "0")}`),
      "queue order is FIFO",
    );
    for (const f of queued) {
      await c.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
      assert.equal(await c.line(), "OK");
    }
    const atS2 = await s2.msgs(N);
    assert.deepEqual(
      atS2.map((f) => new TextDecoder().decode(f.payload)),
      Array.from({ length: N }, (_, i) => `t${String(i).padStart(3, "0")}`),
      "every topic subscriber gets every message in order",
    );
  } finally {
    await c.close();
    await p.close();
    await s2.close();
  }
}

/** The monitoring port answers and counts the traffic of `exchange`. */
async function checkMonitoring(server: ServerProcess, runtime: string): Promise<void> {
  const base = `http://127.0.0.1:${server.httpPort}`;
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  await ready.body?.cancel();
  const m = parseExposition(await (await fetch(`${base}/metrics`)).text());
  const info = m.get("relayr_info")!.samples[0].labels;
  assert.equal(info.runtime, runtime);
  // 1 + 1 documented publishes, then 20 to the queue and 20 to the topic.
  assert.equal(value(m, "relayr_messages_published_total"), 42);
  assert.equal(value(m, "relayr_queue_acked_total", { queue: "orders" }), 21);
}

/** Runs the whole scenario against one server command. */
async function scenario(cmd: string, args: string[], runtime: string): Promise<void> {
  const server = await startServerProcess(cmd, args);
  let status: Deno.CommandStatus | undefined;
  try {
    await exchange(server.port);
    await checkMonitoring(server, runtime);
    status = await server.stop("SIGTERM");
  } finally {
    status ??= await server.stop("SIGKILL");
  }
  assert.equal(status.code, 0, `exit code ${status.code}; output:\n${server.output()}`);
  assert.match(server.output(), /SIGTERM: stopping/);
  assert.match(server.output(), /stopped/);
}

Deno.test({
  name: "binary: dist/relayr --version names Relayr and the Bun runtime",
  ignore: bun === undefined,
  async fn() {
    const binary = await ensureBinary();
    const out = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" }).output();
    assert.equal(out.code, 0);
    assert.match(new TextDecoder().decode(out.stdout), /^relayr \d+\.\d+\.\d+ \(bun \d+\.\d+/);
  },
});

Deno.test({
  name: "binary: serves the protocol and monitoring, exits 0 on SIGTERM",
  ignore: bun === undefined,
  async fn() {
    await scenario(await ensureBinary(), [], "bun");
  },
});

Deno.test({
  name: "bun main.ts: serves the protocol and monitoring, exits 0 on SIGTERM",
  ignore: bun === undefined,
  async fn() {
    await scenario("bun", ["main.ts"], "bun");
  },
});

Deno.test({
  name:
    "binary: authentication with token, password and key; HTTP needs a credential; SIGHUP revokes",
  ignore: bun === undefined,
  async fn() {
    const binary = await ensureBinary();
    const { users, bob } = await makeUsers();
    const path = await writeUsers(users);
    const dir = await Deno.makeTempDir();
    const keyFile = `${dir}/bob.key`;
    await Deno.writeTextFile(keyFile, keyFileText(bob));
    const server = await startServerProcess(binary, serveArgs(path));
    const cli = async (args: string[], stdin?: string) => {
      const child = new Deno.Command(binary, {
        args: [...args, "-s", `127.0.0.1:${server.port}`],
        stdin: stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      if (stdin !== undefined) {
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(stdin));
        await w.close();
      }
      const out = await child.output();
      return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
    };
    try {
      assert.equal((await cli(["pub", "queue:b", "one", "--token", SECRETS.token])).code, 0);
      const pw = await cli(
        ["pub", "queue:b", "two", "--user", "alice", "--password-stdin"],
        `${SECRETS.alicePass}\n`,
      );
      assert.equal(pw.code, 0);
      const sub = await cli(["sub", "queue:b", "-n", "2", "--raw", "--key", keyFile]);
      assert.equal(sub.code, 0);
      assert.deepEqual(sub.stdout.trim().split("\n"), ["one", "two"]);
      assert.equal((await cli(["pub", "queue:b", "x", "--token", "wrong"])).code, 5);
      const metrics = `http://127.0.0.1:${server.httpPort}/metrics`;
      const open = await fetch(metrics);
      await open.body?.cancel();
      assert.equal(open.status, 401);
      const ok = await fetch(metrics, { headers: { authorization: `Bearer ${SECRETS.token}` } });
      // One refused CLI login; the scrape without credentials guessed nothing and is not counted.
      assert.match(await ok.text(), /^relayr_auth_failures_total 1$/m);
      // SIGHUP on Bun: alice removed, her connection revoked.
      const raw = await RawClient.connect(server.port);
      try {
        await raw.line(); // the greeting
        await raw.send(`CONNECT {"user":"alice","pass":"${SECRETS.alicePass}"}\r\n`);
        assert.equal(await raw.line(5000), "OK");
        await writeUsers(users.filter((u) => u.user !== "alice"), path);
        Deno.kill(server.pid, "SIGHUP");
        assert.match(await raw.line(5000), /^ERR AUTH_REVOKED /);
      } finally {
        await raw.close();
      }
    } finally {
      await server.stop("SIGTERM");
      await Deno.remove(path);
      await Deno.remove(dir, { recursive: true });
    }
    for (const secret of [...Object.values(SECRETS), bob.private_key]) {
      assert.ok(!server.output().includes(secret), "a secret in the binary's log");
    }
  },
});

Deno.test({
  name: "binary: mTLS broker with a certificate user and a token; its own CLI as the client",
  ignore: bun === undefined,
  async fn() {
    const binary = await ensureBinary();
    const certs = await makeCerts();
    const users = await writeUsers([{ user: "alice", cert_subject: "CN=alice,O=Acme" }]);
    const server = await startServerProcess(binary, [
      ...serverTlsArgs(certs, true),
      "--users",
      users,
      "--auth-token",
      SECRETS.token,
      "--http-tls",
    ]);
    const cli = async (args: string[]) => {
      const out = await new Deno.Command(binary, { args, stdout: "piped", stderr: "piped" })
        .output();
      return { code: out.code, out: new TextDecoder().decode(out.stdout) };
    };
    const s = ["-s", `127.0.0.1:${server.port}`];
    const tls = clientTlsArgs(certs);
    try {
      assert.equal((await cli(["pub", ...s, ...tls, "queue:bin.tls", "over mtls"])).code, 0);
      const sub = await cli(["sub", ...s, ...tls, "queue:bin.tls", "-n", "1", "--timeout", "5000"]);
      assert.equal(sub.code, 0);
      assert.match(sub.out, /over mtls/);
      const named = await cli([
        "pub",
        ...s,
        ...tls,
        "--token",
        SECRETS.token,
        "queue:bin.tls",
        "t",
      ]);
      assert.equal(named.code, 0, "the token over mTLS");
      const wrong = await cli(["pub", ...s, ...tls, "--user", "mallory", "queue:bin.tls", "x"]);
      assert.equal(wrong.code, 5, "alice's certificate does not log in mallory");
      const refused = await cli(["pub", ...s, "--tls-ca", certs.ca, "queue:bin.tls", "x"]);
      assert.notEqual(refused.code, 0, "no client certificate");
      // HTTPS monitoring (Bun.serve tls), read by the binary's stats (Bun fetch with tls.ca).
      const https = ["--http", `https://127.0.0.1:${server.httpPort}`, "--tls-ca", certs.ca];
      const stats = await cli(["stats", ...https, "--token", SECRETS.token, "--compact"]);
      assert.equal(stats.code, 0);
      assert.ok(JSON.parse(stats.out).server.tls_handshake_failures >= 1);
    } finally {
      const status = await server.stop("SIGTERM");
      certs.remove();
      await Deno.remove(users);
      assert.equal(status.code, 0, server.output());
    }
  },
});
