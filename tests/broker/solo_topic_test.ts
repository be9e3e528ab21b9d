/**
 * Solo topics (src/broker/topic_solo.ts): a topic whose one subscriber is an
 * exact subscription and that keeps nothing else has no `Topic`; it gets one
 * on first need (a publish, a second subscriber, a wildcard, a declaration, a
 * look through `Broker.topics`) and rests in its subscriber again once idle
 * for a sweep. Every figure the broker shows is the same in both states, and
 * the last subscriber's close forgets the topic in either.
 */
import assert from "node:assert/strict";
import { type Broker, BrokerError, type Subscription } from "../../src/broker/mod.ts";
import { DESTINATIONS_MAX } from "../../src/config/mod.ts";
import type { ExactSubscription } from "../../src/broker/topic_subscription.ts";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, sub, type TestBroker, testBroker, topicStats } from "./harness.ts";

/** Whether `s`'s topic rests in it (no `Topic`). */
function solo(s: Subscription): boolean {
  return (s as ExactSubscription).solo !== undefined;
}

/** What the broker shows of its topics: live topics, subscribed ones, the admin list's length. */
function counts(b: Broker): [number, number, number] {
  return [b.topics.size, b.stats().topics, b.topicStats({ offset: 0, limit: 1000 }).total];
}

/** Two sweeps: the first sees the last publish, the second finds the topic idle. */
function idle(t: TestBroker): void {
  advance(t, 250);
  advance(t, 250);
}

Deno.test("solo topic: the one exact subscriber holds its topic; activate, stats and has() leave it so", () => {
  const t = testBroker();
  const c = new FakeClient();
  const s = sub(t.broker, c, "topic:own", "s");
  assert.ok(solo(s));
  s.activate();
  assert.deepEqual(counts(t.broker), [1, 1, 1]);
  const st = topicStats(t.broker, "topic:own");
  assert.deepEqual(
    [st.declared, st.subscribers, st.retained, st.published, st.delivered, st.max_lag_msgs],
    [false, 1, 0, 0, 0, 0],
  );
  assert.equal(s.stats().lag_msgs, 0);
  assert.ok(t.broker.topics.has("topic:own"));
  assert.deepEqual([...t.broker.topics.keys()], ["topic:own"]);
  assert.equal(t.broker.stats().topics, 1);
  idle(t);
  assert.ok(solo(s), "none of these made it a Topic");
});

Deno.test("solo topic: a publish makes it a Topic, a sweep after an idle one makes it solo again, figures kept", () => {
  const t = testBroker();
  const c = new FakeClient();
  const s = sub(t.broker, c, "topic:t", "s");
  const id = pub(t.broker, "topic:t", "m1");
  assert.equal(solo(s), false, "a publish needs the Topic");
  assert.deepEqual(c.texts(), ["m1"]);
  advance(t, 250);
  assert.equal(solo(s), false, "published to since the last sweep: kept");
  const before = topicStats(t.broker, "topic:t");
  advance(t, 250);
  assert.ok(solo(s), "idle for a sweep: solo again");
  assert.deepEqual(
    topicStats(t.broker, "topic:t"),
    before,
    "the same figures, read where they rest",
  );
  assert.deepEqual([before.published, before.delivered], [1, 1]);
  // And back: the next publish goes on from the figures it rested with.
  pub(t.broker, "topic:t", "m2");
  assert.deepEqual(c.texts(), ["m2"]);
  const after = topicStats(t.broker, "topic:t");
  assert.deepEqual([after.published, after.delivered], [2, 2]);
  assert.ok(t.broker.topics.get("topic:t")!.lastId > id);
  assert.deepEqual(counts(t.broker), [1, 1, 1]);
});

Deno.test("solo topic: a second subscriber makes it a Topic for both; alone again, it rests in the one left", () => {
  const t = testBroker();
  const c = new FakeClient();
  const a = sub(t.broker, c, "topic:t", "a");
  pub(t.broker, "topic:t", "m1");
  idle(t);
  assert.ok(solo(a));
  const b = sub(t.broker, c, "topic:t", "b");
  assert.equal(solo(a), false);
  assert.equal(solo(b), false);
  assert.deepEqual(t.broker.topics.get("topic:t")!.bindings, [a, b]);
  pub(t.broker, "topic:t", "m2");
  assert.deepEqual(c.take().map((m) => [m.sid, m.text]), [["a", "m1"], ["a", "m2"], ["b", "m2"]]);
  idle(t);
  assert.equal(solo(a), false, "two subscribers: a Topic");
  a.close(false);
  idle(t);
  assert.ok(solo(b), "b alone: solo");
  assert.equal(solo(a), false, "a closed one does not come back");
  const st = topicStats(t.broker, "topic:t");
  assert.deepEqual([st.subscribers, st.published, st.delivered], [1, 2, 3]);
  pub(t.broker, "topic:t", "m3");
  assert.deepEqual(c.take().map((m) => [m.sid, m.text]), [["b", "m3"]]);
  assert.deepEqual(counts(t.broker), [1, 1, 1]);
});

Deno.test("solo topic: a wildcard that matches it makes it a Topic; one there first keeps it one", () => {
  const t = testBroker();
  const c = new FakeClient();
  const e = sub(t.broker, c, "topic:a.b", "e");
  assert.ok(solo(e));
  const w = sub(t.broker, c, "topic:a.*", "w");
  assert.equal(solo(e), false, "the wildcard binds to it");
  pub(t.broker, "topic:a.b", "x");
  assert.deepEqual(c.take().map((m) => [m.sid, m.text]), [["e", "x"], ["w", "x"]]);
  const later = sub(t.broker, c, "topic:a.c", "l");
  assert.equal(solo(later), false, "a name the wildcard matches starts as a Topic");
  idle(t);
  assert.equal(solo(e), false);
  w.close(false);
  idle(t);
  assert.ok(solo(e));
  assert.ok(solo(later));
  pub(t.broker, "topic:a.c", "y");
  assert.deepEqual(c.take().map((m) => [m.sid, m.text]), [["l", "y"]]);
});

