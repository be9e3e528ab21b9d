/**
 * Queue semantics over a fake client and a fake clock: competing consumers,
 * prefetch, priority, ack timeouts, TTL, NACK, redelivery on close, and
 * dead-lettering. No sockets, no real time.
 */
import assert from "node:assert/strict";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, queueStats, sub, testBroker } from "./harness.ts";

const explicit = { ack: "explicit" } as const;

Deno.test("queue: competing consumers take turns, each message to exactly one", () => {
  const { broker } = testBroker();
  const a = new FakeClient();
  const b = new FakeClient();
  const c = new FakeClient();
  sub(broker, a, "queue:q", "a", explicit);
  sub(broker, b, "queue:q", "b", explicit);
  sub(broker, c, "queue:q", "c", explicit);
  for (let i = 1; i <= 7; i++) pub(broker, "queue:q", `m${i}`);
  assert.deepEqual(a.texts(), ["m1", "m4", "m7"]);
  assert.deepEqual(b.texts(), ["m2", "m5"]);
  assert.deepEqual(c.texts(), ["m3", "m6"]);
});

Deno.test("queue: round-robin skips a consumer without prefetch room", () => {
  const { broker } = testBroker();
  const a = new FakeClient();
  const b = new FakeClient();
  sub(broker, a, "queue:q", "a", { ack: "explicit", prefetch: 1 });
  sub(broker, b, "queue:q", "b", { ack: "explicit", prefetch: 10 });
  const ids = ["m1", "m2", "m3", "m4"].map((t) => pub(broker, "queue:q", t));
  assert.deepEqual(a.texts(), ["m1"]);
  assert.deepEqual(b.texts(), ["m2", "m3", "m4"]);
  // a's ACK gives it room again; the next message goes to it, not to b.
  a.ack(ids[0]);
  pub(broker, "queue:q", "m5");
  assert.deepEqual(a.texts(), ["m5"]);
  assert.deepEqual(b.texts(), []);
});

Deno.test("queue: prefetch limits deliveries in flight; each ACK frees one slot", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", { ack: "explicit", prefetch: 2 });
  const ids = ["m1", "m2", "m3", "m4", "m5"].map((t) => pub(broker, "queue:q", t));
  assert.deepEqual(c.texts(), ["m1", "m2"]);
  assert.equal(c.inflight.size, 2);
  assert.equal(queueStats(broker, "queue:q").depth, 3);
  c.ack(ids[1]);
  assert.deepEqual(c.texts(), ["m3"]);
  c.ack(ids[0]);
  assert.deepEqual(c.texts(), ["m4"]);
  c.ack(ids[2]);
  c.ack(ids[3]);
  assert.deepEqual(c.texts(), ["m5"]);
  c.ack(ids[4]);
  const s = queueStats(broker, "queue:q");
  assert.deepEqual([s.depth, s.inflight, s.delivered, s.acked], [0, 0, 5, 5]);
});

Deno.test("queue: without explicit acks prefetch does not hold deliveries back", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", { ack: "none", prefetch: 1 });
  const ids = ["m1", "m2", "m3"].map((t) => pub(broker, "queue:q", t));
  assert.deepEqual(c.texts(), ["m1", "m2", "m3"]);
  assert.equal(c.inflight.size, 0);
  assert.deepEqual(c.noAckIds, ids);
  assert.equal(queueStats(broker, "queue:q").acked, 3);
});

Deno.test("queue: higher priority first, FIFO within a priority", () => {
  const { broker } = testBroker();
  const order: [string, number][] = [
    ["a0", 0],
    ["b5", 5],
    ["c0", 0],
    ["d9", 9],
    ["e5", 5],
    ["f0", 0],
    ["g9", 9],
  ];
  for (const [t, priority] of order) pub(broker, "queue:q", t, { priority });
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", explicit);
  assert.deepEqual(c.texts(), ["d9", "g9", "b5", "e5", "a0", "c0", "f0"]);
});

Deno.test("queue: a consumer that is not writable gets nothing until it activates again", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  c.writable = false;
  const s = sub(broker, c, "queue:q", "s", explicit);
  pub(broker, "queue:q", "m1");
  pub(broker, "queue:q", "m2");
  assert.deepEqual(c.texts(), []);
  c.writable = true;
  s.activate();
  assert.deepEqual(c.texts(), ["m1", "m2"]);
});

