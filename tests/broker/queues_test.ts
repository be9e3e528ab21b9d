/**
 * Declared queues, scheduled delivery and deduplication over fake clients and
 * a fake clock (memory store), and across an in-process restart on the log
 * store: settings override the defaults, a declaration is idempotent or a
 * conflict, a scheduled message is never early and fires once in due order,
 * a second `dedup_id` is answered with the first id and not stored.
 */
import assert from "node:assert/strict";
import { Broker, BrokerError } from "../../src/broker/mod.ts";
import {
  defaultPubOptions,
  defaultQueueDeclareOptions,
  type QueueDeclareOptions,
} from "../../src/protocol/mod.ts";
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { LogStore } from "../../src/storage/mod.ts";
import { FakeClock } from "../fake_clock.ts";
import { FakeClient } from "./fake_client.ts";
import { advance, pub, queueStats, sub, testBroker, testBrokerOptions } from "./harness.ts";

function decl(o: Partial<QueueDeclareOptions>): QueueDeclareOptions {
  return { ...defaultQueueDeclareOptions(), ...o };
}

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof BrokerError && e.code === code;
}

Deno.test("declared queue: max_messages with reject, then drop_oldest, override the server's", async () => {
  const { broker } = testBroker({ queueMessagesMax: 100 });
  await broker.declareQueue("queue:r", decl({ maxMessages: 2 }));
  pub(broker, "queue:r", "a");
  pub(broker, "queue:r", "b");
  assert.throws(() => pub(broker, "queue:r", "c"), isCode("QUEUE_FULL"));
  await broker.declareQueue("queue:d", decl({ maxMessages: 2, overflow: "drop_oldest" }));
  for (const t of ["a", "b", "c"]) pub(broker, "queue:d", t);
  const c = new FakeClient();
  sub(broker, c, "queue:d", "s", { ack: "none" });
  assert.deepEqual(c.texts(), ["b", "c"]);
  const s = queueStats(broker, "queue:d");
  assert.equal(s.dropped, 1);
  assert.equal(s.declared, true);
  assert.deepEqual(s.settings, {
    max_messages: 2,
    max_bytes: 1 << 20,
    overflow: "drop_oldest",
    ttl_ms: 0,
    max_deliveries: 5,
    dlq: "queue:d.dlq",
    ack_timeout_ms: 30_000,
    dedup_window_ms: 120_000,
  });
  // max_bytes too.
  await broker.declareQueue("queue:b", decl({ maxBytes: 3 }));
  pub(broker, "queue:b", "abc");
  assert.throws(() => pub(broker, "queue:b", "d"), isCode("QUEUE_FULL"));
});

Deno.test("declared queue: the same settings again are fine, others are DECLARE_CONFLICT", async () => {
  const { broker } = testBroker();
  await broker.declareQueue("queue:x", decl({ maxMessages: 5, dlq: null }));
  await broker.declareQueue("queue:x", decl({ maxMessages: 5, dlq: null }));
  assert.throws(
    () => broker.declareQueue("queue:x", decl({ maxMessages: 6, dlq: null })),
    (e) => isCode("DECLARE_CONFLICT")(e) && /max_messages:5 dlq:none/.test((e as Error).message),
  );
  // Leaving an option out is not the same as giving it: dlq:none is a setting.
  assert.throws(
    () => broker.declareQueue("queue:x", decl({ maxMessages: 5 })),
    isCode("DECLARE_CONFLICT"),
  );
  assert.equal(broker.stats().declared_queues, 1);
});

Deno.test("declared queue: default ttl, ack_timeout, max_deliveries and dlq", async () => {
  const t = testBroker();
  const { broker } = t;
  await broker.declareQueue(
    "queue:w",
    decl({ ttlMs: 1000, ackTimeoutMs: 100, maxDeliveries: 2, dlq: "queue:dead" }),
  );
  pub(broker, "queue:w", "expires");
  advance(t, 1000);
  assert.equal(
    queueStats(broker, "queue:w").expired,
    1,
    "the queue's ttl applies to a PUB without one",
  );
  pub(broker, "queue:w", "own-ttl", { ttlMs: 5000 });
  advance(t, 1000);
  assert.equal(queueStats(broker, "queue:w").expired, 1, "a PUB's own ttl wins");
  const c = new FakeClient();
  sub(broker, c, "queue:w", "s", { ack: "explicit" });
  assert.deepEqual(c.texts(), ["own-ttl"]);
  advance(t, 100); // the queue's ack timeout: redelivered
  assert.deepEqual(c.take().map((m) => m.delivery), [2]);
  advance(t, 100); // out of deliveries: to the declared dlq
  assert.equal(queueStats(broker, "queue:dead").depth, 1);
  assert.equal(broker.queues.has("queue:w.dlq"), false);
  // dlq:none drops it.
  await broker.declareQueue("queue:n", decl({ maxDeliveries: 1, dlq: null, ackTimeoutMs: 50 }));
  pub(broker, "queue:n", "x");
  const d = new FakeClient();
  sub(broker, d, "queue:n", "s", { ack: "explicit" });
  assert.equal(d.take().length, 1);
  advance(t, 50);
  const n = queueStats(broker, "queue:n");
  assert.deepEqual([n.size, n.dead_lettered], [0, 1]);
  assert.equal(broker.queues.has("queue:n.dlq"), false);
});

