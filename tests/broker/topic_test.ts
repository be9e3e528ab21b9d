/**
 * Topic semantics over fake clients and a fake clock: fan-out, wildcards,
 * lag and the drain path, explicit acks, slow-consumer policies, and one
 * message to two subscriptions of one connection.
 */
import assert from "node:assert/strict";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, sub, testBroker, topicStats } from "./harness.ts";

Deno.test("topic: every subscription gets every message, in publish order", () => {
  const { broker } = testBroker();
  const cs = [new FakeClient(), new FakeClient(), new FakeClient()];
  cs.forEach((c, i) => sub(broker, c, "topic:t", `s${i}`));
  const ids = ["m1", "m2", "m3"].map((x) => pub(broker, "topic:t", x));
  for (const [i, c] of cs.entries()) {
    assert.deepEqual(
      c.take().map((m) => [m.sid, m.id, m.delivery, m.text]),
      ids.map((id, k) => [`s${i}`, id, 1, `m${k + 1}`]),
    );
    assert.deepEqual(c.noAckIds, ids, "ack:none deliveries are settled on send");
  }
  const t = topicStats(broker, "topic:t");
  assert.deepEqual([t.published, t.delivered, t.retained, t.subscribers], [3, 9, 0, 3]);
});

Deno.test("topic: a message published before the SUB, or with no subscriber, is not delivered", () => {
  const { broker } = testBroker();
  pub(broker, "topic:t", "early");
  assert.equal(broker.counters.unrouted, 1);
  const c = new FakeClient();
  const s = sub(broker, c, "topic:t", "s");
  pub(broker, "topic:t", "on time");
  s.close(false);
  pub(broker, "topic:t", "late");
  assert.deepEqual(c.texts(), ["on time"]);
  assert.equal(broker.counters.unrouted, 2);
  assert.equal(broker.topics.has("topic:t"), false, "an unused topic is forgotten");
});

Deno.test("topic: `*` matches one token, `>` one or more", () => {
  const { broker } = testBroker();
  const star = new FakeClient();
  const rest = new FakeClient();
  const exact = new FakeClient();
  sub(broker, star, "topic:a.*", "star");
  sub(broker, rest, "topic:a.>", "rest");
  sub(broker, exact, "topic:a.b", "exact");
  for (
    const dest of ["topic:a", "topic:a.b", "topic:a.c", "topic:a.b.c", "topic:x.b", "topic:ab"]
  ) {
    pub(broker, dest, dest);
  }
  const seen = (c: FakeClient) => c.take().map((m) => `${m.sid} ${m.dest} ${m.text}`);
  assert.deepEqual(seen(star), ["star topic:a.b topic:a.b", "star topic:a.c topic:a.c"]);
  assert.deepEqual(seen(rest), [
    "rest topic:a.b topic:a.b",
    "rest topic:a.c topic:a.c",
    "rest topic:a.b.c topic:a.b.c",
  ]);
  assert.deepEqual(seen(exact), ["exact topic:a.b topic:a.b"]);
  assert.equal(broker.counters.unrouted, 3);
});

Deno.test("topic: a wildcard SUB binds topics that already exist, from new messages on", () => {
  const { broker } = testBroker();
  const first = new FakeClient();
  sub(broker, first, "topic:a.b", "first");
  pub(broker, "topic:a.b", "before");
  const w = new FakeClient();
  sub(broker, w, "topic:a.*", "w");
  pub(broker, "topic:a.b", "after");
  assert.deepEqual(w.texts(), ["after"]);
  assert.deepEqual(first.texts(), ["before", "after"]);
});