Deno.test("ack timeout: an unacked delivery is redelivered with delivery 2 at its deadline", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", { ack: "explicit", ackTimeoutMs: 1000 });
  const id = pub(t.broker, "queue:q", "m1");
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[id, 1]]);
  advance(t, 999);
  assert.deepEqual(c.take(), []);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery, m.text]), [[id, 2, "m1"]]);
  // The redelivery has its own deadline, a full timeout later.
  advance(t, 999);
  assert.deepEqual(c.take(), []);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => m.delivery), [3]);
  const s = queueStats(t.broker, "queue:q");
  assert.deepEqual([s.delivered, s.redelivered, s.inflight], [3, 2, 1]);
});

// Regression: found by this test (src/broker/subscription.ts expireAcks + src/broker/queue.ts giveBack), fixed with it.
Deno.test({
  name: "ack timeout: several expired deliveries come back in their original order",
  fn() {
    const t = testBroker();
    const c = new FakeClient();
    sub(t.broker, c, "queue:q", "s", { ack: "explicit", ackTimeoutMs: 1000 });
    const ids = ["m1", "m2", "m3"].map((x) => pub(t.broker, "queue:q", x));
    assert.deepEqual(c.texts(), ["m1", "m2", "m3"]);
    advance(t, 1000);
    assert.deepEqual(
      c.take().map((m) => [m.id, m.delivery, m.text]),
      [[ids[0], 2, "m1"], [ids[1], 2, "m2"], [ids[2], 2, "m3"]],
    );
  },
});

Deno.test("ack timeout: expired deliveries go back ahead of messages still queued", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", { ack: "explicit", prefetch: 1, ackTimeoutMs: 1000 });
  const ids = ["m1", "m2"].map((x) => pub(t.broker, "queue:q", x));
  assert.deepEqual(c.texts(), ["m1"]);
  advance(t, 1000);
  assert.deepEqual(c.take().map((m) => [m.text, m.delivery]), [["m1", 2]]);
  c.ack(ids[0]);
  assert.deepEqual(c.take().map((m) => [m.text, m.delivery]), [["m2", 1]]);
});

Deno.test("ack timeout: an ACK before the deadline prevents the redelivery", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", { ack: "explicit", ackTimeoutMs: 1000 });
  const ids = ["m1", "m2"].map((x) => pub(t.broker, "queue:q", x));
  assert.deepEqual(c.texts(), ["m1", "m2"]);
  advance(t, 999);
  c.ack(ids[0]);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[1], 2]]);
  advance(t, 1000);
  advance(t, 1000);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[1], 3], [ids[1], 4]]);
  const s = queueStats(t.broker, "queue:q");
  assert.deepEqual([s.acked, s.redelivered], [1, 3]);
});

Deno.test("ack timeout: the expired message goes to another consumer with room", () => {
  const t = testBroker();
  const a = new FakeClient();
  const b = new FakeClient();
  sub(t.broker, a, "queue:q", "a", { ack: "explicit", ackTimeoutMs: 1000 });
  const id = pub(t.broker, "queue:q", "m1");
  assert.deepEqual(a.texts(), ["m1"]);
  sub(t.broker, b, "queue:q", "b", { ack: "explicit", ackTimeoutMs: 5000 });
  a.writable = false; // a stalls: its expired message must not wait for it
  advance(t, 1000);
  assert.deepEqual(a.take(), []);
  assert.deepEqual(b.take().map((m) => [m.id, m.delivery]), [[id, 2]]);
  assert.equal(a.inflight.size, 0);
  assert.throws(() => a.ack(id), /not in flight/);
  b.ack(id);
});

Deno.test("TTL: a queued message expires at its TTL, is never delivered and is counted", () => {
  const t = testBroker();
  const c = new FakeClient();
  c.writable = false; // a consumer keeps the queue alive, but takes nothing yet
  const s = sub(t.broker, c, "queue:q", "s", explicit);
  pub(t.broker, "queue:q", "short", { ttlMs: 500 });
  pub(t.broker, "queue:q", "long", { ttlMs: 5000 });
  pub(t.broker, "queue:q", "none");
  advance(t, 499);
  assert.deepEqual(
    [queueStats(t.broker, "queue:q").depth, queueStats(t.broker, "queue:q").expired],
    [3, 0],
  );
  advance(t, 1);
  const st = queueStats(t.broker, "queue:q");
  assert.deepEqual([st.depth, st.size, st.expired], [2, 2, 1]);
  c.writable = true;
  s.activate();
  assert.deepEqual(c.texts(), ["long", "none"]);
});