Deno.test("declared queue: stays listed while idle (a plain empty queue is forgotten)", async () => {
  const t = testBroker();
  await t.broker.declareQueue("queue:kept", decl({}));
  pub(t.broker, "queue:plain", "x");
  const c = new FakeClient();
  sub(t.broker, c, "queue:plain", "s", { ack: "none" }).close(false);
  advance(t, 250);
  assert.equal(t.broker.queues.has("queue:kept"), true);
  assert.equal(t.broker.queues.has("queue:plain"), false);
});

Deno.test("scheduled queue message: never early, then visible; due order; counted", () => {
  const t = testBroker();
  const { broker, clock } = t;
  const c = new FakeClient();
  sub(broker, c, "queue:s", "s", { ack: "none" });
  pub(broker, "queue:s", "late", { delayMs: 3000 });
  pub(broker, "queue:s", "soon", { delayMs: 1000 });
  pub(broker, "queue:s", "at", { deliverAt: clock.now() + 2000 });
  pub(broker, "queue:s", "now");
  assert.deepEqual(c.texts(), ["now"]);
  const s = queueStats(broker, "queue:s");
  assert.deepEqual([s.scheduled, s.delayed, s.depth], [3, 3, 0]);
  assert.equal(broker.stats().scheduled_msgs, 3);
  advance(t, 999);
  assert.deepEqual(c.texts(), [], "one millisecond early is early");
  advance(t, 1);
  assert.deepEqual(c.texts(), ["soon"]);
  advance(t, 5000); // both due in one sweep: in due order
  assert.deepEqual(c.texts(), ["at", "late"]);
  advance(t, 5000);
  assert.deepEqual(c.texts(), [], "each fires once");
  assert.equal(queueStats(broker, "queue:s").scheduled, 0);
});

Deno.test("scheduled messages: onDue asks for the earliest due time only; fireDue delivers then", () => {
  const { broker, clock } = testBroker();
  const asked: number[] = [];
  broker.onDue = (at) => asked.push(at - clock.now());
  const c = new FakeClient();
  sub(broker, c, "queue:s", "s", { ack: "none" });
  const t = new FakeClient();
  sub(broker, t, "topic:t", "t");
  pub(broker, "queue:s", "q300", { delayMs: 300 });
  pub(broker, "queue:s", "q500", { delayMs: 500 }); // later: no new wake-up
  pub(broker, "topic:t", "t100", { delayMs: 100 });
  assert.deepEqual(asked, [300, 100]);
  clock.advance(99);
  broker.fireDue(); // woken early (a timer a hair early): nothing, and the next due time is asked again
  assert.deepEqual([c.texts(), t.texts()], [[], []]);
  assert.deepEqual(asked.slice(2), [1]);
  clock.advance(1);
  broker.fireDue();
  assert.deepEqual(t.texts(), ["t100"]);
  assert.deepEqual(asked.slice(3), [200]);
  clock.advance(200);
  broker.fireDue();
  assert.deepEqual(c.texts(), ["q300"]);
  assert.deepEqual(asked.slice(4), [200]);
  clock.advance(200);
  broker.fireDue();
  assert.deepEqual(c.texts(), ["q500"]);
  assert.equal(asked.length, 5, "nothing left: no wake-up asked");
});

Deno.test("scheduled queue message: goes behind ready ones; a past deliver_at is now; ttl counts from then", () => {
  const t = testBroker();
  const { broker, clock } = t;
  pub(broker, "queue:q", "first");
  pub(broker, "queue:q", "scheduled", { delayMs: 10, ttlMs: 100 });
  pub(broker, "queue:q", "past", { deliverAt: clock.now() - 5 });
  advance(t, 60); // more than half its ttl waiting: the ttl has not started
  pub(broker, "queue:q", "last");
  const c = new FakeClient();
  sub(broker, c, "queue:q", "s", { ack: "none" });
  assert.deepEqual(c.texts(), ["first", "past", "scheduled", "last"]);
});

