/**
 * TLS on the client port, in process on Deno: pub/sub through the SDK over
 * TLS; mTLS accepting a CA-signed client and refusing a wrong CA, an expired
 * certificate and no certificate; plain clients refused; every failed
 * handshake counted and the server still serving; silent sockets bounded in
 * number and time; HTTPS monitoring; reload of the certificate for new
 * connections only, with and without client certificates.
 */
import assert from "node:assert/strict";
import { connect, ConnectError } from "../src/client/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { startBroker } from "../src/app.ts";
import { TLS_FAILURE_LOGS_PER_S } from "../src/config/limits.ts";
import { HandshakeFailures } from "../src/server/tls_failures.ts";
import { FakeClock } from "./fake_clock.ts";
import { RawClient, startTestBroker, testConfig, waitFor } from "./helpers.ts";
import { makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";
import { tlsDial, type TlsTestClient } from "./tls_helpers.ts";

const certs = await makeCerts();
globalThis.addEventListener("unload", () => certs.remove());

const TLS = serverTlsArgs(certs);
const MTLS = serverTlsArgs(certs, true);
/** The client leaf signed by the test CA. */
const CLIENT = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };

/** The server's files as PEM text: leaf and key, with the CA when `ca`. */
function serverFiles(cert = certs.serverCert, key = certs.serverKey, ca = true) {
  const files = { cert: Deno.readTextFileSync(cert), key: Deno.readTextFileSync(key) };
  return ca ? { ...files, ca: Deno.readTextFileSync(certs.ca) } : files;
}

/** Runs `fn` against a broker started with `args`, and stops it however `fn` ends. */
async function withBroker(
  args: string[],
  fn: (broker: TestBroker) => Promise<void>,
): Promise<void> {
  const broker = await startTestBroker(args);
  try {
    await fn(broker);
  } finally {
    await broker.stop();
  }
}

type TestBroker = Awaited<ReturnType<typeof startTestBroker>>;

/** Asserts that `c` gets a PONG for its PING. */
async function pong(c: TlsTestClient, what = "PONG"): Promise<void> {
  c.send("PING\r\n");
  assert.equal(await c.line(), "PONG", what);
}

Deno.test("tls: pub/sub through the SDK over TLS (file paths and PEM text)", async () => {
  const broker = await startTestBroker(TLS);
  const sub = await connect(`127.0.0.1:${broker.port}`, {
    runtime: denoRuntime,
    tls: { ca: certs.ca },
  });
  const pub = await connect(`tls://127.0.0.1:${broker.port}`, {
    runtime: denoRuntime,
    tls: { ca: Deno.readTextFileSync(certs.ca) },
  });
  try {
    const s = await sub.subscribe("topic:tls", { ack: "none" });
    await pub.publish("topic:tls", "over tls");
    const it = s[Symbol.asyncIterator]();
    const { value } = await it.next();
    assert.equal(new TextDecoder().decode(value!.body), "over tls");
    const conns = broker.server.connectionStats({ offset: 0, limit: 10, subs: false }).list;
    assert.deepEqual(conns.map((c) => c.tls), [true, true], "the admin data says TLS");
  } finally {
    await pub.close();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("tls: the SDK checks the server's name: serverName localhost passes, another fails", () =>
  withBroker(TLS, async (broker) => {
    const dial = (serverName: string) =>
      connect(`127.0.0.1:${broker.port}`, {
        runtime: denoRuntime,
        reconnect: false,
        tls: { ca: certs.ca, serverName },
      });
    const ok = await dial("localhost");
    assert.match(await ok.publish("queue:names", "x"), /^\d+$/);
    await ok.close();
    await assert.rejects(dial("wrong.example"), ConnectError);
  }));

Deno.test("tls: a plain client is refused and counted; the server goes on", () =>
  withBroker(TLS, async (broker) => {
    const plain = await RawClient.connect(broker.port);
    await plain.send("PING\r\n");
    assert.ok(await plain.closedByServer(), "plain text is not a ClientHello");
    await plain.close();
    await waitFor(() => broker.server.tlsHandshakeFailures === 1, 3000, "the failure counted");
    const c = await tlsDial(broker.port, { ca: certs.ca });
    await pong(c);
    assert.equal(c.serverCn, "relayr-1");
    c.close();
  }));

Deno.test("tls: mTLS accepts a CA-signed client, refuses wrong CA, expired and none, counts them", () =>
  withBroker(MTLS, async (broker) => {
    const good = await tlsDial(broker.port, CLIENT);
    await pong(good);
    const refused = [
      { cert: certs.wrongClientCert, key: certs.clientKey },
      { cert: certs.expiredClientCert, key: certs.clientKey },
      {},
    ];
    for (const [i, files] of refused.entries()) {
      const c = await tlsDial(broker.port, { ca: certs.ca, ...files }).catch(() => undefined);
      if (c !== undefined) {
        c.send("PING\r\n");
        assert.equal(await c.line().catch(() => null), null, `case ${i}: no PONG, closed`);
        c.close();
      }
      await waitFor(
        () => broker.server.tlsHandshakeFailures === i + 1,
        3000,
        `failure ${i + 1} counted`,
      );
    }
    await pong(good, "the accepted client never noticed");
    good.close();
  }));

Deno.test("tls: the SDK with a client certificate under mTLS; a refused one is a ConnectError", () =>
  withBroker(MTLS, async (broker) => {
    const ok = await connect(`127.0.0.1:${broker.port}`, {
      runtime: denoRuntime,
      tls: CLIENT,
    });
    assert.match(await ok.publish("queue:tls", "accepted"), /^\d+$/);
    await ok.close();
    await assert.rejects(
      connect(`127.0.0.1:${broker.port}`, {
        runtime: denoRuntime,
        reconnect: false,
        connectTimeoutMs: 3000,
        tls: { ca: certs.ca },
      }),
      ConnectError,
    );
  }));

Deno.test("tls: the peer certificate's subject reaches Conn.peerCertSubject under mTLS", async () => {
  let failures = 0;
  const listener = await denoRuntime.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      ...serverFiles(),
      handshakeTimeoutMs: 5000,
      handshakesPendingMax: 10,
      onHandshakeFailure: () => failures++,
    },
  });
  try {
    const accepted = listener.accept();
    const c = await tlsDial(listener.port, CLIENT);
    const conn = (await accepted)!;
    assert.equal(conn.secure, true);
    assert.equal(conn.peerCertSubject, "CN=alice,O=Acme");
    assert.equal(failures, 0);
    conn.close();
    c.close();
  } finally {
    listener.close();
  }
});

