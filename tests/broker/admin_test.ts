/**
 * The broker's admin actions over a fake client and a fake clock: purge,
 * peek, DLQ replay, queue delete and durable delete, and what each leaves to
 * the deliveries in flight.
 */
import assert from "node:assert/strict";
import { AdminError, type Broker } from "../../src/broker/mod.ts";
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { LogStore } from "../../src/storage/mod.ts";
import {
  defaultPubOptions,
  defaultQueueDeclareOptions,
  encodeHeaders,
} from "../../src/protocol/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, queueStats, sub, testBroker, topicStats } from "./harness.ts";

const explicit = { ack: "explicit" } as const;

function isAdmin(kind: string) {
  return (e: unknown) => e instanceof AdminError && e.kind === kind;
}

Deno.test("admin purge: ready and delayed go, in-flight ones stay to their ACK", () => {
  const t = testBroker();
  const { broker } = t;
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", { ack: "explicit", prefetch: 2 });
  const ids = ["m1", "m2", "m3", "m4", "m5"].map((x) => pub(broker, "queue:q", x));
  assert.deepEqual(c.texts(), ["m1", "m2"]);
  c.nack(ids[1], 5000); // delayed: purged too
  assert.deepEqual(c.texts(), ["m3"]);
  assert.equal(broker.purgeQueue("q"), 3, "m2 (delayed), m4, m5 (ready)");
  let s = queueStats(broker, "queue:q");
  assert.deepEqual([s.depth, s.delayed, s.inflight, s.purged], [0, 0, 2, 3]);
  c.ack(ids[0]);
  advance(t, 6000);
  assert.deepEqual(c.texts(), [], "the delayed one does not come back");
  // An in-flight message given back after the purge is delivered again: it was taken before.
  c.nack(ids[2]);
  assert.deepEqual(c.take().map((m) => [m.text, m.delivery]), [["m3", 2]]);
  pub(broker, "queue:q", "m6");
  assert.deepEqual(c.texts(), ["m6"], "the queue works on");
  s = queueStats(broker, "queue:q");
  assert.deepEqual([s.depth, s.inflight, s.acked], [0, 2, 1]);
  assert.throws(() => broker.purgeQueue("queue:nope"), isAdmin("NOT_FOUND"));
});

Deno.test("admin peek: the next N in delivery order, headers and preview, nothing taken", () => {
  const { broker } = testBroker();
  const hdr = encodeHeaders([["Trace", "abc"], ["X-Two", "2"]]);
  const body = new TextEncoder().encode('{"order":1}');
  const payload = new Uint8Array([...hdr, ...body]);
  const withHdr = broker.publish("queue:q", payload, {
    ...defaultPubOptions(),
    hdrBytes: hdr.length,
    correlationId: "c-1",
  }) as number;
  pub(broker, "queue:q", "low");
  const urgent = pub(broker, "queue:q", "urgent", { priority: 9 });
  pub(broker, "queue:q", "x".repeat(5000));
  const peek = broker.peekQueue("queue:q", 3);
  assert.deepEqual(peek.map((m) => m.id), [urgent, withHdr, peek[2].id]);
  assert.deepEqual(peek[1].headers, [["Trace", "abc"], ["X-Two", "2"]]);
  assert.equal(peek[1].body_preview, '{"order":1}');
  assert.equal(peek[1].correlation_id, "c-1");
  assert.equal(peek[1].body_bytes, body.length);
  assert.equal(peek[2].body_preview, "low");
  const big = broker.peekQueue("queue:q", 10)[3];
  assert.equal(big.truncated, true);
  assert.equal(big.body_preview.length, 1024);
  assert.equal(big.body_bytes, 5000);
  // Nothing moved: a consumer gets them all in the same order, first deliveries.
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", explicit);
  const got = c.take();
  assert.deepEqual(got.map((m) => m.id).slice(0, 3), peek.map((m) => m.id));
  assert.ok(got.every((m) => m.delivery === 1));
  assert.equal(queueStats(broker, "queue:q").delivered, 4);
  assert.throws(() => broker.peekQueue("queue:q", 0), isAdmin("BAD_REQUEST"));
  assert.throws(() => broker.peekQueue("queue:q", 101), isAdmin("BAD_REQUEST"));
});

Deno.test("admin peek: binary bodies come as base64, a cut keeps whole characters", () => {
  const { broker } = testBroker();
  broker.publish("queue:b", new Uint8Array([0xff, 0xfe, 0x00, 0x01]), undefined);
  pub(broker, "queue:b", "é".repeat(600)); // 1200 bytes: the cut at 1024 falls on a boundary
  pub(broker, "queue:b", "a" + "é".repeat(600)); // the cut at 1024 splits a character
  const [bin, even, odd] = broker.peekQueue("b", 3);
  assert.equal(bin.preview_encoding, "base64");
  assert.equal(bin.body_preview, btoa("\xff\xfe\x00\x01"));
  assert.equal(even.preview_encoding, "utf8");
  assert.equal(even.body_preview, "é".repeat(512));
  assert.equal(odd.preview_encoding, "utf8");
  assert.equal(odd.body_preview, "a" + "é".repeat(511));
  assert.equal(odd.truncated, true);
});

