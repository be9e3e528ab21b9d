/**
 * Declared topics over fake clients and a fake clock: retention, replay
 * from the first retained message, and durable subscriptions that resume
 * from their position.
 */
import assert from "node:assert/strict";
import { BrokerError } from "../../src/broker/mod.ts";
import type { RetentionOptions } from "../../src/protocol/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, sub, testBroker, topicStats } from "./harness.ts";

function retain(o: Partial<RetentionOptions>): RetentionOptions {
  return { messages: undefined, bytes: undefined, ageMs: undefined, ...o };
}

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof BrokerError && e.code === code;
}

Deno.test("declared topic: keeps its last `messages` messages with no subscriber", async () => {
  const { broker } = testBroker();
  await broker.declare("topic:x", retain({ messages: 3 }));
  const ids = ["m1", "m2", "m3", "m4", "m5"].map((t) => pub(broker, "topic:x", t));
  const t = topicStats(broker, "topic:x");
  assert.deepEqual(t.retention, { messages: 3, bytes: 1 << 20, age_ms: 0 });
  assert.deepEqual(
    [t.declared, t.retained, t.retention_dropped, t.published, t.subscribers],
    [true, 3, 2, 5, 0],
  );
  assert.equal(broker.counters.unrouted, 0, "a declared topic is not unrouted");
  // A replay from the first retained message, then live ones, no gap and no repeat.
  const c = new FakeClient();
  sub(broker, c, "topic:x", "r", { start: { kind: "first" } });
  assert.deepEqual(c.take().map((m) => [m.id, m.text]), [
    [ids[2], "m3"],
    [ids[3], "m4"],
    [ids[4], "m5"],
  ]);
  assert.equal(c.inflight.size, 0, "a replay without ack:explicit takes no ACKs");
  pub(broker, "topic:x", "m6");
  assert.deepEqual(c.texts(), ["m6"]);
  const after = topicStats(broker, "topic:x");
  assert.deepEqual([after.retained, after.retention_dropped], [3, 3]);
});

Deno.test("declared topic: replay from an id, and `new` starts after the last message", async () => {
  const { broker } = testBroker();
  await broker.declare("topic:x", retain({ messages: 10 }));
  const ids = ["m1", "m2", "m3"].map((t) => pub(broker, "topic:x", t));
  const byId = new FakeClient();
  sub(broker, byId, "topic:x", "i", { start: { kind: "id", id: ids[1] } });
  assert.deepEqual(byId.texts(), ["m2", "m3"]);
  const fresh = new FakeClient();
  sub(broker, fresh, "topic:x", "n", { start: { kind: "new" } });
  assert.deepEqual(fresh.texts(), []);
  pub(broker, "topic:x", "m4");
  assert.deepEqual(fresh.texts(), ["m4"]);
  assert.deepEqual(byId.texts(), ["m4"]);
});

Deno.test("declared topic: the age limit drops old messages at the sweep", async () => {
  const t = testBroker();
  await t.broker.declare("topic:x", retain({ ageMs: 1000 }));
  pub(t.broker, "topic:x", "old");
  advance(t, 600);
  pub(t.broker, "topic:x", "young");
  advance(t, 399);
  assert.equal(topicStats(t.broker, "topic:x").retained, 2);
  advance(t, 1);
  const s = topicStats(t.broker, "topic:x");
  assert.deepEqual([s.retained, s.retention_dropped], [1, 1]);
  const c = new FakeClient();
  sub(t.broker, c, "topic:x", "r", { start: { kind: "first" } });
  assert.deepEqual(c.texts(), ["young"]);
});

Deno.test("declared topic: a lagging subscriber skips what retention drops, and is never slow", async () => {
  const { broker } = testBroker({ subPendingMessagesMax: 2 });
  await broker.declare("topic:x", retain({ messages: 3 }));
  const c = new FakeClient();
  c.writable = false;
  const s = sub(broker, c, "topic:x", "s");
  for (let i = 1; i <= 6; i++) pub(broker, "topic:x", `m${i}`);
  assert.deepEqual(c.slowCalls, []);
  assert.equal(s.stats().dropped, 3);
  c.writable = true;
  s.activate();
  assert.deepEqual(c.texts(), ["m4", "m5", "m6"]);
  const t = topicStats(broker, "topic:x");
  assert.deepEqual([t.dropped, t.slow_consumers, t.retention_dropped], [3, 0, 3]);
});