Deno.test("topic: a lagging subscription gets everything in order once it drains", () => {
  const { broker } = testBroker();
  const fast = new FakeClient();
  const slow = new FakeClient();
  sub(broker, fast, "topic:t", "fast");
  slow.writable = false;
  const s = sub(broker, slow, "topic:t", "slow");
  const ids = ["m1", "m2", "m3", "m4"].map((x) => pub(broker, "topic:t", x));
  assert.deepEqual(fast.texts(), ["m1", "m2", "m3", "m4"]);
  assert.deepEqual(slow.take(), []);
  let t = topicStats(broker, "topic:t");
  assert.deepEqual([t.retained, t.max_lag_msgs], [4, 4]);
  assert.equal(s.stats().lag_msgs, 4);
  // Writable again, but only for two MSGs: the drain stops there and picks up on the next one.
  slow.writable = true;
  slow.room = 2;
  s.activate();
  assert.deepEqual(slow.take().map((m) => m.id), ids.slice(0, 2));
  assert.equal(topicStats(broker, "topic:t").retained, 2);
  pub(broker, "topic:t", "m5"); // held behind m3, m4, not sent ahead of them
  assert.deepEqual(slow.take(), []);
  slow.room = Infinity;
  s.activate();
  assert.deepEqual(slow.texts(), ["m3", "m4", "m5"]);
  t = topicStats(broker, "topic:t");
  assert.deepEqual([t.retained, t.max_lag_msgs, t.delivered], [0, 0, 10]);
  pub(broker, "topic:t", "m6");
  assert.deepEqual(slow.texts(), ["m6"]);
  assert.deepEqual(fast.texts(), ["m5", "m6"]);
});

Deno.test("topic: a lagging wildcard subscription drains across topics in publish order", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  c.writable = false;
  const s = sub(broker, c, "topic:w.*", "w");
  pub(broker, "topic:w.a", "1");
  pub(broker, "topic:w.b", "2");
  pub(broker, "topic:w.b", "3");
  pub(broker, "topic:w.a", "4");
  pub(broker, "topic:w.c", "5");
  c.writable = true;
  s.activate();
  assert.deepEqual(c.take().map((m) => `${m.dest} ${m.text}`), [
    "topic:w.a 1",
    "topic:w.b 2",
    "topic:w.b 3",
    "topic:w.a 4",
    "topic:w.c 5",
  ]);
});

Deno.test("topic: a held message whose TTL passed is skipped at drain", () => {
  const t = testBroker();
  const c = new FakeClient();
  c.writable = false;
  const s = sub(t.broker, c, "topic:t", "s");
  pub(t.broker, "topic:t", "short", { ttlMs: 100 });
  pub(t.broker, "topic:t", "plain");
  advance(t, 100);
  c.writable = true;
  s.activate();
  assert.deepEqual(c.texts(), ["plain"]);
});

Deno.test("topic explicit acks: prefetch holds messages back; an ACK lets the next one go", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "topic:t", "e", { ack: "explicit", prefetch: 2 });
  const ids = ["m1", "m2", "m3"].map((x) => pub(broker, "topic:t", x));
  assert.deepEqual(c.texts(), ["m1", "m2"]);
  assert.equal(c.inflight.size, 2);
  assert.deepEqual(c.noAckIds, []);
  c.ack(ids[1]);
  assert.deepEqual(c.texts(), ["m3"]);
  c.ack(ids[0]);
  c.ack(ids[2]);
  assert.equal(c.inflight.size, 0);
  assert.throws(() => c.ack(ids[2]), /not in flight/);
});

Deno.test("topic explicit acks: unacked past ack_timeout is redelivered to the same subscription", () => {
  const t = testBroker();
  const c = new FakeClient();
  const other = new FakeClient();
  sub(t.broker, c, "topic:t", "e", { ack: "explicit", prefetch: 2, ackTimeoutMs: 1000 });
  sub(t.broker, other, "topic:t", "o");
  const ids = ["m1", "m2", "m3"].map((x) => pub(t.broker, "topic:t", x));
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 1], [ids[1], 1]]);
  advance(t, 999);
  assert.deepEqual(c.take(), []);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 2], [ids[1], 2]]);
  c.ack(ids[0]);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[2], 1]]);
  // An ACK before the deadline prevents the redelivery.
  advance(t, 999);
  c.ack(ids[1]);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[2], 2]]);
  assert.deepEqual(other.texts(), ["m1", "m2", "m3"], "the other subscription saw each once");
});

