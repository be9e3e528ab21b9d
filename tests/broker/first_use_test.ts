/**
 * What an idle subscription does not hold: a topic's message list and a
 * subscription's in-flight list are one shared empty instance until first
 * written, and writing gives the writer its own (never the shared one, which
 * every other idle topic or subscription reads).
 */
import assert from "node:assert/strict";
import { FakeClient } from "./fake_client.ts";
import { pub, sub, testBroker, topicStats } from "./harness.ts";

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