Deno.test("durable: resumes after close from the oldest unacked message, then new ones", async () => {
  const { broker } = testBroker();
  await broker.declare("topic:x", retain({ messages: 100 }));
  const ids = ["m1", "m2", "m3", "m4"].map((t) => pub(broker, "topic:x", t));
  const a = new FakeClient();
  const sa = sub(broker, a, "topic:x", "d", { durable: "work", start: { kind: "first" } });
  assert.deepEqual(a.take().map((m) => [m.id, m.delivery]), ids.map((id) => [id, 1]));
  assert.equal(sa.explicit, true, "a durable takes explicit acks");
  a.ack(ids[0]);
  a.ack(ids[1]);
  a.ack(ids[3]); // out of order: m3 is still unacked, so the position stays after m2
  let [d] = topicStats(broker, "topic:x").durables;
  assert.deepEqual([d.name, d.connected, d.sid, d.position], ["work", true, "d", ids[1]]);
  sa.close(false);
  assert.equal(a.inflight.size, 0);
  [d] = topicStats(broker, "topic:x").durables;
  assert.deepEqual([d.connected, d.position, d.backlog_msgs], [false, ids[1], 2]);
  const m5 = pub(broker, "topic:x", "m5"); // published while nobody uses the durable
  // Resubscribing ignores `start` and resumes at the position: m3 again, m4 too (at least once).
  const b = new FakeClient();
  sub(broker, b, "topic:x", "d2", { durable: "work", start: { kind: "new" } });
  assert.deepEqual(b.take().map((m) => [m.sid, m.id, m.text]), [
    ["d2", ids[2], "m3"],
    ["d2", ids[3], "m4"],
    ["d2", m5, "m5"],
  ]);
  const m6 = pub(broker, "topic:x", "m6");
  assert.deepEqual(b.take().map((m) => m.id), [m6]);
  for (const id of [ids[2], ids[3], m5, m6]) b.ack(id);
  [d] = topicStats(broker, "topic:x").durables;
  assert.deepEqual([d.position, d.backlog_msgs, d.sid], [m6, 0, "d2"]);
});

Deno.test("durable: a second live SUB with the name is refused; forget deletes the position", async () => {
  const { broker } = testBroker();
  await broker.declare("topic:x", retain({ messages: 100 }));
  pub(broker, "topic:x", "m1");
  const a = new FakeClient();
  const sa = sub(broker, a, "topic:x", "d", { durable: "w", start: { kind: "first" } });
  assert.deepEqual(a.texts(), ["m1"]);
  assert.throws(
    () => sub(broker, new FakeClient(), "topic:x", "d", { durable: "w" }),
    isCode("DURABLE_IN_USE"),
  );
  sa.close(true);
  assert.deepEqual(topicStats(broker, "topic:x").durables, []);
  // Created afresh at its `start`.
  const b = new FakeClient();
  sub(broker, b, "topic:x", "d", { durable: "w", start: { kind: "first" } });
  assert.deepEqual(b.take().map((m) => [m.text, m.delivery]), [["m1", 1]]);
});

Deno.test("durable: refused on an undeclared topic, a wildcard, with ack:none, or on a queue", async () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  assert.throws(() => sub(broker, c, "topic:plain", "d", { durable: "w" }), isCode("NOT_DECLARED"));
  assert.throws(
    () => sub(broker, c, "topic:plain", "r", { start: { kind: "first" } }),
    isCode("NOT_DECLARED"),
  );
  await broker.declare("topic:x", retain({ messages: 10 }));
  assert.throws(() => sub(broker, c, "topic:*", "d", { durable: "w" }), isCode("BAD_DESTINATION"));
  assert.throws(
    () => sub(broker, c, "topic:x", "d", { durable: "w", ack: "none" }),
    isCode("BAD_ARGUMENT"),
  );
  assert.throws(() => sub(broker, c, "queue:q", "d", { durable: "w" }), isCode("BAD_ARGUMENT"));
  assert.equal(topicStats(broker, "topic:x").durables.length, 0);
});