Deno.test("topic explicit acks: NACK redelivers at once, NACK with delay after it", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "topic:t", "e", { ack: "explicit", prefetch: 2, ackTimeoutMs: 60_000 });
  const ids = ["m1", "m2"].map((x) => pub(t.broker, "topic:t", x));
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 1], [ids[1], 1]]);
  c.nack(ids[0]);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 2]]);
  c.nack(ids[0], 300);
  assert.deepEqual(c.take(), []);
  assert.equal(c.inflight.size, 1);
  advance(t, 299);
  assert.deepEqual(c.take(), []);
  advance(t, 1);
  assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[0], 3]]);
  c.ack(ids[0]);
  c.ack(ids[1]);
  assert.equal(c.inflight.size, 0);
});

// Regression: found by this test (src/broker/topic_subscription.ts nack), fixed with it.
Deno.test({
  name: "topic explicit acks: a NACK with delay frees prefetch room for the next message",
  fn() {
    const t = testBroker();
    const c = new FakeClient();
    sub(t.broker, c, "topic:t", "e", { ack: "explicit", prefetch: 1 });
    const ids = ["m1", "m2"].map((x) => pub(t.broker, "topic:t", x));
    assert.deepEqual(c.take().map((m) => m.id), [ids[0]]);
    c.nack(ids[0], 300);
    assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[ids[1], 1]]);
  },
});

Deno.test("topic explicit acks: a NACK-delayed delivery is dropped when the subscription closes", () => {
  const t = testBroker();
  const c = new FakeClient();
  const s = sub(t.broker, c, "topic:t", "e", { ack: "explicit" });
  const id = pub(t.broker, "topic:t", "m1");
  c.take();
  c.nack(id, 100);
  s.close(false);
  advance(t, 100);
  assert.deepEqual(c.take(), []);
});

// Regression: found by this test (src/broker/topic_subscription.ts #redeliver, and resend in src/broker/subscription.ts), fixed with it.
Deno.test({
  name: "topic explicit acks: a message whose TTL passed is not redelivered",
  fn() {
    const t = testBroker();
    const c = new FakeClient();
    sub(t.broker, c, "topic:t", "e", { ack: "explicit", ackTimeoutMs: 1000 });
    const id = pub(t.broker, "topic:t", "short", { ttlMs: 500 });
    assert.deepEqual(c.take().map((m) => [m.id, m.delivery]), [[id, 1]]);
    advance(t, 1000);
    assert.deepEqual(c.take(), [], "expired at +500 ms: no redelivery at +1000 ms");
    assert.equal(c.inflight.size, 0);
  },
});

Deno.test("slow consumer (disconnect): reported once when lag passes the limit", () => {
  const { broker } = testBroker({ slowConsumer: "disconnect", subPendingMessagesMax: 3 });
  const c = new FakeClient();
  c.writable = false;
  sub(broker, c, "topic:t", "s");
  for (let i = 1; i <= 3; i++) pub(broker, "topic:t", `m${i}`);
  assert.deepEqual(c.slowCalls, [], "at the limit, not past it");
  pub(broker, "topic:t", "m4");
  assert.equal(c.slowCalls.length, 1);
  assert.match(c.slowCalls[0], /^subscription s is 4 messages \(\d+ bytes\) behind on topic:t$/);
  pub(broker, "topic:t", "m5");
  pub(broker, "topic:t", "m6");
  assert.equal(c.slowCalls.length, 1, "reported once");
  const t = topicStats(broker, "topic:t");
  assert.deepEqual([t.slow_consumers, t.dropped, t.max_lag_msgs], [1, 0, 6]);
});

Deno.test("slow consumer (disconnect): the byte limit counts too", () => {
  const { broker } = testBroker({ subPendingMessagesMax: 1000, subPendingBytesMax: 10 });
  const c = new FakeClient();
  c.writable = false;
  sub(broker, c, "topic:t", "s");
  pub(broker, "topic:t", "12345");
  pub(broker, "topic:t", "12345");
  assert.equal(c.slowCalls.length, 0);
  pub(broker, "topic:t", "1");
  assert.equal(c.slowCalls.length, 1);
  assert.match(c.slowCalls[0], /3 messages \(11 bytes\)/);
});