Deno.test("admin replay: dead letters go back to their queue in order, fresh deliveries", () => {
  const { broker } = testBroker({ maxDeliveries: 1 });
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", explicit);
  const ids = ["p1", "p2", "p3"].map((x) =>
    pub(broker, "queue:q", x, { priority: x === "p2" ? 7 : 0 })
  );
  for (const id of ids) c.nack(id);
  assert.equal(queueStats(broker, "queue:q.dlq").depth, 3);
  c.take();
  // A DLQ consumer holds one in flight: it stays there.
  const d = new FakeClient();
  const ds = sub(broker, d, "queue:q.dlq", "d", { ack: "explicit", prefetch: 1 });
  const [held] = d.take();
  ds.close(false); // given back: ready again in the DLQ
  sub(broker, d, "queue:q.dlq", "d2", { ack: "explicit", prefetch: 1 });
  assert.equal(d.take()[0].id, held.id);
  const r = broker.replayDeadLetters("queue:q.dlq");
  assert.deepEqual(r, { moved: 2, left: 0 });
  const got = c.take();
  assert.deepEqual(got.map((m) => [m.text, m.delivery]), [["p1", 1], ["p3", 1]]);
  assert.ok(got.every((m) => !ids.includes(m.id)), "new ids in the queue");
  const dlq = queueStats(broker, "queue:q.dlq");
  assert.deepEqual([dlq.depth, dlq.inflight], [0, 1]);
  assert.throws(() => broker.replayDeadLetters("queue:other"), isAdmin("NOT_FOUND"));
});

Deno.test("admin replay: a declared queue's own dead-letter queue, named either way", async () => {
  const { broker } = testBroker();
  await broker.declareQueue("queue:pay", {
    ...defaultQueueDeclareOptions(),
    maxDeliveries: 1,
    dlq: "queue:pay-failures",
  });
  const c = new FakeClient();
  const s = sub(broker, c, "queue:pay", "s", explicit);
  for (const x of ["a", "b"]) c.nack(pub(broker, "queue:pay", x));
  s.close(false);
  assert.equal(queueStats(broker, "queue:pay-failures").depth, 2);
  assert.deepEqual(broker.replayDeadLetters("queue:pay-failures", 1), { moved: 1, left: 1 });
  assert.deepEqual(broker.replayDeadLetters("pay"), { moved: 1, left: 0 });
  assert.equal(queueStats(broker, "queue:pay").depth, 2);
});

Deno.test("admin replay: stops at the queue's capacity and says how many are left", () => {
  const { broker } = testBroker({ maxDeliveries: 1, queueMessagesMax: 3 });
  const c = new FakeClient();
  const s = sub(broker, c, "queue:q", "s", explicit);
  for (let i = 0; i < 3; i++) c.nack(pub(broker, "queue:q", `dead${i}`));
  s.close(false);
  for (let i = 0; i < 2; i++) pub(broker, "queue:q", `live${i}`);
  assert.deepEqual(broker.replayDeadLetters("q"), { moved: 1, left: 2 });
  assert.deepEqual(broker.replayDeadLetters("q", 5), { moved: 0, left: 2 });
  assert.equal(queueStats(broker, "queue:q").depth, 3);
});

Deno.test("admin delete queue: only an empty one without consumers", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  const s = sub(broker, c, "queue:q", "s", explicit);
  assert.throws(() => broker.deleteQueue("q"), isAdmin("CONFLICT"));
  s.close(false);
  pub(broker, "queue:q", "x");
  assert.throws(() => broker.deleteQueue("q"), /holds 1 messages; purge it first/);
  broker.purgeQueue("q");
  broker.deleteQueue("q");
  assert.equal(broker.queues.has("queue:q"), false);
  assert.throws(() => broker.deleteQueue("q"), isAdmin("NOT_FOUND"));
});

Deno.test("admin delete durable: not while used; gone from stats once deleted", async () => {
  const { broker } = testBroker();
  await broker.declare("topic:x", { messages: 100, bytes: undefined, ageMs: undefined });
  const c = new FakeClient();
  const s = sub(broker, c, "topic:x", "d", { durable: "billing", start: { kind: "first" } });
  await assert.rejects(async () => await broker.deleteDurable("x", "billing"), isAdmin("CONFLICT"));
  s.close(false);
  await broker.deleteDurable("topic:x", "billing");
  assert.deepEqual(topicStats(broker, "topic:x").durables, []);
  await assert.rejects(
    async () => await broker.deleteDurable("x", "billing"),
    isAdmin("NOT_FOUND"),
  );
  await assert.rejects(async () => await broker.deleteDurable("nope", "b"), isAdmin("NOT_FOUND"));
});

Deno.test("admin on the log store: purge and replay survive a restart exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-admin-log-" });
  const open = () => LogStore.open({ dir, fs: nodeFileSystem, fsync: "always" });
  try {
    let store = open();
    let { broker } = testBroker({ store, maxDeliveries: 1 });
    const c = new FakeClient();
    const s = sub(broker, c, "queue:q", "s", explicit);
    for (const x of ["d1", "d2"]) c.nack(await pubDurable(broker, "queue:q", x));
    s.close(false);
    for (const x of ["r1", "r2", "r3"]) await pubDurable(broker, "queue:p", x);
    assert.equal(broker.purgeQueue("queue:p"), 3);
    assert.deepEqual(broker.replayDeadLetters("queue:q"), { moved: 2, left: 0 });
    await store.synced();
    await store.close();
    store = open();
    ({ broker } = testBroker({ store }));
    assert.equal(broker.queues.has("queue:p"), false, "purged: nothing comes back");
    assert.equal(broker.queues.has("queue:q.dlq"), false, "replayed: the DLQ is empty");
    const d = new FakeClient();
    sub(broker, d, "queue:q", "s", explicit);
    assert.deepEqual(d.texts(), ["d1", "d2"]);
    await store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function pubDurable(broker: Broker, dest: string, text: string): Promise<number> {
  return await broker.publish(dest, new TextEncoder().encode(text), undefined);
}
