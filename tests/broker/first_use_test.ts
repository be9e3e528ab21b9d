/**
 * What an idle subscription does not hold: a topic's message list, its rare
 * part (store, durables, pause, trouble counters), a subscription's
 * in-flight list and rare part (dropped count, delayed NACKs) are one shared
 * instance until first written, and writing gives the writer its own (never
 * the shared one, which every other idle topic or subscription reads);
 * settings are shared only by subscriptions that have the same; an exact
 * subscription is its own binding.
 */
import assert from "node:assert/strict";
import { Broker, type Subscription } from "../../src/broker/mod.ts";
import { compileFilter } from "../../src/filter/mod.ts";
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { LogStore } from "../../src/storage/mod.ts";
import { FakeClock } from "../fake_clock.ts";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, sub, testBroker, testBrokerOptions, topicStats } from "./harness.ts";

Deno.test("first use: subscriptions share one empty in-flight list until a delivery waits in theirs", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  const a = sub(broker, c, "topic:a", "a", { ack: "explicit" });
  const b = sub(broker, c, "topic:b", "b", { ack: "explicit" });
  const q = sub(broker, c, "queue:q", "q", { ack: "explicit", prefetch: 5 });
  assert.equal(a.inflight, b.inflight, "idle subscriptions share one list");
  assert.equal(a.inflight, q.inflight);
  const id = pub(broker, "topic:a", "x");
  pub(broker, "queue:q", "y");
  assert.notEqual(a.inflight, b.inflight, "a delivery gives the subscription its own list");
  assert.equal(a.inflight.size, 1);
  assert.equal(q.inflight.size, 1);
  assert.equal(b.inflight.size, 0, "the shared list was not written");
  assert.equal(b.inflight.first, undefined);
  const later = sub(broker, c, "topic:c", "c", { ack: "explicit" });
  assert.equal(later.inflight, b.inflight, "a new subscription still gets the shared, empty one");
  assert.equal(later.inflight.size, 0);
  // Settled and gone: its own list empties, the others are untouched.
  c.ack(id);
  assert.equal(a.inflight.size, 0);
  assert.deepEqual(c.texts(), ["x", "y"]);
});

Deno.test("first use: a topic that holds messages for a lagging subscriber holds them in a list of its own", () => {
  const { broker } = testBroker();
  const slow = new FakeClient();
  const idle = new FakeClient();
  slow.writable = false;
  const s = sub(broker, slow, "topic:held", "s");
  sub(broker, idle, "topic:quiet", "i");
  for (const x of ["m1", "m2", "m3"]) pub(broker, "topic:held", x);
  assert.equal(topicStats(broker, "topic:held").retained, 3);
  assert.equal(
    topicStats(broker, "topic:quiet").retained,
    0,
    "another topic's list is not written",
  );
  sub(broker, new FakeClient(), "topic:new", "n");
  assert.equal(topicStats(broker, "topic:new").retained, 0);
  pub(broker, "topic:quiet", "q1");
  assert.deepEqual(
    idle.texts(),
    ["q1"],
    "a subscriber of a topic that never held one still gets its MSG head",
  );
  slow.writable = true;
  s.activate();
  assert.deepEqual(slow.texts(), ["m1", "m2", "m3"]);
  assert.equal(topicStats(broker, "topic:held").retained, 0);
});

Deno.test("first use: subscriptions share settings only when they are the same; a filter is each one's own", () => {
  const t = testBroker();
  const c = new FakeClient();
  const plain = sub(t.broker, c, "topic:t", "plain");
  const five = sub(t.broker, c, "topic:t", "five", { ack: "explicit", prefetch: 5 });
  const seven = sub(t.broker, c, "topic:t", "seven", { ack: "explicit", prefetch: 7 });
  const fast = sub(t.broker, c, "topic:t", "fast", {
    ack: "explicit",
    prefetch: 7,
    ackTimeoutMs: 100,
  });
  const filtered = sub(t.broker, c, "topic:t", "f", {
    filter: { source: "priority > 3", match: compileFilter("priority > 3") },
  });
  const after = sub(t.broker, c, "topic:t", "after");
  const row = (s: Subscription) => {
    const x = s.stats();
    return [x.sid, x.ack, x.prefetch, x.filter];
  };
  assert.deepEqual([plain, five, seven, fast, filtered, after].map(row), [
    ["plain", "none", 1000, undefined],
    ["five", "explicit", 5, undefined],
    ["seven", "explicit", 7, undefined],
    ["fast", "explicit", 7, undefined],
    ["f", "none", 1000, "priority > 3"],
    ["after", "none", 1000, undefined],
  ]);
  // The ack timeouts are each one's own: only `fast` redelivers after 100 ms.
  pub(t.broker, "topic:t", "m");
  c.take();
  advance(t, 150);
  assert.deepEqual(c.take().map((m) => [m.sid, m.delivery]), [["fast", 2]]);
});

