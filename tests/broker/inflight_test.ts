/**
 * InFlight given its connection's subscriptions: queue deliveries are
 * indexed by id only from the first lookup by id on, and nothing is lost or
 * found twice across that switch.
 */
import assert from "node:assert/strict";
import { InFlight, type Subscription } from "../../src/broker/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { pub, sub, testBroker } from "./harness.ts";

/** A fake connection whose in-flight index is lazy, as a real connection's is. */
class LazyClient extends FakeClient {
  readonly subs: Subscription[] = [];
  override readonly inflight: InFlight = new InFlight(this.subs);
}

Deno.test("InFlight: queue deliveries are indexed at the first lookup by id, the rest as they come", () => {
  const { broker } = testBroker();
  const c = new LazyClient();
  const q = sub(broker, c, "queue:a", "a", { ack: "explicit", prefetch: 10 });
  const t = sub(broker, c, "topic:t", "t", { ack: "explicit" });
  c.subs.push(q, t);
  const ids = [0, 1, 2, 3].map((i) => pub(broker, "queue:a", `m${i}`));
  const topicId = pub(broker, "topic:t", "x");
  assert.equal(c.inflight.size, 5);
  // Settled from the list, as a cumulative ACK does: no lookup by id.
  const d0 = q.inflight.first!;
  c.inflight.remove(d0);
  q.settle(d0);
  assert.equal(c.inflight.size, 4);
  // The first lookup indexes what is in flight: each id found once, the settled one not.
  assert.equal(c.inflight.has(ids[0]), false);
  assert.equal(c.inflight.take(ids[2])?.msg.id, ids[2]);
  assert.equal(c.inflight.take(ids[2]), undefined);
  assert.equal(c.inflight.take(topicId)?.msg.id, topicId);
  // Later deliveries are indexed as they come.
  const late = pub(broker, "queue:a", "m4");
  assert.equal(c.inflight.has(late), true);
  assert.equal(c.inflight.size, 3);
  assert.deepEqual(q.inflight.toArray().map((d) => d.msg.id), [ids[1], ids[3], late]);
  for (const id of [ids[1], ids[3], late]) assert.equal(c.inflight.take(id)?.msg.id, id);
  assert.equal(c.inflight.size, 0);
  assert.equal(q.inflight.size, 0);
});

Deno.test("InFlight: without subscriptions given, every delivery is indexed at once", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "queue:a", "a", { ack: "explicit", prefetch: 10 });
  const id = pub(broker, "queue:a", "m");
  assert.equal(c.inflight.size, 1);
  assert.equal(c.inflight.take(id)?.msg.id, id);
  assert.equal(c.inflight.size, 0);
});

Deno.test("InFlight: ids taken oldest first from each subscription need no index; any other builds it", () => {
  const { broker } = testBroker();
  const c = new LazyClient();
  const a = sub(broker, c, "queue:a", "a", { ack: "explicit", prefetch: 10 });
  const b = sub(broker, c, "queue:b", "b", { ack: "explicit", prefetch: 10 });
  const t = sub(broker, c, "topic:t", "t", { ack: "explicit" });
  c.subs.push(a, b, t);
  const topicId = pub(broker, "topic:t", "x"); // at the head of t's list, but indexed
  const as = [0, 1, 2, 3].map((i) => pub(broker, "queue:a", `a${i}`));
  const bs = [0, 1, 2].map((i) => pub(broker, "queue:b", `b${i}`));
  assert.equal(c.inflight.size, 8);
  // Oldest first, switching between the two queues' lists.
  for (const id of [as[0], bs[0], bs[1], as[1]]) assert.equal(c.inflight.take(id)?.msg.id, id);
  assert.equal(c.inflight.take(as[0]), undefined, "taken once");
  assert.equal(c.inflight.size, 4);
  // Not at a head (bs[2] waits behind nothing, as[3] behind as[2]): the index answers.
  assert.equal(c.inflight.take(as[3])?.msg.id, as[3]);
  assert.equal(c.inflight.take(topicId)?.msg.id, topicId);
  assert.deepEqual(a.inflight.toArray().map((d) => d.msg.id), [as[2]]);
  for (const id of [bs[2], as[2]]) assert.equal(c.inflight.take(id)?.msg.id, id);
  assert.equal(c.inflight.size, 0);
  assert.equal(a.inflight.size + b.inflight.size + t.inflight.size, 0);
});
