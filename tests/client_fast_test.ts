/**
 * The SDK's fast publish paths against a real broker (a child process over
 * real TCP): `publishNoWait` in quiet runs (no `OK` per message, errors on
 * the status stream), `batch()` (one promise for many publishes), and what
 * must still hold on them: order, exact reply matching, the reconnect
 * buffer, and back-pressure through `BufferFullError`.
 */
import assert from "node:assert/strict";
import {
  BadDestinationError,
  BufferFullError,
  connect,
  type Message,
  QueueFullError,
  type StatusEvent,
} from "../src/client/mod.ts";
import { QUIET_AFTER } from "../src/client/link.ts";
import { BrokerProcess } from "./client_helpers.ts";
import { clientsOf, countingLines } from "./sdk_helpers.ts";
import { waitFor } from "./helpers.ts";

/** Collects `n` messages of a callback subscription, bounded by `timeoutMs`. */
function collector(n: number): { seen: Message[]; all: (timeoutMs?: number) => Promise<void> } {
  const seen: Message[] = [];
  return {
    seen,
    all: (timeoutMs = 10_000) => waitFor(() => seen.length >= n, timeoutMs, `${n} messages`),
  };
}

Deno.test("fast publish paths against a real broker", async (t) => {
  const broker = await BrokerProcess.start([
    "--queue-max-messages",
    "10",
    "--max-payload",
    "1048576",
  ]);
  const { open, closeAll } = clientsOf(broker.address);
  try {
    await t.step(
      "a quiet run delivers in order, mixes with awaited publishes, sends no OKs",
      async () => {
        const sub = await open();
        const got = collector(2001);
        await sub.subscribe("topic:quiet", { callback: (m) => void got.seen.push(m) });
        const counted = countingLines((l) => l.startsWith("OK"));
        const pub = await open({ runtime: counted.runtime });
        const before = counted.count(); // the handshake's
        for (let i = 0; i < 1000; i++) pub.publishNoWait("topic:quiet", `${i}`);
        const id = await pub.publish("topic:quiet", "1000");
        assert.match(id, /^\d+$/);
        for (let i = 1001; i < 2001; i++) pub.publishNoWait("topic:quiet", `${i}`);
        await pub.flush();
        await got.all();
        assert.deepEqual(
          got.seen.map((m) => m.text()),
          Array.from({ length: 2001 }, (_, i) => `${i}`),
        );
        assert.equal(got.seen[1000].id, id, "the awaited publish's id is the delivered one's");
        // Without quiet runs every publish gets an OK (2001); with them, only
        // the first QUIET_AFTER of each run, the awaited publish, and the OKs
        // of the CONNECTs that end the two runs (before the publish, the flush).
        assert.equal(counted.count() - before, 2 * (QUIET_AFTER - 1) + 1 + 2);
      },
    );

    await t.step(
      "errors of a quiet run are status events, all in by flush(); replies stay matched",
      async () => {
        const c = await open();
        const errors: Error[] = [];
        c.onStatus((e) => {
          if (e.type === "error") errors.push(e.error);
        });
        for (let i = 0; i < 40; i++) c.publishNoWait("queue:fastfull", `${i}`);
        await c.flush(); // no wait for events: the flush's PONG comes after every ERR
        assert.equal(errors.length, 30);
        assert.ok(errors.every((e) => e instanceof QueueFullError), String(errors[0]));
        // The next commands get their own answers, not a quiet run's errors.
        assert.match(await c.publish("topic:fastok", "x"), /^\d+$/);
        await assert.rejects(c.publish("queue:fastfull", "one more"), QueueFullError);
        for (let i = 0; i < 40; i++) c.publishNoWait("queue:fastfull", "again");
        await assert.rejects(c.publish("queue:fastfull", "awaited"), QueueFullError);
        await c.flush();
        assert.equal(errors.length, 70);
        // Empty the queue for the steps after.
        const sub = await c.subscribe("queue:fastfull", { prefetch: 100 });
        let n = 0;
        for await (const m of sub) {
          await m.ack({ confirm: true });
          if (++n === 10) break;
        }
        await sub.unsubscribe();
      },
    );

    await t.step("unconfirmed acks inside a quiet run settle their messages", async () => {
      const c = await open();
      const errors: StatusEvent[] = [];
      c.onStatus((e) => e.type === "error" && errors.push(e));
      for (let i = 0; i < 10; i++) await c.publish("queue:fastacks", `${i}`);
      const sub = await c.subscribe("queue:fastacks", { prefetch: 100 });
      let n = 0;
      for await (const m of sub) {
        // A consumer that publishes results: its acks go out inside quiet runs.
        for (let k = 0; k < QUIET_AFTER * 2; k++) c.publishNoWait("topic:fastresults", m.text());
        m.ack();
        if (++n === 10) break;
      }
      await c.flush();
      assert.deepEqual(errors, []);
      // Unacked messages would come back to a new consumer once the first one leaves.
      await sub.unsubscribe();
      const check = await c.subscribe("queue:fastacks", { prefetch: 100 });
      await c.flush();
      assert.equal(check.pending, 0);
      assert.equal(check.received, 0);
      await check.unsubscribe();
    });

    await t.step("batch: one promise for many publishes, failures by index", async () => {
      const c = await open();
      const got = collector(5);
      await c.subscribe("topic:fastbatch", { callback: (m) => void got.seen.push(m) });
      const batch = c.batch();
      for (let i = 0; i < 12; i++) batch.publish("queue:fastbatch", `${i}`);
      for (let i = 0; i < 5; i++) batch.publish("topic:fastbatch", `t${i}`);
      assert.throws(() => batch.publish("topic:bad dest", "x"), BadDestinationError);
      assert.equal(batch.sent, 17, "a refused publish is not part of the batch");
      const r = await batch.done();
      assert.equal(r.sent, 17);
      assert.equal(r.accepted, 15);
      assert.deepEqual(r.errors.map((e) => e.index), [10, 11]);
      assert.ok(r.errors.every((e) => e.error instanceof QueueFullError));
      await got.all();
      assert.equal(r.lastId, got.seen[4].id);
      assert.throws(() => batch.publish("topic:fastbatch", "late"), TypeError);
      // Publishes retried after a drop (dedup ids) settle through their own entries.
      const retrying = await open({ retryPublishes: true });
      const again = retrying.batch();
      for (let i = 0; i < 5; i++) again.publish("topic:fastbatch", `r${i}`);
      const ra = await again.done();
      assert.equal(ra.accepted, 5);
      assert.match(ra.lastId ?? "", /^\d+$/);
      assert.deepEqual(await c.batch().done(), {
        sent: 0,
        accepted: 0,
        lastId: undefined,
        errors: [],
      });
      const sub = await c.subscribe("queue:fastbatch", { prefetch: 100 });
      let n = 0;
      for await (const m of sub) {
        await m.ack({ confirm: true });
        if (++n === 10) break;
      }
      await sub.unsubscribe();
    });

    await t.step(
      "back-pressure: publishNoWait throws BufferFullError, and goes on after flush",
      async () => {
        const c = await open();
        const body = new Uint8Array(1024 * 1024 - 64);
        let thrown: unknown;
        let sent = 0;
        for (let i = 0; i < 200 && thrown === undefined; i++) {
          try {
            c.publishNoWait("topic:fastflood", body);
            sent++;
          } catch (err) {
            thrown = err;
          }
        }
        assert.ok(thrown instanceof BufferFullError, String(thrown));
        assert.ok(sent >= 64, `${sent} sent before the buffer was full`);
        await c.flush();
        c.publishNoWait("topic:fastflood", body);
        await c.flush();
      },
    );
  } finally {
    await closeAll();
    await broker.stop();
  }
});

