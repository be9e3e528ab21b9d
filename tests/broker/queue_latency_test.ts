/**
 * A queue's publish-to-first-delivery latency: a dispatch gives the histogram
 * one observation per run of messages that waited alike (see
 * `Queue.firstDelivery`), and the histogram ends up exactly as one
 * observation per message would leave it. Fake clock, no sockets.
 */
import assert from "node:assert/strict";
import { LATENCY_BUCKETS_S } from "../../src/broker/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { pub, sub, testBroker } from "./harness.ts";

const explicit = { ack: "explicit" } as const;

/** The histogram one observation per message gives: counts per bucket (+Inf last), sum, count. */
function perMessage(latenciesMs: number[]) {
  const bounds = LATENCY_BUCKETS_S.map((s) => s * 1000);
  const counts = new Array(bounds.length + 1).fill(0);
  let sum = 0;
  for (const ms of latenciesMs) {
    let i = 0;
    while (i < bounds.length && ms > bounds[i]) i++;
    counts[i]++;
    sum += ms;
  }
  return { counts, sum, count: latenciesMs.length };
}

Deno.test("queue latency: first deliveries of messages from several milliseconds and this tick", () => {
  const { broker, clock } = testBroker();
  const ids: number[] = [];
  // Held with no consumer: 3 in one millisecond, 2 in one 20 ms on, 40 in one 6 ms after that,
  // one more in that millisecond in a later tick, and two in this tick, still in it: waits of
  // ~26, ~6, ~0.4 ms and none.
  for (const [step, n] of [[0, 3], [20, 2], [6, 40]]) {
    clock.advance(step);
    broker.tick();
    for (let i = 0; i < n; i++) ids.push(pub(broker, "queue:q", `m${ids.length}`));
  }
  clock.advance(0.7); // the same millisecond as the last 40, a later tick
  broker.tick();
  ids.push(pub(broker, "queue:q", "late"));
  clock.advance(0.2); // still that millisecond: what this tick accepts waited no time, the rest did
  const now = broker.tick();
  const fresh = ids.length;
  ids.push(pub(broker, "queue:q", "now1"), pub(broker, "queue:q", "now2"));
  const a = new FakeClient();
  const s = sub(broker, a, "queue:q", "a", { ...explicit, prefetch: 200 }); // one dispatch, all of them
  assert.equal(a.sent.length, ids.length);
  const want = ids.map((id, i) => i >= fresh ? 0 : Math.max(0, now - Math.floor(id / 1024) - 0.5));
  const got = broker.latency;
  const expect = perMessage(want);
  assert.deepEqual([...got.counts], expect.counts);
  assert.equal(got.count, expect.count);
  assert.ok(Math.abs(got.sumMs - expect.sum) < 1e-6, `${got.sumMs} vs ${expect.sum}`);
  assert.ok(got.counts.filter((c) => c > 0).length >= 3, "the runs fell into different buckets");

  // A redelivery is no first delivery: the histogram stays as it is.
  a.nack(ids[0]);
  assert.equal(a.sent.length, ids.length + 1);
  assert.equal(got.count, expect.count);
  assert.equal(s.inflight.size, ids.length);
});
