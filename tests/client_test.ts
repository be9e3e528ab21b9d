/**
 * The client SDK against a real broker: a child process (`main.ts serve`)
 * over real TCP. One broker serves the round-trip steps; the reconnect test
 * has its own, which it kills and restarts on the same port.
 */
import assert from "node:assert/strict";
import {
  BadArgumentError,
  BadDestinationError,
  BadFilterError,
  BufferFullError,
  connect,
  ConnectError,
  ConnectionClosedError,
  ConnectionLostError,
  DurableInUseError,
  NotDeclaredError,
  PayloadTooLargeError,
  QueueFullError,
  ShuttingDownError,
  type StatusEvent,
  TimeoutError,
} from "../src/client/mod.ts";
import { BrokerProcess, freePort, take } from "./client_helpers.ts";
import { clientsOf, countingLines } from "./sdk_helpers.ts";
import { waitFor } from "./helpers.ts";

const enc = new TextEncoder();

Deno.test("client against a real broker", async (t) => {
  const broker = await BrokerProcess.start([
    "--queue-max-messages",
    "60",
    "--max-payload",
    "65536",
    "--ping-interval",
    "200",
  ]);
  const { open, closeAll } = clientsOf(broker.address);
  try {
    await t.step("publish and subscribe on a topic, with every message option", async () => {
      const c = await open();
      const sub = await c.subscribe("topic:events.*");
      const id = await c.publish("topic:events.eu", enc.encode("hello"), {
        headers: { "Trace-Id": "abc", "X-Empty": "" },
        priority: 7,
        ttlMs: 60_000,
        correlationId: "c-1",
        replyTo: "topic:replies",
        contentType: "text/plain",
      });
      assert.match(id, /^\d+$/);
      const [msg] = await take(sub, 1);
      assert.equal(msg.id, id);
      assert.equal(msg.dest, "topic:events.eu");
      assert.equal(msg.subId, sub.id);
      assert.equal(msg.text(), "hello");
      assert.deepEqual(msg.headers, { "Trace-Id": "abc", "X-Empty": "" });
      assert.equal(msg.priority, 7);
      assert.equal(msg.ttlMs, 60_000);
      assert.equal(msg.correlationId, "c-1");
      assert.equal(msg.replyTo, "topic:replies");
      assert.equal(msg.contentType, "text/plain");
      assert.equal(msg.deliveryCount, 1);
      await msg.ack(); // a no-op for ack:none
      await c.publishJson("topic:events.us", { n: 1 });
      const [json] = await take(sub, 1);
      assert.deepEqual(json.json(), { n: 1 });
      assert.equal(json.contentType, "application/json");
      assert.deepEqual(json.headers, {});
      await sub.unsubscribe();
      assert.deepEqual(await take(sub, 1), []); // the loop has ended
    });

    await t.step("queue: ack settles, nack redelivers with a delivery count", async () => {
      const c = await open();
      for (let i = 0; i < 3; i++) {
        await c.publish("queue:work", `job-${i}`, { priority: i === 2 ? 9 : 0 });
      }
      const sub = await c.subscribe("queue:work", { prefetch: 10, ackTimeoutMs: 60_000 });
      const first = await take(sub, 3);
      assert.deepEqual(first.map((m) => m.text()), ["job-2", "job-0", "job-1"]);
      await first[0].ack({ confirm: true });
      await first[1].ack();
      await first[2].nack({ confirm: true });
      const [again] = await take(sub, 1);
      assert.equal(again.text(), "job-1");
      assert.equal(again.deliveryCount, 2);
      assert.ok(again.redelivered);
      await again.ack({ confirm: true });
      await c.flush();
      const other = await open();
      const sub2 = await other.subscribe("queue:work");
      assert.deepEqual(await take(sub2, 1, 300).catch(() => []), []);
    });

    await t.step("acks batched in one tick all settle (split over several ACK lines)", async () => {
      const c = await open();
      const errors: StatusEvent[] = [];
      c.onStatus((e) => e.type === "error" && errors.push(e));
      for (let i = 0; i < 50; i++) c.publishNoWait("queue:batch", `${i}`);
      await c.flush();
      const sub = await c.subscribe("queue:batch", { prefetch: 50 });
      const msgs = await take(sub, 50);
      await Promise.all(msgs.slice(0, 25).map((m) => m.ack({ confirm: true })));
      for (const m of msgs.slice(25)) m.ack();
      await c.flush();
      assert.deepEqual(errors, []);
      await sub.unsubscribe();
      const check = await c.subscribe("queue:batch");
      assert.deepEqual(await take(check, 1, 200).catch(() => []), []);
    });

    await t.step("nack with a delay comes back after the delay", async () => {
      const c = await open();
      await c.publish("queue:delayed", "later");
      const sub = await c.subscribe("queue:delayed");
      const [m] = await take(sub, 1);
      const t0 = Date.now();
      await m.nack({ delayMs: 200, confirm: true });
      const [again] = await take(sub, 1);
      assert.ok(Date.now() - t0 >= 150, `redelivered after ${Date.now() - t0} ms`);
      assert.equal(again.deliveryCount, 2);
      await again.ack();
    });

    await t.step("request/reply over reply_to and correlation_id, and its timeout", async () => {
      const responder = await open();
      await responder.subscribe("queue:rpc.echo", {
        callback: async (m) => {
          await m.respond(`echo:${m.text()}`);
          await m.ack();
        },
      });
      const c = await open();
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => c.request("queue:rpc.echo", `${i}`)),
      );
      assert.deepEqual(
        replies.map((r) => r.text()),
        Array.from({ length: 20 }, (_, i) => `echo:${i}`),
      );
      await assert.rejects(c.request("topic:nobody.home", "x", { timeoutMs: 100 }), TimeoutError);
    });

    await t.step("errors map to typed classes; replies stay matched after errors", async () => {
      const c = await open();
      const events: StatusEvent[] = [];
      c.onStatus((e) => events.push(e));
      await assert.rejects(c.publish("topic:a.*", "x"), BadDestinationError);
      await assert.rejects(c.subscribe("queue:q.*"), BadDestinationError);
      // max_payload comes from INFO: refused before sending, connection intact.
      assert.equal(c.info?.max_payload, 65536);
      await assert.rejects(c.publish("topic:a", new Uint8Array(70_000)), PayloadTooLargeError);
      // QUEUE_FULL comes from the broker (queue limit 60).
      const results = await Promise.allSettled(
        Array.from({ length: 65 }, (_, i) => c.publish("queue:full", `${i}`)),
      );
      const ok = results.filter((r) => r.status === "fulfilled").length;
      assert.equal(ok, 60);
      for (const r of results.slice(60)) {
        assert.equal(r.status, "rejected");
        assert.ok((r as PromiseRejectedResult).reason instanceof QueueFullError);
      }
      // A fire-and-forget failure becomes a status event, and the next
      // publish still gets its own reply.
      c.publishNoWait("queue:full", "overflow");
      const id = await c.publish("topic:a", "after");
      assert.match(id, /^\d+$/);
      await waitFor(() => events.some((e) => e.type === "error"), 2000, "error event");
      const err = events.find((e) => e.type === "error") as { error: Error };
      assert.ok(err.error instanceof QueueFullError);
      // Drain the full queue so later steps start clean.
      const sub = await c.subscribe("queue:full", { prefetch: 100 });
      for (const m of await take(sub, 60)) m.ack();
      await c.flush();
    });

    await t.step("connect errors are ConnectError, one clear line", async () => {
      const port = freePort();
      const err = await connect(`127.0.0.1:${port}`).catch((e) => e);
      assert.ok(err instanceof ConnectError);
      assert.match(err.message, new RegExp(`Cannot connect to 127.0.0.1:${port}`));
    });

    await t.step("publishNoWait + flush, and close ends a for-await loop", async () => {
      const c = await open();
      const sub = await c.subscribe("topic:nowait");
      const p = await open();
      for (let i = 0; i < 500; i++) p.publishNoWait("topic:nowait", `${i}`);
      await p.flush();
      const got = await take(sub, 500);
      assert.deepEqual(got.map((m) => Number(m.text())), Array.from({ length: 500 }, (_, i) => i));
      // `for await` calls next() before its first await, so the loop is
      // already waiting for a message when close() runs.
      const loop = (async () => {
        let n = 0;
        for await (const _ of sub) n++;
        return n;
      })();
      await c.close();
      assert.equal(await loop, 0);
      await assert.rejects(c.publish("topic:x", "y"), ConnectionClosedError);
    });

    await t.step("break out of for-await unsubscribes", async () => {
      const c = await open();
      const sub = await c.subscribe("topic:brk");
      await c.publish("topic:brk", "1");
      for await (const _ of sub) break;
      await waitFor(() => sub.closed, 1000, "closed");
      await c.flush();
      await c.publish("topic:brk", "2");
      assert.equal(sub.received, 1);
    });

    await t.step("a full subscription buffer drops and reports slow_consumer", async () => {
      const c = await open();
      const events: StatusEvent[] = [];
      c.onStatus((e) => events.push(e));
      const sub = await c.subscribe("topic:flood", { maxPendingMessages: 5 });
      for (let i = 0; i < 20; i++) c.publishNoWait("topic:flood", `${i}`);
      await c.flush();
      await waitFor(() => sub.received === 20, 2000, "all 20 seen");
      assert.equal(sub.pending, 5);
      assert.equal(sub.dropped, 15);
      assert.equal(events.filter((e) => e.type === "slow_consumer").length, 1);
      const got = await take(sub, 5);
      assert.deepEqual(got.map((m) => m.text()), ["0", "1", "2", "3", "4"]);
    });

    await t.step("drain lets in-flight messages be processed and acked, then closes", async () => {
      const p = await open();
      for (let i = 0; i < 20; i++) p.publishNoWait("queue:drain", `${i}`);
      await p.flush();
      const c = await connect(broker.address, { reconnect: false });
      const sub = await c.subscribe("queue:drain", { prefetch: 20 });
      const processed: string[] = [];
      // Slow work: the loop holds its first message until drain() has begun,
      // so the others wait in the buffer, unacked.
      const work = Promise.withResolvers<void>();
      const loop = (async () => {
        for await (const m of sub) {
          await work.promise;
          processed.push(m.text());
          await m.ack();
        }
      })();
      // All 20 delivered before drain() begins: what arrives after it is left to the broker.
      await waitFor(() => sub.received === 20 && sub.pending === 19, 2000, "messages in flight");
      const drained = c.drain();
      work.resolve();
      await drained;
      await loop;
      assert.ok(c.closed);
      assert.equal(processed.length, 20);
      // Everything was acked: nothing is left or redelivered.
      const check = await p.subscribe("queue:drain");
      assert.deepEqual(await take(check, 1, 300).catch(() => []), []);
    });

    await t.step("drain of a topic subscription hands out what arrived", async () => {
      const c = await connect(broker.address, { reconnect: false });
      const sub = await c.subscribe("topic:drain");
      for (let i = 0; i < 50; i++) c.publishNoWait("topic:drain", `${i}`);
      await c.flush();
      const drained = c.drain();
      const got = await take(sub, 100, 2000);
      await drained;
      assert.equal(got.length, 50);
    });

    await t.step("the broker's PINGs are answered: an idle client stays connected", async () => {
      // The broker's keep-alive PINGs, counted as they arrive.
      const { runtime, count: pings } = countingLines((l) => l === "PING");
      const c = await open({ runtime });
      const events: StatusEvent[] = [];
      c.onStatus((e) => events.push(e));
      // The broker closes a connection after 2 unanswered PINGs instead of
      // sending a third: a third PING means the client answered.
      await waitFor(() => pings() >= 3, 5000, "3 PINGs of the broker");
      assert.ok(c.connected);
      assert.deepEqual(events, []);
      await c.flush();
    });

    await t.step("status() iterates events and ends after closed", async () => {
      const c = await connect(broker.address, { reconnect: false });
      const seen: string[] = [];
      // The iterator registers on its first next(), which `for await` calls at once.
      const reading = (async () => {
        for await (const e of c.status()) seen.push(e.type);
      })();
      await c.close();
      await reading;
      assert.deepEqual(seen, ["closed"]);
    });
  } finally {
    await closeAll();
    await broker.stop();
  }
});