Deno.test("TTL: an expired message is passed over on delivery even before a sweep", () => {
  const t = testBroker();
  pub(t.broker, "queue:q", "gone", { ttlMs: 100 });
  pub(t.broker, "queue:q", "kept");
  t.clock.advance(100);
  t.broker.tick(); // as a connection does before a batch; no sweep ran
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", explicit);
  assert.deepEqual(c.texts(), ["kept"]);
  assert.equal(queueStats(t.broker, "queue:q").expired, 1);
});

Deno.test("TTL: an in-flight message that expires is not redelivered after its NACK", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", explicit);
  const id = pub(t.broker, "queue:q", "m1", { ttlMs: 100 });
  assert.deepEqual(c.texts(), ["m1"]);
  t.clock.advance(100);
  t.broker.tick();
  c.nack(id);
  assert.deepEqual(c.take(), []);
  const s = queueStats(t.broker, "queue:q");
  assert.deepEqual([s.size, s.inflight, s.expired], [0, 0, 1]);
});

// Regression: found by this test (src/broker/queue.ts giveBack), fixed with it.
Deno.test({
  name: "TTL: an expired in-flight message given back is not counted as redelivered",
  fn() {
    const t = testBroker();
    const c = new FakeClient();
    sub(t.broker, c, "queue:q", "s", explicit);
    const id = pub(t.broker, "queue:q", "m1", { ttlMs: 100 });
    t.clock.advance(100);
    t.broker.tick();
    c.nack(id);
    const s = queueStats(t.broker, "queue:q");
    assert.deepEqual([s.expired, s.redelivered], [1, 0]);
  },
});

Deno.test("NACK: requeued at once at the front, ahead of older queued messages", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", { ack: "explicit", prefetch: 2 });
  const ids = ["m1", "m2", "m3", "m4"].map((t) => pub(broker, "queue:q", t));
  assert.deepEqual(c.texts(), ["m1", "m2"]);
  c.nack(ids[1]);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[1], 2]]);
  c.nack(ids[0]);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 2]]);
  c.ack(ids[0]);
  c.ack(ids[1]);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[2], 1], [ids[3], 1]]);
});

Deno.test("NACK: requeued at the front of its own priority level only", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", { ack: "explicit", prefetch: 1 });
  const low = pub(broker, "queue:q", "low");
  assert.deepEqual(c.texts(), ["low"]);
  pub(broker, "queue:q", "high", { priority: 5 });
  c.nack(low);
  assert.deepEqual(c.take().map((m) => [m.text, m.delivery]), [["high", 1]]);
});

Deno.test("NACK with delay: invisible until the delay passes, then redelivered", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", { ack: "explicit", prefetch: 10 });
  const ids = ["m1", "m2"].map((x) => pub(t.broker, "queue:q", x));
  assert.deepEqual(c.texts(), ["m1", "m2"]);
  c.nack(ids[0], 500);
  assert.deepEqual(c.take(), []);
  let s = queueStats(t.broker, "queue:q");
  assert.deepEqual([s.depth, s.delayed, s.inflight], [0, 1, 1]);
  pub(t.broker, "queue:q", "m3"); // still deliverable meanwhile
  assert.deepEqual(c.texts(), ["m3"]);
  advance(t, 499);
  assert.deepEqual(c.take(), []);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 2]]);
  s = queueStats(t.broker, "queue:q");
  assert.deepEqual([s.depth, s.delayed, s.inflight], [0, 0, 3]);
});

Deno.test("NACK with delay: a due message goes ahead of the messages queued meanwhile", () => {
  const t = testBroker();
  const c = new FakeClient();
  const s = sub(t.broker, c, "queue:q", "s", { ack: "explicit", prefetch: 1 });
  const m1 = pub(t.broker, "queue:q", "m1");
  c.nack(m1, 100);
  c.writable = false;
  pub(t.broker, "queue:q", "m2");
  pub(t.broker, "queue:q", "m3");
  assert.deepEqual(c.texts(), ["m1"]);
  advance(t, 100);
  c.writable = true;
  s.activate();
  assert.deepEqual(c.take().map((m) => [m.text, m.delivery]), [["m1", 2]]);
});

