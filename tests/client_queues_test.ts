/**
 * The SDK's declared queues, scheduled publishes and dedup ids against a real
 * broker over TCP, and its resend after a dropped connection: a TCP proxy
 * between client and broker passes the PUB through and swallows the broker's
 * OK, then cuts both sockets; the client reconnects through the proxy and
 * sends the publish again with its dedup id, and the queue holds it once.
 */
import assert from "node:assert/strict";
import {
  connect,
  ConnectionLostError,
  DeclareConflictError,
  type Message,
  type PublishOptions,
  TimeoutError,
} from "../src/client/mod.ts";
import type { Broker } from "../src/broker/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { startTestBroker, waitFor } from "./helpers.ts";

/** A TCP proxy to `port` whose broker-to-client direction can be held back, and whose links can be cut. */
class Proxy {
  readonly port: number;
  /** While true, bytes from the broker are dropped (the client never sees its replies). */
  swallow = false;
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.TcpConn>();
  #tasks: Promise<void>[] = [];
  #accepting: Promise<void>;

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept(target);
  }

  async #accept(target: number): Promise<void> {
    for await (const client of this.#listener) {
      const broker = await Deno.connect({ hostname: "127.0.0.1", port: target });
      this.#conns.add(client).add(broker);
      this.#tasks.push(this.#pipe(client, broker, false), this.#pipe(broker, client, true));
    }
  }

  async #pipe(from: Deno.TcpConn, to: Deno.TcpConn, fromBroker: boolean): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (fromBroker && this.swallow) continue;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* cut */ }
    for (const c of [from, to]) this.#close(c);
  }

  #close(c: Deno.TcpConn): void {
    if (!this.#conns.delete(c)) return;
    try {
      c.close();
    } catch { /* closed */ }
  }

  /** Closes every proxied connection (the client sees its connection drop). */
  async cut(): Promise<void> {
    for (const c of [...this.#conns]) this.#close(c);
    await Promise.all(this.#tasks.splice(0));
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting.catch(() => {});
    await this.cut();
  }
}

const text = (m: Message) => new TextDecoder().decode(m.body);

Deno.test("client: declareQueue, delayMs/deliverAt and dedupId against a real broker", async () => {
  const broker = await startTestBroker();
  const c = await connect(`127.0.0.1:${broker.port}`, { runtime: denoRuntime, reconnect: false });
  try {
    await c.declareQueue("queue:jobs", { maxMessages: 10, dlq: null, dedupWindowMs: 60_000 });
    await c.declareQueue("queue:jobs", { maxMessages: 10, dlq: null, dedupWindowMs: 60_000 });
    await assert.rejects(c.declareQueue("queue:jobs", { maxMessages: 11 }), DeclareConflictError);
    const first = await c.publish("queue:jobs", "a", { dedupId: "a-1" });
    assert.equal(await c.publish("queue:jobs", "a", { dedupId: "a-1" }), first, "the first id");
    const sentAt = Date.now();
    await c.publish("queue:jobs", "later", { delayMs: 200 });
    await c.publish("queue:jobs", "at", { deliverAt: new Date(sentAt + 100) });
    const sub = await c.subscribe("queue:jobs", { ack: "none" });
    const got: string[] = [];
    for await (const m of sub) {
      got.push(text(m));
      if (got.length === 3) break;
    }
    assert.deepEqual(got, ["a", "at", "later"]);
    assert.ok(Date.now() - sentAt >= 200, "never early");
    assert.equal(broker.broker.stats().duplicate_msgs, 1);
    assert.throws(
      () => c.publishNoWait("queue:jobs", "x", { delayMs: 5, deliverAt: 5 }),
      /delayMs or deliverAt, not both/,
    );
  } finally {
    await c.close();
    await broker.stop();
  }
});

/**
 * Publishes through a proxy that lets the PUB reach the broker and swallows
 * its OK, then cuts the connection; `check` gets the publish's promise after
 * the client reconnected (it may resolve or reject) and the queue.
 */
async function publishAcrossDrop(
  queue: string,
  opts: PublishOptions,
  retryPublishes: boolean,
  check: (p: Promise<string>, q: NonNullable<ReturnType<Broker["queues"]["get"]>>) => Promise<void>,
): Promise<void> {
  const broker = await startTestBroker();
  const proxy = new Proxy(broker.port);
  const c = await connect(`127.0.0.1:${proxy.port}`, {
    runtime: denoRuntime,
    reconnectDelayMs: 10,
    reconnectDelayMaxMs: 50,
    retryPublishes,
  });
  try {
    const queued = () => broker.broker.queues.get(queue)?.counters.published ?? 0;
    proxy.swallow = true;
    const p = c.publish(queue, "order", opts);
    await waitFor(() => queued() === 1, 5000, "the broker stored the publish");
    await proxy.cut(); // the OK never reached the client
    proxy.swallow = false;
    await check(p, broker.broker.queues.get(queue)!);
  } finally {
    await c.close();
    await proxy.close();
    await broker.stop();
  }
}

for (const mode of ["dedupId", "retryPublishes"] as const) {
  Deno.test(`client: a publish whose OK was lost with the connection is sent again and stored once (${mode})`, async () => {
    const opts = mode === "dedupId" ? { dedupId: "o-1" } : {};
    await publishAcrossDrop("queue:once", opts, mode === "retryPublishes", async (p, q) => {
      const id = await p; // resent on the new connection, answered as a duplicate
      assert.match(id, /^\d+$/);
      assert.deepEqual([q.store.size, q.counters.published, q.counters.duplicates], [1, 1, 1]);
      assert.equal(String(q.store.messages()[Symbol.iterator]().next().value!.id), id);
    });
  });
}

Deno.test("client: without a dedup id a publish in flight at the drop fails with ConnectionLostError", async () => {
  await publishAcrossDrop("queue:plain", {}, false, async (p) => {
    await assert.rejects(p, ConnectionLostError);
  });
});

Deno.test("client: a request times out on time even when its publish's OK never comes", async () => {
  const broker = await startTestBroker();
  const proxy = new Proxy(broker.port);
  const c = await connect(`127.0.0.1:${proxy.port}`, { runtime: denoRuntime, reconnect: false });
  try {
    await c.request("topic:warm.up", "x", { timeoutMs: 50 }).catch(() => {}); // the inbox SUB
    proxy.swallow = true; // from here the broker's replies, the PUB's OK among them, are lost
    const started = Date.now();
    // Before: request() awaited the OK first, so it hung past its timeout, and
    // the timer's rejection had no handler yet (an unhandled rejection).
    await assert.rejects(c.request("topic:nobody.home", "x", { timeoutMs: 100 }), TimeoutError);
    assert.ok(Date.now() - started < 5000, "rejected by its own timeout, not by a cut");
  } finally {
    proxy.swallow = false;
    await c.close();
    await proxy.close();
    await broker.stop();
  }
});