Deno.test("tls: HTTPS monitoring with --http-tls; the failure counter is in /metrics", async () => {
  const config = testConfig([...TLS, "--http-tls", "--http-port", "0"]);
  config["no-http"] = false;
  const running = await startBroker(denoRuntime, config);
  const broker = Object.assign(running, { port: running.server.port });
  const client = Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(certs.ca)] });
  try {
    assert.ok(broker.http, "monitoring is on");
    const plain = await RawClient.connect(broker.port);
    await plain.send("x");
    await plain.closedByServer();
    await plain.close();
    await waitFor(() => broker.server.tlsHandshakeFailures === 1, 3000, "the failure counted");
    const base = `https://localhost:${broker.http!.port}`;
    const health = await fetch(`${base}/healthz`, { client });
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const metrics = await (await fetch(`${base}/metrics`, { client })).text();
    assert.match(metrics, /^relayr_tls_handshake_failures_total 1$/m);
  } finally {
    client.close();
    await broker.stop();
  }
});

for (const [name, args] of [["TLS", TLS], ["mTLS", MTLS]] as const) {
  Deno.test(`tls: reload serves the new certificate to new connections only, ${name}`, async () => {
    const broker = await startTestBroker([...args]);
    try {
      const before = await tlsDial(broker.port, CLIENT);
      assert.equal(before.serverCn, "relayr-1");
      // What SIGHUP does after the files changed (tests/tls_process_test.ts sends the signal).
      await reloadWith(broker, certs.serverCert2, certs.serverKey2);
      const after = await tlsDial(broker.port, CLIENT);
      assert.equal(after.serverCn, "relayr-2");
      await pong(before, "the open connection stayed");
      await pong(after);
      before.close();
      after.close();
    } finally {
      await broker.stop();
    }
  });
}

async function reloadWith(
  broker: TestBroker,
  cert: string,
  key: string,
): Promise<void> {
  await broker.server.reloadTls(serverFiles(cert, key));
}

