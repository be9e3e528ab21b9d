/**
 * Bindings from topics into queues over a fake client: every publish to a
 * matching topic is enqueued once per binding, sharing its payload bytes; a
 * full queue under `reject` refuses the whole publish (nothing enqueued
 * anywhere, nothing to the topic's subscribers); under drop-oldest it is
 * counted; selectors on a binding pick what it routes.
 */
import assert from "node:assert/strict";
import { BrokerError } from "../../src/broker/mod.ts";
import { compileFilter } from "../../src/filter/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { pub, queueStats, sub, testBroker } from "./harness.ts";

const filter = (source: string) => ({ source, match: compileFilter(source) });
const none = { ack: "none" } as const;

Deno.test("bind: a topic publish is also enqueued in every bound queue, once per binding", async () => {
  const { broker } = testBroker();
  await broker.bind("topic:orders.*", "queue:all", undefined);
  await broker.bind("topic:orders.eu", "queue:eu", undefined);
  await broker.bind("topic:orders.>", "queue:all", undefined); // a second binding to the same queue
  const live = new FakeClient();
  sub(broker, live, "topic:orders.eu", "live");
  pub(broker, "topic:orders.eu", "a");
  pub(broker, "topic:orders.us", "b");
  pub(broker, "topic:other", "c");
  assert.deepEqual(live.texts(), ["a"]);
  assert.equal(queueStats(broker, "queue:all").depth, 4); // a twice, b twice
  assert.equal(queueStats(broker, "queue:eu").depth, 1);
  const all = new FakeClient();
  sub(broker, all, "queue:all", "w", none);
  assert.deepEqual(all.texts().sort(), ["a", "a", "b", "b"]);
  const s = broker.stats();
  assert.equal(s.bindings, 3);
  assert.equal(s.routed_msgs, 5);
  assert.equal(s.unrouted_msgs, 1);
  const list = broker.bindingStats({ offset: 0, limit: 10 }).list;
  assert.deepEqual(list.map((b) => [b.pattern, b.queue, b.routed]), [
    ["topic:orders.*", "queue:all", 2],
    ["topic:orders.>", "queue:all", 2],
    ["topic:orders.eu", "queue:eu", 1],
  ]);
  await broker.unbind("topic:orders.>", "queue:all");
  await broker.unbind("topic:orders.>", "queue:all"); // idempotent
  pub(broker, "topic:orders.eu", "d");
  assert.deepEqual(all.texts(), ["d"]);
});

Deno.test("bind: copies share the payload bytes and get ids of their own", async () => {
  const { broker } = testBroker();
  for (const q of ["q1", "q2", "q3"]) await broker.bind("topic:t", `queue:${q}`, undefined);
  const id = pub(broker, "topic:t", "shared");
  const msgs = ["q1", "q2", "q3"].map((q) =>
    [...broker.queues.get(`queue:${q}`)!.store.messages()][0]
  );
  assert.equal(new Set(msgs.map((m) => m.buf)).size, 1, "one buffer for every copy");
  assert.equal(new Set(msgs.map((m) => m.off)).size, 1);
  assert.equal(new Set([id, ...msgs.map((m) => m.id)]).size, 4, "an id per copy");
});

Deno.test("bind: a full queue under reject refuses the whole publish; nothing anywhere", async () => {
  const { broker } = testBroker({ queueMessagesMax: 2 });
  await broker.bind("topic:t", "queue:a", undefined);
  await broker.bind("topic:t", "queue:b", undefined);
  const live = new FakeClient();
  sub(broker, live, "topic:t", "live");
  pub(broker, "queue:b", "x"); // b fills first
  pub(broker, "topic:t", "1");
  assert.throws(
    () => pub(broker, "topic:t", "2"),
    (e: unknown) =>
      e instanceof BrokerError && e.code === "QUEUE_FULL" && /queue:b/.test(e.message),
  );
  assert.deepEqual(live.texts(), ["1"], "the topic's subscribers did not get it either");
  assert.equal(queueStats(broker, "queue:a").depth, 1, "not enqueued in the queue with room");
  assert.equal(queueStats(broker, "queue:b").depth, 2);
  assert.equal(queueStats(broker, "queue:b").rejected, 1);
  assert.equal(broker.stats().rejected_msgs, 1);
  assert.equal(broker.bindingStats({ offset: 0, limit: 10 }).list[1].rejected, 1);
});

Deno.test("bind: under drop-oldest a full queue drops its oldest (counted) and takes the copy", async () => {
  const { broker } = testBroker({ queueMessagesMax: 2, queueOverflow: "drop-oldest" });
  await broker.bind("topic:t", "queue:a", undefined);
  for (const t of ["1", "2", "3"]) pub(broker, "topic:t", t);
  assert.equal(queueStats(broker, "queue:a").dropped, 1);
  const c = new FakeClient();
  sub(broker, c, "queue:a", "c", none);
  assert.deepEqual(c.texts(), ["2", "3"]);
});

Deno.test("bind: a selector on a binding routes only what it takes; BIND again replaces it", async () => {
  const { broker } = testBroker();
  await broker.bind("topic:t.*", "queue:hi", filter("priority >= 5"));
  for (const p of [1, 7, 5, 0]) pub(broker, "topic:t.x", `p${p}`, { priority: p });
  await broker.bind("topic:t.*", "queue:hi", filter("priority = 0"));
  pub(broker, "topic:t.x", "zero", { priority: 0 });
  pub(broker, "topic:t.x", "nine", { priority: 9 });
  const c = new FakeClient();
  sub(broker, c, "queue:hi", "c", none);
  assert.deepEqual(c.texts(), ["p7", "p5", "zero"]);
  assert.equal(broker.stats().bindings, 1);
  assert.equal(broker.bindingStats({ offset: 0, limit: 1 }).list[0].filter, "priority = 0");
});