Deno.test("slow consumer (drop-oldest): skips the oldest and counts them", () => {
  const { broker } = testBroker({ slowConsumer: "drop-oldest", subPendingMessagesMax: 3 });
  const c = new FakeClient();
  const fast = new FakeClient();
  c.writable = false;
  const s = sub(broker, c, "topic:t", "s");
  sub(broker, fast, "topic:t", "fast");
  for (let i = 1; i <= 5; i++) pub(broker, "topic:t", `m${i}`);
  assert.deepEqual(c.slowCalls, []);
  const st = s.stats();
  assert.deepEqual([st.dropped, st.lag_msgs], [2, 3]);
  const t = topicStats(broker, "topic:t");
  assert.deepEqual([t.dropped, t.slow_consumers, t.retained], [2, 0, 3]);
  c.writable = true;
  s.activate();
  assert.deepEqual(c.texts(), ["m3", "m4", "m5"]);
  assert.deepEqual(fast.texts(), ["m1", "m2", "m3", "m4", "m5"]);
  assert.equal(topicStats(broker, "topic:t").retained, 0);
});

Deno.test("one message to two explicit-ack subscriptions of one client: two deliveries, two ACKs", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "topic:a", "exact", { ack: "explicit", ackTimeoutMs: 1000 });
  sub(t.broker, c, "topic:*", "star", { ack: "explicit", ackTimeoutMs: 1000 });
  const id = pub(t.broker, "topic:a", "m");
  assert.deepEqual(c.take().map((m) => [m.sid, m.id]), [["exact", id], ["star", id]]);
  assert.equal(c.inflight.size, 1, "one id in flight");
  const first = c.inflight.take(id);
  assert.equal(first?.sub.sid, "exact");
  first.sub.ack(first);
  // The other delivery is still in flight: at its deadline only it comes again.
  advance(t, 1000);
  assert.deepEqual(c.take().map((m) => [m.sid, m.id, m.delivery]), [["star", id, 2]]);
  const second = c.inflight.take(id);
  assert.equal(second?.sub.sid, "star");
  second.sub.ack(second);
  assert.equal(c.inflight.take(id), undefined, "both are settled");
  advance(t, 1000);
  assert.deepEqual(c.take(), []);
});

Deno.test("one message to two explicit-ack subscriptions: the first ACK settles the older delivery", () => {
  const t = testBroker();
  const c = new FakeClient();
  sub(t.broker, c, "topic:a", "x", { ack: "explicit", prefetch: 1 });
  sub(t.broker, c, "topic:*", "y", { ack: "explicit", prefetch: 1 });
  const m1 = pub(t.broker, "topic:a", "m1");
  pub(t.broker, "topic:a", "m2");
  assert.deepEqual(c.take().map((m) => `${m.sid} ${m.text}`), ["x m1", "y m1"]);
  c.ack(m1); // x's delivery: x gets m2, y is still full
  assert.deepEqual(c.take().map((m) => `${m.sid} ${m.text}`), ["x m2"]);
  c.ack(m1);
  assert.deepEqual(c.take().map((m) => `${m.sid} ${m.text}`), ["y m2"]);
  assert.throws(() => c.ack(m1), /not in flight/);
});

Deno.test("slow consumer, block: publishers are told to pause while a subscriber is over its limit, until it drains to half", async () => {
  const t = testBroker({
    slowConsumer: "block",
    subPendingMessagesMax: 4,
    slowConsumerBlockMs: 1000,
  });
  const slow = new FakeClient();
  const healthy = new FakeClient();
  slow.writable = false;
  const s = sub(t.broker, slow, "topic:t", "slow");
  sub(t.broker, healthy, "topic:t", "ok");
  const ids = ["m1", "m2", "m3", "m4"].map((x) => pub(t.broker, "topic:t", x));
  assert.equal(t.broker.takeBlocked(), undefined, "4 behind is within the limit");
  ids.push(pub(t.broker, "topic:t", "m5"));
  const topic = t.broker.takeBlocked();
  assert.ok(topic !== undefined && topic.blocked, "5 behind: publishers pause");
  assert.equal(t.broker.takeBlocked(), undefined, "takeBlocked clears");
  let released = false;
  const resumed = topic.unblocked().then(() => released = true);
  assert.deepEqual(healthy.texts(), ["m1", "m2", "m3", "m4", "m5"], "the healthy one is not held");
  assert.deepEqual(slow.slowCalls, [], "block does not disconnect at once");
  // Draining to 3 behind is not enough (half of 4 is 2); to 2 behind releases.
  slow.writable = true;
  slow.room = 2;
  s.activate();
  await Promise.resolve();
  assert.equal(released, false);
  slow.room = 1;
  s.activate();
  await resumed;
  assert.equal(topic.blocked, false);
  assert.deepEqual(slow.texts(), ["m1", "m2", "m3"]);
  assert.equal(topicStats(t.broker, "topic:t").slow_consumers, 0);
  advance(t, 5000);
  assert.deepEqual(slow.slowCalls, [], "a released pause never times out");
});