Deno.test("scheduled topic message: published when due, to the subscribers present then", () => {
  const t = testBroker();
  const { broker } = t;
  const early = new FakeClient();
  const s = sub(broker, early, "topic:t", "a");
  const id = pub(broker, "topic:t", "hello", { delayMs: 500 });
  assert.equal(broker.stats().scheduled_msgs, 1);
  s.close(false);
  const late = new FakeClient();
  sub(broker, late, "topic:t", "b");
  advance(t, 499);
  assert.deepEqual(late.texts(), []);
  advance(t, 1);
  assert.deepEqual(late.take().map((m) => [m.id, m.text]), [[id, "hello"]]);
  assert.deepEqual(early.texts(), [], "gone before it was due");
  advance(t, 1000);
  assert.deepEqual(late.texts(), [], "once");
  assert.equal(broker.stats().scheduled_msgs, 0);
});

Deno.test("dedup: a second dedup_id within the window is the first id, not stored; then forgotten", async () => {
  const t = testBroker();
  const { broker } = t;
  const first = pub(broker, "queue:d", "one", { dedupId: "k1" });
  assert.equal(broker.duplicate, false);
  const again = pub(broker, "queue:d", "one again", { dedupId: "k1" });
  assert.equal(broker.duplicate, true);
  assert.equal(again, first);
  pub(broker, "queue:d", "other", { dedupId: "k2" });
  assert.equal(broker.duplicate, false);
  const s = queueStats(broker, "queue:d");
  assert.deepEqual([s.size, s.duplicates, s.dedup_ids], [2, 1, 2]);
  assert.equal(broker.stats().duplicate_msgs, 1);
  advance(t, 120_000); // the default window (2 min) ended
  assert.notEqual(pub(broker, "queue:d", "one", { dedupId: "k1" }), first);
  assert.equal(broker.duplicate, false);
  // Per queue: dedup_window, and 0 turns it off.
  await broker.declareQueue("queue:short", decl({ dedupWindowMs: 1000 }));
  const a = pub(broker, "queue:short", "x", { dedupId: "k" });
  advance(t, 999);
  assert.equal(pub(broker, "queue:short", "x", { dedupId: "k" }), a);
  advance(t, 1);
  assert.notEqual(pub(broker, "queue:short", "x", { dedupId: "k" }), a);
  await broker.declareQueue("queue:off", decl({ dedupWindowMs: 0 }));
  pub(broker, "queue:off", "x", { dedupId: "k" });
  pub(broker, "queue:off", "x", { dedupId: "k" });
  assert.equal(queueStats(broker, "queue:off").size, 2);
  // Topics too, and a duplicate of a scheduled message is not scheduled again.
  const c = new FakeClient();
  sub(broker, c, "topic:t", "s");
  const tid = pub(broker, "topic:t", "x", { dedupId: "k", delayMs: 10 });
  assert.equal(pub(broker, "topic:t", "x", { dedupId: "k", delayMs: 10 }), tid);
  advance(t, 10);
  assert.deepEqual(c.texts(), ["x"]);
});

/** A broker on the log store in `dir`, reading `clock`. */
function logBroker(dir: string, clock: FakeClock): Broker {
  const store = LogStore.open({ dir, fs: nodeFileSystem, fsync: "never", clock });
  return new Broker(testBrokerOptions(clock, { store }));
}

/** Stops `b`, lets `downMs` pass, and starts a broker on the same directory. */
async function restart(b: Broker, dir: string, clock: FakeClock, downMs = 0): Promise<Broker> {
  await b.stateSaved();
  b.options.store.writePending();
  await b.options.store.close();
  clock.advance(downMs);
  return logBroker(dir, clock);
}