Deno.test("publishNoWait across a reconnect: buffered in order, then quiet again", async () => {
  const broker = await BrokerProcess.start();
  const events: StatusEvent[] = [];
  const c = await connect(broker.address, {
    reconnectDelayMs: 20,
    reconnectDelayMaxMs: 200,
    reconnectBufferBytes: 4096,
    onStatus: (e) => events.push(e),
  });
  try {
    for (let i = 0; i < 100; i++) c.publishNoWait("topic:fastlife", `${i}`); // a quiet run
    await c.flush();
    await broker.kill();
    await waitFor(() => events.some((e) => e.type === "reconnecting"), 5000, "reconnecting");
    for (let i = 0; i < 100; i++) c.publishNoWait("queue:fastlife", `down-${i}`);
    assert.throws(() => c.publishNoWait("queue:fastlife", new Uint8Array(4096)), BufferFullError);
    await broker.restart();
    await waitFor(() => events.some((e) => e.type === "reconnected"), 10_000, "reconnected");
    for (let i = 0; i < 100; i++) c.publishNoWait("queue:fastlife", `up-${i}`);
    await c.flush();
    assert.deepEqual(events.filter((e) => e.type === "error"), []);
    const sub = await c.subscribe("queue:fastlife", { prefetch: 1000 });
    const texts: string[] = [];
    for await (const m of sub) {
      texts.push(m.text());
      m.ack();
      if (texts.length === 200) break;
    }
    assert.deepEqual(texts, [
      ...Array.from({ length: 100 }, (_, i) => `down-${i}`),
      ...Array.from({ length: 100 }, (_, i) => `up-${i}`),
    ]);
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("quiet runs under authentication: the toggling CONNECT needs no credentials again", async () => {
  const broker = await BrokerProcess.start(["--auth-token", "fast-secret-token"]);
  const opts = { reconnect: false, token: "fast-secret-token" };
  const sub = await connect(broker.address, opts);
  const pub = await connect(broker.address, opts);
  try {
    const got = collector(300);
    await sub.subscribe("topic:fastauth", { callback: (m) => void got.seen.push(m) });
    const errors: StatusEvent[] = [];
    pub.onStatus((e) => e.type === "error" && errors.push(e));
    for (let i = 0; i < 150; i++) pub.publishNoWait("topic:fastauth", `${i}`);
    assert.match(await pub.publish("topic:fastauth", "150"), /^\d+$/);
    for (let i = 151; i < 300; i++) pub.publishNoWait("topic:fastauth", `${i}`);
    await pub.flush();
    await got.all();
    assert.deepEqual(got.seen.map((m) => m.text()), Array.from({ length: 300 }, (_, i) => `${i}`));
    assert.deepEqual(errors, []);
    assert.ok(pub.connected);
  } finally {
    await Promise.all([sub.close(), pub.close()]);
    await broker.stop();
  }
});