Deno.test("slow consumer, block: a pause that lasts --slow-consumer-block-ms disconnects the subscriber", () => {
  const t = testBroker({
    slowConsumer: "block",
    subPendingMessagesMax: 2,
    slowConsumerBlockMs: 1000,
  });
  const slow = new FakeClient();
  slow.writable = false;
  sub(t.broker, slow, "topic:t", "slow");
  for (const x of ["m1", "m2", "m3"]) pub(t.broker, "topic:t", x);
  assert.ok(t.broker.takeBlocked()?.blocked);
  advance(t, 999);
  assert.deepEqual(slow.slowCalls, []);
  advance(t, 250);
  assert.equal(slow.slowCalls.length, 1, "disconnected once");
  assert.match(
    slow.slowCalls[0],
    /3 messages .* behind on topic:t after 1000 ms of blocked publishers/,
  );
  assert.equal(topicStats(t.broker, "topic:t").slow_consumers, 1);
  advance(t, 1000);
  assert.equal(slow.slowCalls.length, 1, "reported once");
});

Deno.test("topics made for a wildcard are forgotten once idle: one per request inbox does not pile up", () => {
  const t = testBroker();
  const c = new FakeClient();
  const s = sub(t.broker, c, "topic:inbox.>", "w");
  for (let i = 0; i < 100; i++) pub(t.broker, `topic:inbox.${i}`, `r${i}`);
  assert.equal(t.broker.topics.size, 100);
  advance(t, 250); // published since the last sweep: kept
  assert.equal(t.broker.topics.size, 100);
  advance(t, 250);
  assert.equal(t.broker.topics.size, 0, "idle wildcard-only topics are forgotten");
  assert.equal((s as unknown as { bindings: unknown[] }).bindings.length, 0);
  // The wildcard binds again when a name comes back, and gets everything.
  pub(t.broker, "topic:inbox.7", "again");
  pub(t.broker, "topic:inbox.new", "new");
  const got = c.texts();
  assert.equal(got.length, 102);
  assert.deepEqual(got.slice(-2), ["again", "new"]);
});

Deno.test("a wildcard-only topic is kept while it is published to, has an exact subscriber, or a delivery needs it", () => {
  const t = testBroker();
  const w = new FakeClient();
  sub(t.broker, w, "topic:a.*", "w", { ack: "explicit", ackTimeoutMs: 60_000 });
  const exact = new FakeClient();
  sub(t.broker, exact, "topic:a.x", "e");
  const id = pub(t.broker, "topic:a.y", "held"); // in flight to the explicit wildcard
  pub(t.broker, "topic:a.x", "x");
  for (let i = 0; i < 3; i++) {
    pub(t.broker, "topic:a.z", `z${i}`); // busy: published between sweeps
    advance(t, 250);
  }
  assert.deepEqual([...t.broker.topics.keys()].sort(), ["topic:a.x", "topic:a.y", "topic:a.z"]);
  for (const m of w.take()) w.ack(m.id);
  assert.equal(w.inflight.size, 0, `${id} and the others are acked`);
  advance(t, 500);
  assert.deepEqual([...t.broker.topics.keys()], ["topic:a.x"], "only the exact subscriber's stays");
  // Redelivery of something in flight still works after its topic went: nothing was lost.
  assert.equal(w.inflight.size, 0);
});