Deno.test("client reconnects after the broker is killed and restarted", async () => {
  const broker = await BrokerProcess.start();
  const events: StatusEvent[] = [];
  const c = await connect(broker.address, {
    reconnectDelayMs: 20,
    reconnectDelayMaxMs: 200,
    reconnectBufferBytes: 1024,
    onStatus: (e) => events.push(e),
  });
  const p = await connect(broker.address, { reconnectDelayMs: 20, reconnectDelayMaxMs: 200 });
  try {
    const topic = await c.subscribe("topic:life");
    const queue = await c.subscribe("queue:life");
    await p.publish("topic:life", "before");
    assert.equal((await take(topic, 1))[0].text(), "before");

    await broker.kill();
    await waitFor(() => events.some((e) => e.type === "disconnected"), 5000, "disconnected");
    assert.ok(!c.connected);
    await waitFor(() => events.some((e) => e.type === "reconnecting"), 5000, "reconnecting");

    // Publishes while down are buffered, up to the bound; beyond it, a typed error.
    const buffered = c.publish("queue:life", "while-down");
    assert.throws(() => c.publishNoWait("queue:life", new Uint8Array(2000)), BufferFullError);
    await assert.rejects(c.publish("queue:life", new Uint8Array(2000)), BufferFullError);

    await broker.restart();
    await waitFor(() => events.some((e) => e.type === "reconnected"), 10_000, "reconnected");
    await waitFor(() => p.connected, 10_000, "publisher reconnected");
    assert.match(await buffered, /^\d+$/);
    assert.equal(c.reconnects, 1);
    assert.deepEqual(
      events.map((e) => e.type).filter((t) => t !== "reconnecting" && t !== "error"),
      ["connected", "disconnected", "reconnected"],
    );

    // Both subscriptions were renewed on the new connection.
    const [q] = await take(queue, 1);
    assert.equal(q.text(), "while-down");
    await q.ack({ confirm: true });
    await c.flush();
    await p.publish("topic:life", "after");
    assert.equal((await take(topic, 1))[0].text(), "after");
    await p.publish("queue:life", "after-q");
    assert.equal((await take(queue, 1))[0].text(), "after-q");

    // A graceful stop: the broker's unsolicited ERR SHUTTING_DOWN is reported,
    // not matched to a pending command, and the client comes back.
    const pending = Array.from(
      { length: 50 },
      (_, i) => c.publish("queue:sd", `${i}`).catch((e) => e),
    );
    await broker.kill("SIGTERM");
    await waitFor(
      () => events.filter((e) => e.type === "disconnected").length === 2,
      5000,
      "2nd drop",
    );
    const drop = events.filter((e) => e.type === "disconnected").at(-1) as { error?: Error };
    assert.ok(drop.error instanceof ShuttingDownError, String(drop.error));
    await broker.restart();
    await waitFor(() => c.reconnects === 2, 10_000, "2nd reconnect");
    await waitFor(() => p.connected, 10_000, "publisher back");
    await p.publish("topic:life", "after-restart");
    assert.equal((await take(topic, 1))[0].text(), "after-restart");
    // Each publish got its OK or, if it was in flight, ConnectionLostError; never the broker's notice.
    for (const r of await Promise.all(pending)) {
      assert.ok(typeof r === "string" || r instanceof ConnectionLostError, String(r));
    }

    // Close while reconnecting ends cleanly, with no timers left behind.
    await broker.kill();
    await waitFor(() => !c.connected, 5000, "disconnected again");
    await c.close();
    assert.ok(c.closed);
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("client gives up after maxReconnectAttempts and closes with an error", async () => {
  const broker = await BrokerProcess.start();
  const events: StatusEvent[] = [];
  const c = await connect(broker.address, {
    reconnectDelayMs: 10,
    reconnectDelayMaxMs: 20,
    maxReconnectAttempts: 3,
    onStatus: (e) => events.push(e),
  });
  try {
    const sub = await c.subscribe("topic:x");
    const loop = (async () => {
      for await (const _ of sub) { /* none */ }
    })();
    await broker.kill();
    await c.done;
    await loop;
    const closed = events.find((e) => e.type === "closed") as { error?: Error };
    assert.ok(closed.error instanceof ConnectionClosedError);
    assert.match(closed.error.message, /after 3 attempts/);
    assert.equal(events.filter((e) => e.type === "reconnecting").length, 3);
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("durable topics: declare, replay, durable resume across close and reconnect", async () => {
  const broker = await BrokerProcess.start();
  const opts = { reconnectDelayMs: 20, reconnectDelayMaxMs: 200 };
  const c = await connect(broker.address, opts);
  const p = await connect(broker.address, opts);
  const t = "topic:dur.orders";
  try {
    // declare: resolves on OK; bad arguments are refused before sending.
    await p.declare(t, { retainMessages: 1000, retainAgeMs: 3_600_000 });
    await assert.rejects(p.declare("queue:dur", { retainMessages: 1 }), BadDestinationError);
    await assert.rejects(p.declare("topic:dur.x", {}), BadArgumentError);
    await assert.rejects(p.declare("topic:dur.x", { retainBytes: 0 }), BadArgumentError);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await p.publish(t, `m${i}`));

    // Replay: start "first" and { id } begin with retained messages.
    const replay = await c.subscribe(t, { start: "first" });
    assert.deepEqual((await take(replay, 3)).map((m) => m.text()), ["m0", "m1", "m2"]);
    const fromId = await p.subscribe(t, { start: { id: ids[1] } });
    assert.deepEqual((await take(fromId, 2)).map((m) => m.id), ids.slice(1));
    await fromId.unsubscribe();

    // Typed errors of the broker.
    await assert.rejects(p.subscribe("topic:dur.nope", { durable: "x" }), NotDeclaredError);
    await assert.rejects(p.subscribe("topic:dur.nope", { start: "first" }), NotDeclaredError);

    // A durable: created at "first"; two of three acked; another user is refused.
    const d1c = await connect(broker.address, { reconnect: false });
    const d1 = await d1c.subscribe(t, { durable: "billing", start: "first" });
    assert.equal(d1.ackMode, "explicit");
    assert.equal(d1.durable, "billing");
    const first = await take(d1, 3);
    assert.deepEqual(first.map((m) => m.text()), ["m0", "m1", "m2"]);
    await first[0].ack({ confirm: true });
    await first[1].ack({ confirm: true });
    await assert.rejects(p.subscribe(t, { durable: "billing" }), DurableInUseError);
    await d1c.close();
    ids.push(await p.publish(t, "m3"));
    assert.equal((await take(replay, 1))[0].text(), "m3");

    // Resume on another connection: the unacked m2 comes again, then m3; start is ignored.
    const d2 = await c.subscribe(t, { durable: "billing", start: "new" });
    const resumed = await take(d2, 2);
    assert.deepEqual(resumed.map((m) => m.id), ids.slice(2));
    await resumed[0].ack({ confirm: true }); // m3 stays unacked

    // The broker stops and comes back: the client renews the durable with its name and
    // without start, so it resumes at the stored position (m3 again); the plain replay
    // is renewed without start too, so it does not replay its history.
    const reconnected = c.reconnects + 1;
    await broker.kill("SIGTERM");
    await broker.restart();
    await waitFor(() => c.reconnects === reconnected && p.connected, 10_000, "reconnect");
    const [again] = await take(d2, 1);
    assert.equal(again.id, ids[3]);
    assert.equal(again.text(), "m3");
    await again.ack({ confirm: true });
    await c.flush();
    ids.push(await p.publish(t, "m4"));
    assert.equal((await take(replay, 1))[0].text(), "m4");
    assert.equal((await take(d2, 1))[0].id, ids[4]);

    // forget: true deletes the durable; a new one with the name starts afresh at its start.
    await assert.rejects(replay.unsubscribe({ forget: true }), BadArgumentError);
    await d2.unsubscribe({ forget: true });
    const d3 = await c.subscribe(t, { durable: "billing", start: { time: 0 } });
    assert.deepEqual((await take(d3, 5)).map((m) => m.id), ids);
    await d3.unsubscribe({ forget: true });
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("filters and bindings: subscribe with a filter, bind and unbind", async () => {
  const broker = await BrokerProcess.start();
  const c = await connect(broker.address);
  try {
    // Bad selectors and destinations are refused before anything is sent.
    await assert.rejects(c.subscribe("topic:f", { filter: "region =" }), BadFilterError);
    await assert.rejects(c.bind("topic:f", "queue:x", { filter: "a LIKE 5" }), BadFilterError);
    await assert.rejects(c.bind("queue:f", "queue:x"), BadDestinationError);
    await assert.rejects(c.bind("topic:f", "topic:x"), BadDestinationError);

    const quote = `it's "quoted" \\ too`;
    const eu = await c.subscribe("topic:f.*", {
      filter: `region = 'eu' OR note = '${quote.replaceAll("'", "''")}'`,
    });
    await c.bind("topic:f.>", "queue:f.audit", { filter: "priority >= 5" });
    const pub = (region: string, priority: number, note = "") =>
      c.publish("topic:f.a", enc.encode(region), { headers: { region, note }, priority });
    await pub("us", 1);
    await pub("eu", 7);
    await pub("us", 9, quote);
    assert.deepEqual((await take(eu, 2)).map((m) => m.text()), ["eu", "us"]);
    const audit = await c.subscribe("queue:f.audit", { ack: "none" });
    assert.deepEqual((await take(audit, 2)).map((m) => m.text()), ["us", "eu"]);
    await c.unbind("topic:f.>", "queue:f.audit");
    await pub("eu", 8);
    assert.deepEqual((await take(eu, 1)).map((m) => m.text()), ["eu"]);
    // Unbound: the next thing in the queue is what is published to it directly.
    await c.publish("queue:f.audit", enc.encode("direct"));
    assert.deepEqual((await take(audit, 1)).map((m) => m.text()), ["direct"]);
  } finally {
    await c.close();
    await broker.stop();
  }
});