Deno.test("tls: sockets that never handshake are bounded in number and time, then counted", async () => {
  const failures: string[] = [];
  const listener = await denoRuntime.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      ...serverFiles(certs.serverCert, certs.serverKey, false),
      handshakeTimeoutMs: 300,
      handshakesPendingMax: 2,
      onHandshakeFailure: (_addr, reason) => failures.push(reason),
    },
  });
  const silent: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      silent.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.port }));
    }
    await waitFor(() => failures.length >= 1, 3000, "the third socket refused");
    assert.deepEqual(failures, ["too many handshakes in progress"]);
    await waitFor(() => failures.length === 3, 5000, "the two silent ones timed out");
    for (const r of failures.slice(1)) assert.match(r, /time/i);
    const accepted = listener.accept();
    const c = await tlsDial(listener.port, { ca: certs.ca });
    const conn = (await accepted)!;
    assert.equal(conn.secure, true);
    assert.equal(conn.peerCertSubject, undefined, "no CA: no client certificate asked");
    conn.close();
    c.close();
  } finally {
    for (const s of silent) s.close();
    listener.close();
  }
});

Deno.test("tls: failed handshakes are all counted, logged one by one up to 10 a second, then summed up", () => {
  const clock = new FakeClock(1_000_000);
  const lines: string[] = [];
  const failures = new HandshakeFailures(clock, (_l, message, props) => {
    lines.push(message.replace(/\{(\w+)\}/g, (_, k) => String(props[k])));
  });
  for (let i = 0; i < 25; i++) failures.record(`10.0.0.1:${1000 + i}`, "UnknownCA");
  assert.equal(failures.total, 25);
  assert.equal(lines.length, TLS_FAILURE_LOGS_PER_S);
  assert.equal(lines[0], "TLS handshake from 10.0.0.1:1000 failed: UnknownCA");
  clock.advance(1000);
  failures.record("10.0.0.2:5", "CERT_HAS_EXPIRED");
  assert.deepEqual(lines.slice(TLS_FAILURE_LOGS_PER_S), [
    "15 more TLS handshakes failed (not logged one by one)",
    "TLS handshake from 10.0.0.2:5 failed: CERT_HAS_EXPIRED",
  ]);
  assert.equal(failures.total, 26);
});

Deno.test("tls: the SDK reconnects over TLS, with its client certificate, when the broker comes back", async () => {
  const first = await startTestBroker(MTLS);
  const port = first.port;
  const events: string[] = [];
  const client = await connect(`127.0.0.1:${port}`, {
    runtime: denoRuntime,
    tls: CLIENT,
    reconnectDelayMs: 20,
    reconnectDelayMaxMs: 100,
    onStatus: (e) => events.push(e.type),
  });
  let second: TestBroker | undefined;
  try {
    await first.stop();
    await waitFor(() => events.includes("disconnected"), 5000, "the drop noticed");
    second = await startTestBroker([...MTLS, "--port", String(port)]);
    await waitFor(() => events.includes("reconnected"), 5000, "reconnected over mTLS");
    assert.match(await client.publish("queue:again", "back"), /^\d+$/);
    assert.equal(second.server.tlsHandshakeFailures, 0);
  } finally {
    await client.close();
    await second?.stop();
  }
});

Deno.test("tls: a subscriber that stops reading is cut off as a slow consumer; the broker stops promptly", () =>
  withBroker([...TLS, "--sub-pending-bytes", "65536"], async (broker) => {
    const stuck = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: broker.port,
      caCerts: [Deno.readTextFileSync(certs.ca)],
    });
    const pub = await connect(`127.0.0.1:${broker.port}`, {
      runtime: denoRuntime,
      tls: { ca: certs.ca },
    });
    try {
      await stuck.write(new TextEncoder().encode("SUB topic:flood sub_id:s\r\n"));
      await waitFor(() => broker.broker.stats().topics === 1, 3000, "the subscription");
      const body = new Uint8Array(4096);
      for (let i = 0; i < 4000 && broker.server.closedByReason.SLOW_CONSUMER === 0; i++) {
        pub.publishNoWait("topic:flood", body);
        if (i % 100 === 99) await pub.flush();
      }
      await waitFor(() => broker.server.closedByReason.SLOW_CONSUMER === 1, 5000, "cut off");
      // Reading again drains what the server still had queued; it ends with the server's close.
      const buf = new Uint8Array(64 * 1024);
      let tail = "";
      const deadline = Date.now() + 5000;
      // The server ends without a TLS close_notify: rustls reports that as UnexpectedEof.
      const read = () =>
        stuck.read(buf).catch((e) =>
          e instanceof Deno.errors.UnexpectedEof ? null : Promise.reject(e)
        );
      for (let n = await read(); n !== null; n = await read()) {
        tail = (tail + new TextDecoder().decode(buf.subarray(0, n))).slice(-200);
        assert.ok(Date.now() < deadline, "the server closed the connection");
      }
      assert.match(tail, /ERR SLOW_CONSUMER [^\n]*\r\n$/);
    } finally {
      await pub.close();
      stuck.close();
    }
  }));