Deno.test("log store restart: declarations, scheduled messages and dedup ids come back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-queues-" });
  try {
    const clock = new FakeClock();
    let b = logBroker(dir, clock);
    await b.declareQueue("queue:jobs", decl({ maxMessages: 3, dlq: null, dedupWindowMs: 60_000 }));
    const dedupId = pub(b, "queue:jobs", "once", { dedupId: "order-1" });
    pub(b, "queue:jobs", "in 1s", { delayMs: 1000 });
    pub(b, "topic:news", "in 2s", { delayMs: 2000 });
    b = await restart(b, dir, clock);
    // Settings came back: the queue is still declared, with its limit.
    const s = queueStats(b, "queue:jobs");
    assert.deepEqual([s.declared, s.settings.max_messages, s.settings.dlq], [true, 3, null]);
    await b.declareQueue("queue:jobs", decl({ maxMessages: 3, dlq: null, dedupWindowMs: 60_000 }));
    assert.throws(() => b.declareQueue("queue:jobs", decl({})), isCode("DECLARE_CONFLICT"));
    // The dedup window was rebuilt from the log.
    assert.equal(pub(b, "queue:jobs", "once", { dedupId: "order-1" }), dedupId);
    assert.equal(b.duplicate, true);
    assert.equal(b.stats().scheduled_msgs, 2);
    const c = new FakeClient();
    sub(b, c, "queue:jobs", "s", { ack: "none" });
    const t = new FakeClient();
    sub(b, t, "topic:news", "t");
    assert.deepEqual(c.texts(), ["once"]);
    clock.advance(999);
    b.sweep();
    assert.deepEqual(c.texts(), [], "not early after a restart");
    // Down while they fell due: both come at the first sweep, late.
    b = await restart(b, dir, clock, 5000);
    const c2 = new FakeClient();
    sub(b, c2, "queue:jobs", "s", { ack: "none" });
    const t2 = new FakeClient();
    sub(b, t2, "topic:news", "t");
    b.fireDue(); // as the server does at start
    assert.deepEqual(c2.texts(), ["in 1s"]);
    assert.deepEqual(t2.texts(), ["in 2s"]);
    b = await restart(b, dir, clock, 5000);
    const t3 = new FakeClient();
    sub(b, t3, "topic:news", "t");
    b.sweep();
    assert.deepEqual(t3.texts(), [], "fired once: not again after a restart");
    assert.equal(b.stats().scheduled_msgs, 0);
    await b.options.store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dedup under --fsync always: a duplicate is answered once the first is on disk, not before", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-queues-" });
  const clock = new FakeClock();
  const store = LogStore.open({ dir, fs: nodeFileSystem, fsync: "always", clock });
  try {
    const b = new Broker(testBrokerOptions(clock, { store }));
    const body = new TextEncoder().encode("x");
    const opts = { ...defaultPubOptions(), dedupId: "k" };
    const first = b.publish("queue:d", body, opts);
    assert.ok(first instanceof Promise, "the first waits for its fsync");
    const dup = b.publish("queue:d", body, opts);
    assert.equal(b.duplicate, true);
    assert.equal(dup, first, "the duplicate waits for the same fsync");
    store.writePending();
    const id = await first;
    assert.equal(await dup, id);
    await Promise.resolve(); // the settled first leaves the pending map
    assert.equal(b.publish("queue:d", body, opts), id, "stored: answered at once");
    assert.equal(queueStats(b, "queue:d").size, 1);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log store restart: scheduled messages of many topics, long names, in one store queue, fire in due order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-queues-" });
  try {
    const clock = new FakeClock();
    let b = logBroker(dir, clock);
    const long = `topic:${"n".repeat(240)}`; // longer than any directory name could hold in hex
    pub(b, long, "third", { delayMs: 300 });
    pub(b, "topic:a", "second", { delayMs: 200 });
    pub(b, "topic:b", "first", { delayMs: 100 });
    b = await restart(b, dir, clock, 1000);
    const got: string[] = [];
    const c = new FakeClient();
    for (const [t, sid] of [[long, "l"], ["topic:a", "a"], ["topic:b", "b"]]) sub(b, c, t, sid);
    b.fireDue();
    for (const m of c.take()) got.push(`${m.dest.slice(0, 7)} ${m.text}`);
    assert.deepEqual(got, ["topic:b first", "topic:a second", "topic:n third"]);
    assert.equal(b.stats().scheduled_msgs, 0);
    await b.options.store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scheduled topic message: bound queues (BIND) get their copy when it is due, not before", async () => {
  const t = testBroker();
  const { broker } = t;
  await broker.bind("topic:orders.*", "queue:audit", undefined);
  pub(broker, "topic:orders.eu", "later", { delayMs: 100 });
  assert.equal(broker.queues.get("queue:audit")?.store.size ?? 0, 0, "not before it is due");
  advance(t, 100);
  const c = new FakeClient();
  sub(broker, c, "queue:audit", "a", { ack: "none" });
  assert.deepEqual(c.texts(), ["later"]);
});

Deno.test("declared queue: a copy routed by a binding takes the queue's default ttl", async () => {
  const t = testBroker();
  const { broker } = t;
  await broker.declareQueue("queue:w", decl({ ttlMs: 1000 }));
  await broker.bind("topic:events", "queue:w", undefined);
  pub(broker, "topic:events", "expires");
  pub(broker, "topic:events", "own-ttl", { ttlMs: 5000 });
  advance(t, 999);
  assert.equal(queueStats(broker, "queue:w").expired, 0, "never early");
  advance(t, 1);
  assert.equal(
    queueStats(broker, "queue:w").expired,
    1,
    "the queue's ttl applies to a routed message without one",
  );
  const c = new FakeClient();
  sub(broker, c, "queue:w", "s", { ack: "none" });
  assert.deepEqual(c.texts(), ["own-ttl"], "a message's own ttl wins");
});