Deno.test("solo topic: not while a message is held for it or a delivery of it waits for an ACK", () => {
  const t = testBroker();
  const slow = new FakeClient();
  slow.writable = false;
  const s = sub(t.broker, slow, "topic:held", "s");
  pub(t.broker, "topic:held", "m1");
  idle(t);
  assert.equal(solo(s), false, "a message is held");
  slow.writable = true;
  s.activate();
  assert.deepEqual(slow.texts(), ["m1"]);
  idle(t);
  assert.ok(solo(s));

  const c = new FakeClient();
  const x = sub(t.broker, c, "topic:acked", "x", { ack: "explicit" });
  const id = pub(t.broker, "topic:acked", "a1");
  idle(t);
  assert.equal(solo(x), false, "a delivery in flight");
  c.ack(id);
  idle(t);
  assert.ok(solo(x));
  assert.equal(x.inflight.size, 0);
});

Deno.test("solo topic: trouble counted or a declaration keep the Topic for good", async () => {
  const t = testBroker({ slowConsumer: "drop-oldest", subPendingMessagesMax: 1 });
  const slow = new FakeClient();
  slow.writable = false;
  const s = sub(t.broker, slow, "topic:busy", "s");
  for (const m of ["m1", "m2", "m3"]) pub(t.broker, "topic:busy", m);
  slow.writable = true;
  s.activate();
  idle(t);
  assert.equal(solo(s), false, "drops counted: a Topic");
  assert.equal(topicStats(t.broker, "topic:busy").dropped, 2);

  const c = new FakeClient();
  const d = sub(t.broker, c, "topic:kept", "d");
  assert.ok(solo(d));
  await t.broker.declare("topic:kept", { messages: 10, bytes: undefined, ageMs: undefined });
  assert.equal(solo(d), false);
  pub(t.broker, "topic:kept", "k1");
  idle(t);
  assert.equal(solo(d), false, "declared: a Topic");
  assert.equal(topicStats(t.broker, "topic:kept").retained, 1);
  const r = new FakeClient();
  sub(t.broker, r, "topic:kept", "r", { start: { kind: "first" } });
  assert.deepEqual(r.texts(), ["k1"]);
});

Deno.test("solo topic: Broker.topics.get and values() make Topics; the figures are the same", () => {
  const t = testBroker();
  const c = new FakeClient();
  const a = sub(t.broker, c, "topic:a", "a");
  const b = sub(t.broker, c, "topic:b", "b");
  pub(t.broker, "topic:b", "m");
  idle(t);
  assert.ok(solo(a) && solo(b));
  const listed = t.broker.topicStats({ offset: 0, limit: 10 });
  const topic = t.broker.topics.get("topic:b")!;
  assert.equal(solo(b), false);
  assert.deepEqual(topic.bindings, [b]);
  assert.equal(topic.published, 1);
  assert.deepEqual([...t.broker.topics.values()].map((x) => x.name), ["topic:a", "topic:b"]);
  assert.equal(solo(a), false);
  assert.deepEqual(t.broker.topicStats({ offset: 0, limit: 10 }), listed);
  idle(t);
  assert.ok(solo(a) && solo(b), "only looked at: solo again");
});

Deno.test("solo topic: the last subscriber's close forgets the topic, solo or not", () => {
  const t = testBroker();
  const c = new FakeClient();
  const s = sub(t.broker, c, "topic:gone", "s");
  assert.deepEqual(counts(t.broker), [1, 1, 1]);
  s.close(false);
  assert.deepEqual(counts(t.broker), [0, 0, 0]);
  assert.equal(t.broker.topics.get("topic:gone"), undefined);
  assert.equal(
    (s as ExactSubscription).topic.bindings.length,
    0,
    "a closed one's topic is its own",
  );
  assert.deepEqual(counts(t.broker), [0, 0, 0], "and not the broker's");

  const a = sub(t.broker, c, "topic:two", "a");
  const b = sub(t.broker, c, "topic:two", "b");
  pub(t.broker, "topic:two", "m");
  a.close(false);
  assert.deepEqual(counts(t.broker), [1, 1, 1]);
  b.close(false);
  assert.deepEqual(counts(t.broker), [0, 0, 0]);
  idle(t);
  assert.deepEqual(counts(t.broker), [0, 0, 0]);
  pub(t.broker, "topic:two", "nobody");
  assert.equal(t.broker.counters.unrouted, 1);
  assert.deepEqual(c.texts(), ["m", "m"]);
});

Deno.test("solo topic: counts as a destination: a SUB to a new name past DESTINATIONS_MAX is refused", () => {
  const t = testBroker();
  const c = new FakeClient();
  for (let i = 0; i < DESTINATIONS_MAX; i++) sub(t.broker, c, `topic:d.${i}`, `s${i}`);
  assert.equal(t.broker.topics.size, DESTINATIONS_MAX);
  assert.throws(
    () => sub(t.broker, c, "topic:one.more", "x"),
    (e: unknown) => e instanceof BrokerError && e.code === "LIMIT",
  );
  const second = sub(t.broker, c, "topic:d.7", "second");
  assert.equal(solo(second), false, "a second subscriber to a solo topic needs no room");
  pub(t.broker, "topic:d.7", "m");
  assert.deepEqual(c.take().map((m) => m.sid), ["s7", "second"]);
  assert.equal(t.broker.topics.size, DESTINATIONS_MAX);
});