Deno.test("close: unacked deliveries go back to the front in order; the next consumer gets them", () => {
  const { broker } = testBroker();
  const a = new FakeClient();
  const b = new FakeClient();
  const sa = sub(broker, a, "queue:q", "a", { ack: "explicit", prefetch: 3 });
  const ids = ["m1", "m2", "m3", "m4", "m5"].map((t) => pub(broker, "queue:q", t));
  assert.deepEqual(a.texts(), ["m1", "m2", "m3"]);
  b.writable = false;
  const sb = sub(broker, b, "queue:q", "b", { ack: "explicit", prefetch: 10 });
  // b was not writable when m4, m5 could have gone to it: they are still queued.
  assert.deepEqual(b.take(), []);
  sa.close(false);
  assert.equal(a.inflight.size, 0);
  assert.deepEqual(a.take(), []);
  const st = queueStats(broker, "queue:q");
  assert.deepEqual([st.depth, st.inflight, st.consumers, st.redelivered], [5, 0, 1, 3]);
  b.writable = true;
  sb.activate();
  assert.deepEqual(
    b.take().map((m) => [m.id, m.text, m.delivery]),
    [
      [ids[0], "m1", 2],
      [ids[1], "m2", 2],
      [ids[2], "m3", 2],
      [ids[3], "m4", 1],
      [ids[4], "m5", 1],
    ],
  );
});

Deno.test("close: an acked message is not given back", () => {
  const { broker } = testBroker();
  const a = new FakeClient();
  const sa = sub(broker, a, "queue:q", "a", explicit);
  const ids = ["m1", "m2", "m3"].map((t) => pub(broker, "queue:q", t));
  a.ack(ids[1]);
  sa.close(false);
  const b = new FakeClient();
  sub(broker, b, "queue:q", "b", explicit);
  assert.deepEqual(b.take().map((m) => [m.text, m.delivery]), [["m1", 2], ["m3", 2]]);
});

Deno.test("dead letter: after maxDeliveries a NACKed message moves to <queue>.dlq", () => {
  const { broker } = testBroker({ maxDeliveries: 3 });
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", explicit);
  const id = pub(broker, "queue:q", "poison");
  pub(broker, "queue:q", "fine");
  assert.deepEqual(c.take().map((m) => [m.text, m.delivery]), [["poison", 1], ["fine", 1]]);
  c.nack(id);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[id, 2]]);
  c.nack(id);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[id, 3]]);
  c.nack(id); // the third delivery was the last
  assert.deepEqual(c.take(), []);
  const q = queueStats(broker, "queue:q");
  assert.deepEqual([q.dead_lettered, q.redelivered, q.size, q.inflight], [1, 2, 1, 1]);
  const dlq = queueStats(broker, "queue:q.dlq");
  assert.deepEqual([dlq.depth, dlq.published], [1, 1]);
  // Consumable there like any queued message, with a new id.
  const d = new FakeClient();
  sub(broker, d, "queue:q.dlq", "d", explicit);
  const got = d.take();
  assert.deepEqual(got.map((m) => [m.dest, m.text, m.delivery]), [["queue:q.dlq", "poison", 1]]);
  assert.ok(got[0].id > id, "a dead-lettered message gets a new id");
  d.ack(got[0].id);
  assert.equal(queueStats(broker, "queue:q.dlq").acked, 1);
});

Deno.test("dead letter: ack timeouts count as deliveries too", () => {
  const t = testBroker({ maxDeliveries: 2 });
  const c = new FakeClient();
  sub(t.broker, c, "queue:q", "s", { ack: "explicit", ackTimeoutMs: 100 });
  pub(t.broker, "queue:q", "slow");
  advance(t, 100);
  advance(t, 100);
  assert.deepEqual(c.take().map((m) => m.delivery), [1, 2]);
  assert.equal(queueStats(t.broker, "queue:q").dead_lettered, 1);
  assert.equal(queueStats(t.broker, "queue:q.dlq").depth, 1);
});

Deno.test("dead letter: a dead-letter queue does not dead-letter again", () => {
  const { broker } = testBroker({ maxDeliveries: 1 });
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", explicit);
  c.nack(pub(broker, "queue:q", "poison"));
  const d = new FakeClient();
  sub(broker, d, "queue:q.dlq", "d", explicit);
  const [first] = d.take();
  d.nack(first.id);
  d.nack(first.id);
  assert.deepEqual(d.take().map((m) => [m.id, m.delivery]), [[first.id, 2], [first.id, 3]]);
  assert.equal(queueStats(broker, "queue:q.dlq").dead_lettered, 0);
  assert.equal(broker.queues.has("queue:q.dlq.dlq"), false);
});