Deno.test("first use: a topic's trouble counters and a subscription's skipped count are their own", () => {
  const { broker } = testBroker({ slowConsumer: "drop-oldest", subPendingMessagesMax: 2 });
  const slow = new FakeClient();
  const idle = new FakeClient();
  slow.writable = false;
  const s = sub(broker, slow, "topic:busy", "s");
  const i = sub(broker, idle, "topic:quiet", "i");
  for (const x of ["m1", "m2", "m3", "m4", "m5"]) pub(broker, "topic:busy", x);
  const busy = topicStats(broker, "topic:busy");
  assert.deepEqual([busy.published, busy.dropped, busy.retained], [5, 3, 2]);
  assert.equal(s.stats().dropped, 3);
  const quiet = topicStats(broker, "topic:quiet");
  assert.deepEqual([quiet.published, quiet.dropped, quiet.slow_consumers], [0, 0, 0]);
  assert.equal(i.stats().dropped, 0, "another subscription's count was not written");
  const later = sub(broker, new FakeClient(), "topic:new", "n");
  assert.equal(topicStats(broker, "topic:new").dropped, 0);
  assert.equal(later.stats().dropped, 0);
});

Deno.test("first use: an exact subscription is its own binding; a wildcard one has one per topic", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  const exact = sub(broker, c, "topic:a.b", "e");
  const wild = sub(broker, c, "topic:a.*", "w");
  const bs = broker.topics.get("topic:a.b")!.bindings;
  assert.equal(bs.length, 2);
  assert.equal(bs[0], exact, "the exact subscription binds itself");
  assert.notEqual(bs[1], wild);
  assert.equal(bs[1].sub, wild);
  pub(broker, "topic:a.b", "x");
  assert.deepEqual(c.take().map((m) => [m.sid, m.dest, m.text]), [
    ["e", "topic:a.b", "x"],
    ["w", "topic:a.b", "x"],
  ]);
  exact.close(false);
  wild.close(false);
  const bindings = (s: Subscription) => (s as unknown as { bindings: unknown[] }).bindings;
  assert.equal(bindings(exact).length, 0);
  assert.equal(bindings(wild).length, 0);
  assert.equal(broker.topics.has("topic:a.b"), false, "nobody uses it: forgotten");
  const again = sub(broker, c, "topic:a.b", "e");
  pub(broker, "topic:a.b", "y");
  assert.deepEqual(c.texts(), ["y"]);
  assert.equal(bindings(again).length, 1);
});

/** A broker on the log store in `dir`. */
function logBroker(dir: string, clock: FakeClock): Broker {
  const store = LogStore.open({ dir, fs: nodeFileSystem, fsync: "never", clock });
  return new Broker(testBrokerOptions(clock, { store }));
}

Deno.test("first use: a declared topic's recovered messages are retained, not counted as published", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-first-use-" });
  const clock = new FakeClock();
  try {
    let b = logBroker(dir, clock);
    await b.declare("topic:x", { messages: 10, bytes: undefined, ageMs: undefined });
    for (const x of ["m1", "m2", "m3"]) pub(b, "topic:x", x);
    assert.equal(topicStats(b, "topic:x").published, 3);
    await b.stateSaved();
    b.options.store.writePending();
    await b.options.store.close();
    b = logBroker(dir, clock);
    let t = topicStats(b, "topic:x");
    assert.deepEqual([t.declared, t.retained, t.published], [true, 3, 0]);
    pub(b, "topic:x", "m4");
    t = topicStats(b, "topic:x");
    assert.deepEqual([t.retained, t.published], [4, 1]);
    const c = new FakeClient();
    sub(b, c, "topic:x", "r", { start: { kind: "first" } });
    assert.deepEqual(c.texts(), ["m1", "m2", "m3", "m4"]);
    await b.options.store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
