/**
 * UDP ingest (`--udp-port`) over real UDP sockets on 127.0.0.1: datagrams of
 * whole PUB frames reach TCP subscribers and queue consumers with every
 * option; a bad datagram is dropped whole and counted, and the next one is
 * served; with authentication on, every datagram needs the AUTH line.
 * Loopback UDP does not lose datagrams, but the tests still wait for the
 * ingest's own count of what arrived, never for a fixed time.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { ConfigError } from "../../src/config/mod.ts";
import { renderMetrics } from "../../src/http/mod.ts";
import { RawClient, startTestBroker, waitFor } from "../helpers.ts";

const text = (f: { payload?: Uint8Array }) => new TextDecoder().decode(f.payload);

/** A UDP sender to the broker's ingest port. */
async function sender(port: number) {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
  return {
    send: (datagram: string) =>
      new Promise<void>((resolve, reject) =>
        socket.send(
          new TextEncoder().encode(datagram),
          port,
          "127.0.0.1",
          (e) => e ? reject(e) : resolve(),
        )
      ),
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

Deno.test("udp: PUB datagrams reach subscribers with every option; many frames per datagram", async () => {
  const broker = await startTestBroker(["--udp-port", "0"]);
  const udp = broker.server.udp!;
  const sub = await RawClient.connect(broker.port);
  const out = await sender(udp.port);
  try {
    await sub.send("SUB topic:metrics.> sub_id:m\r\nSUB queue:jobs sub_id:j\r\nPING\r\n");
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "PONG");
    await out.send("PUB topic:metrics.cpu 2\r\n42\r\n");
    await out.send(
      "PUB topic:metrics.mem priority:7 correlation_id:c1 content_type:text/plain hdr:11 13\r\n" +
        "Host: a\r\n\r\nhi\r\n" +
        "PUB queue:jobs 3\r\njob\r\nPUB topic:metrics.disk 1\r\n9\r\n",
    );
    const got = await sub.msgs(4);
    const byDest = new Map(got.map((f) => [f.fields!.dest, f]));
    assert.equal(text(byDest.get("topic:metrics.cpu")!), "42");
    const mem = byDest.get("topic:metrics.mem")!;
    assert.equal(mem.fields!.priority, "7");
    assert.equal(mem.fields!.correlation_id, "c1");
    assert.equal(mem.fields!.content_type, "text/plain");
    assert.equal(mem.fields!.hdr, "11");
    assert.equal(text(mem), "Host: a\r\n\r\nhi");
    assert.equal(text(byDest.get("queue:jobs")!), "job");
    assert.equal(text(byDest.get("topic:metrics.disk")!), "9");
    assert.deepEqual(udp.counters, {
      datagrams: 2,
      published: 4,
      bad: 0,
      unauthorized: 0,
      refused: 0,
    });
  } finally {
    await out.close();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("udp: a bad datagram is dropped whole and counted; the next one is served", async () => {
  const broker = await startTestBroker(["--udp-port", "0", "--max-payload", "64"]);
  const udp = broker.server.udp!;
  const sub = await RawClient.connect(broker.port);
  const out = await sender(udp.port);
  try {
    await sub.send("SUB topic:t sub_id:s\r\nPING\r\n");
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "PONG");
    const bad = [
      "SUB topic:t\r\n", // not a PUB: a datagram carries no connection state
      "PUB topic:t 1\r\na\r\nSUB topic:t\r\n", // a good PUB, then a SUB: none of it
      "PUB topic:t 5\r\nab", // cut by the datagram's end
      "PUB topic:t 2\r\nab\r\nPUB topic:t 10\r\nabc", // the second frame is cut
      "PUB topic:t bogus:1 1\r\na\r\n", // an unknown option
      "PUB topic:* 1\r\na\r\n", // a wildcard
      `PUB topic:t 65\r\n${"x".repeat(65)}\r\n`, // over --max-payload
      "CONNECT {}\r\n",
      "\u0000\u00ff garbage",
      "PUB topic:t 1", // a line with no end
    ];
    for (const d of bad) await out.send(d);
    await out.send("PUB topic:t 4\r\ngood\r\n");
    await waitFor(() => udp.counters.datagrams === bad.length + 1, 5000, "all datagrams");
    const [msg] = await sub.msgs(1);
    assert.equal(text(msg), "good", "the only message published is the good one");
    assert.equal(udp.counters.bad, bad.length);
    assert.equal(udp.counters.published, 1);
    await sub.send("PING\r\n");
    assert.equal(await sub.line(), "PONG", "nothing else came before");
    const metrics = renderMetrics(broker.server);
    assert.match(metrics, new RegExp(`^relayr_udp_bad_total ${bad.length}$`, "m"));
    assert.match(metrics, /^relayr_udp_published_total 1$/m);
  } finally {
    await out.close();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("udp: with authentication on, every datagram starts with AUTH <udp-token>", async () => {
  const token = "udp-secret-8c1f";
  const broker = await startTestBroker([
    ...["--udp-port", "0", "--auth-token", "tcp-secret-77aa", "--udp-token", token],
  ]);
  const udp = broker.server.udp!;
  const sub = await RawClient.connect(broker.port);
  const out = await sender(udp.port);
  try {
    assert.match(await sub.line(), /^INFO /);
    await sub.send(
      'CONNECT {"auth_token":"tcp-secret-77aa"}\r\nSUB topic:t sub_id:s\r\nPING\r\n',
    );
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "PONG");
    await out.send("PUB topic:t 2\r\nno\r\n");
    await out.send("AUTH wrong-token\r\nPUB topic:t 2\r\nno\r\n");
    await out.send("AUTH tcp-secret-77aa\r\nPUB topic:t 2\r\nno\r\n"); // the TCP token is not the UDP one
    await out.send(`AUTH ${token}\r\nPUB topic:t 3\r\nyes\r\n`);
    await out.send(`AUTH ${token}\nPUB topic:t 4\r\nyes2\r\n`);
    await waitFor(() => udp.counters.datagrams === 5, 5000, "all datagrams");
    const got = await sub.msgs(2);
    assert.deepEqual(got.map(text), ["yes", "yes2"]);
    assert.equal(udp.counters.unauthorized, 3);
    const stats = JSON.stringify(broker.server.serverStats());
    assert.ok(!stats.includes(token), "the UDP token is not in the stats");
  } finally {
    await out.close();
    await sub.close();
    await broker.stop();
  }
});

Deno.test("udp: --udp-port with auth on and no --udp-token refuses to start", async () => {
  const err = await startTestBroker(["--udp-port", "0", "--auth-token", "t0k3n-x"]).catch((e) => e);
  assert.ok(err instanceof ConfigError, String(err));
  assert.match(err.message, /--udp-port with authentication on needs --udp-token/);
});
