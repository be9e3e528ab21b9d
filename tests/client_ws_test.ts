/**
 * The client over `ws://` against a real broker (a child process), next to a
 * TCP client: the same API end to end (subscribe iterators with every message
 * field, explicit acks and NACK redelivery, request/reply, reconnect with
 * subscriptions renewed, payloads larger than one WebSocket message), and the
 * browser face's address rules.
 */
import assert from "node:assert/strict";
import { type Client, connect, ConnectError, type StatusEvent } from "../src/client/mod.ts";
import { resolveUrl } from "../src/client/web.ts";
import { BrokerProcess, freePort, relayr, take } from "./client_helpers.ts";
import { waitFor } from "./helpers.ts";

async function startBroker(httpPort = freePort()): Promise<BrokerProcess & { url: string }> {
  const b = await BrokerProcess.start([
    "--http-port",
    String(httpPort),
    "--max-payload",
    "4194304",
  ]);
  // BrokerProcess waits for the TCP port; the HTTP port opens right after it.
  await waitForHttp(httpPort);
  return Object.assign(b, { url: `ws://127.0.0.1:${httpPort}/ws` });
}

/** Waits until the broker answers `/healthz` on `port` (bounded). */
async function waitForHttp(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50)); // the next attempt
  }
  throw new Error(`no HTTP on port ${port}`);
}

Deno.test("client over ws://: the same API as over TCP, both ways", async (t) => {
  const broker = await startBroker();
  const clients: Client[] = [];
  const open = async (address: string) => {
    const c = await connect(address, { reconnect: false });
    clients.push(c);
    return c;
  };
  try {
    const ws = await open(broker.url);
    const tcp = await open(broker.address);
    assert.equal(ws.server, broker.url);
    assert.equal(ws.info?.max_payload, 4194304);

    await t.step("a topic message with every field, TCP to WebSocket", async () => {
      const sub = await ws.subscribe("topic:events.*");
      await tcp.publish("topic:events.eu", "hello", {
        headers: { "Trace-Id": "abc" },
        priority: 7,
        ttlMs: 60_000,
        correlationId: "c-1",
        replyTo: "topic:replies",
        contentType: "text/plain",
      });
      const [m] = await take(sub, 1);
      assert.equal(m.text(), "hello");
      assert.deepEqual(m.headers, { "Trace-Id": "abc" });
      assert.equal(m.priority, 7);
      assert.equal(m.ttlMs, 60_000);
      assert.equal(m.correlationId, "c-1");
      assert.equal(m.replyTo, "topic:replies");
      assert.equal(m.contentType, "text/plain");
      await sub.unsubscribe();
    });

    await t.step("queue with explicit acks and a NACK redelivery, WebSocket to TCP", async () => {
      const sub = await tcp.subscribe("queue:jobs");
      for (let i = 0; i < 3; i++) await ws.publish("queue:jobs", `job-${i}`);
      const [a, b, c] = await take(sub, 3);
      assert.deepEqual([a.text(), b.text(), c.text()], ["job-0", "job-1", "job-2"]);
      await a.ack({ confirm: true });
      await b.nack();
      await c.ack({ confirm: true });
      const [again] = await take(sub, 1);
      assert.equal(again.text(), "job-1");
      assert.equal(again.deliveryCount, 2);
      await again.ack({ confirm: true });
      await sub.unsubscribe();
    });

    await t.step("a WebSocket subscriber acks too", async () => {
      const sub = await ws.subscribe("queue:ws-jobs", { prefetch: 2 });
      for (let i = 0; i < 5; i++) tcp.publishNoWait("queue:ws-jobs", `${i}`);
      await tcp.flush();
      const got: string[] = [];
      for (let i = 0; i < 5; i++) {
        const [m] = await take(sub, 1); // prefetch 2: the rest come as these are acked
        got.push(m.text());
        await m.ack({ confirm: true });
      }
      assert.deepEqual(got, ["0", "1", "2", "3", "4"]);
      await sub.unsubscribe();
    });

    await t.step("request/reply across transports", async () => {
      const responder = await tcp.subscribe("queue:rpc", { ack: "none" });
      const serving = (async () => {
        for await (const m of responder) {
          await m.respond(`echo ${m.text()}`);
          break;
        }
      })();
      const reply = await ws.request("queue:rpc", "ping", { timeoutMs: 5000 });
      assert.equal(reply.text(), "echo ping");
      await serving;
    });

    await t.step("a payload bigger than one WebSocket message arrives whole", async () => {
      const sub = await ws.subscribe("topic:big");
      const body = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => i * 31);
      await ws.publish("topic:big", body);
      const [m] = await take(sub, 1);
      assert.equal(m.body.length, body.length);
      assert.ok(m.body.every((v, i) => v === body[i]), "the bytes are intact");
      await sub.unsubscribe();
    });
  } finally {
    for (const c of clients) await c.close();
    await broker.stop();
  }
});

Deno.test("client over ws:// reconnects after the broker restarts and renews its subscriptions", async () => {
  const broker = await startBroker();
  const events: StatusEvent[] = [];
  const c = await connect(broker.url, {
    reconnectDelayMs: 20,
    reconnectDelayMaxMs: 200,
    onStatus: (e) => events.push(e),
  });
  const p = await connect(broker.address, { reconnectDelayMs: 20, reconnectDelayMaxMs: 200 });
  try {
    const sub = await c.subscribe("topic:life");
    await p.publish("topic:life", "before");
    assert.equal((await take(sub, 1))[0].text(), "before");
    await broker.kill();
    await waitFor(() => events.some((e) => e.type === "disconnected"), 5000, "disconnected");
    await broker.restart();
    await waitFor(() => c.reconnects === 1, 10_000, "reconnected over ws");
    await waitFor(() => p.connected, 10_000, "publisher back");
    await p.publish("topic:life", "after");
    assert.equal((await take(sub, 1))[0].text(), "after");
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("client over ws://: a refused handshake is a ConnectError", async () => {
  const port = freePort();
  await assert.rejects(
    () => connect(`ws://127.0.0.1:${port}/ws`, { reconnect: false, connectTimeoutMs: 2000 }),
    ConnectError,
  );
});

Deno.test("web client: addresses are WebSocket URLs, relative to the page when there is one", () => {
  assert.equal(resolveUrl("ws://h:1/ws"), "ws://h:1/ws");
  assert.equal(resolveUrl("wss://h/ws"), "wss://h/ws");
  assert.throws(() => resolveUrl("localhost:9092"), /Browsers connect over WebSocket/);
  assert.throws(() => resolveUrl(undefined), /pass a ws:\/\/ URL/);
});

Deno.test("relayr pub --server ws://... publishes over the WebSocket", async () => {
  const broker = await startBroker();
  const c = await connect(broker.address, { reconnect: false });
  try {
    const sub = await c.subscribe("queue:cli");
    const run = await relayr(["pub", "--server", broker.url, "queue:cli", "from the cli"]);
    assert.equal(run.code, 0, run.stderr);
    const [m] = await take(sub, 1);
    assert.equal(m.text(), "from the cli");
    await m.ack();
  } finally {
    await c.close();
    await broker.stop();
  }
});
