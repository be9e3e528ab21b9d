/**
 * Bindings when they are the cluster's (src/cluster/bindings.ts), at the
 * broker's seams: a fake `BoundCopies` stands for the copy links to other
 * nodes' leaders and a fake `SharedBindings` for etcd. A copy for a queue
 * another node leads is sent, not stored here, and the publisher's reply
 * waits for it; a peer's message, sent now or scheduled, is never routed
 * again (its own node did); over the copies' limit nothing is published.
 */
import assert from "node:assert/strict";
import type { BoundCopies, Broker, SharedBindings } from "../../src/broker/mod.ts";
import { BrokerError } from "../../src/broker/mod.ts";
import { defaultPubOptions } from "../../src/protocol/mod.ts";
import type { Message } from "../../src/storage/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { advance, queueStats, sub, testBroker } from "./harness.ts";

/** Copies for `queue:far*` go "to another node": recorded, each answered when the test says. */
class FakeCopies implements BoundCopies, SharedBindings {
  sent: { queue: string; text: string; answer: PromiseWithResolvers<void> }[] = [];
  refuse: BrokerError | undefined;
  constructor(readonly broker: Broker) {}

  remote(queue: string): boolean {
    if (!queue.startsWith("queue:far")) return false;
    if (this.refuse !== undefined) throw this.refuse;
    return true;
  }
  send(queue: string, msg: Message): Promise<void> {
    const answer = Promise.withResolvers<void>();
    this.sent.push({ queue, text: new TextDecoder().decode(msg.payload), answer });
    return answer.promise;
  }
  // etcd, as far as this node sees it: applied here at once.
  bind(pattern: string, queue: string): Promise<void> {
    return this.broker.applyBinding(pattern, queue, undefined);
  }
  unbind(pattern: string, queue: string): Promise<void> {
    return this.broker.applyUnbind(pattern, queue);
  }
}

function clustered() {
  const t = testBroker();
  const copies = new FakeCopies(t.broker);
  t.broker.bindings = copies;
  t.broker.copies = copies;
  return { ...t, copies };
}

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("cluster bindings: a copy for another node's queue is sent there, and the reply waits for it", async () => {
  const { broker, copies } = clustered();
  await broker.bind("topic:t.*", "queue:far", undefined);
  await broker.bind("topic:t.*", "queue:near", undefined);
  const r = broker.publishDeferred("topic:t.a", bytes("x"), 0, 1, undefined);
  assert.equal(typeof r, "number");
  const durable = broker.durable;
  assert.ok(durable !== undefined, "the reply waits for the remote copy");
  let settled = false;
  durable.then(() => settled = true);
  assert.deepEqual(copies.sent.map((s) => [s.queue, s.text]), [["queue:far", "x"]]);
  assert.equal(queueStats(broker, "queue:near").depth, 1, "the local copy is stored here");
  assert.equal(broker.queues.has("queue:far"), false, "another node's queue is not made here");
  await Promise.resolve();
  assert.equal(settled, false);
  copies.sent[0].answer.resolve();
  await durable;
  // The leader refused the copy: the publish is refused with its answer.
  const p = broker.publish("topic:t.b", bytes("y"), undefined);
  assert.ok(p instanceof Promise);
  copies.sent[1].answer.reject(new BrokerError("QUEUE_FULL", "queue:far is full"));
  await assert.rejects(p, (e) => e instanceof BrokerError && e.code === "QUEUE_FULL");
  const stats = broker.bindingStats({ offset: 0, limit: 10 }).list;
  assert.deepEqual(stats.map((b) => [b.queue, b.routed]), [["queue:far", 2], ["queue:near", 2]]);
});

Deno.test("cluster bindings: a peer's message is not routed again, now or when due", async () => {
  const t = clustered();
  const { broker, copies } = t;
  await broker.bind("topic:t", "queue:near", undefined);
  await broker.bind("topic:t", "queue:far", undefined);
  const live = new FakeClient();
  sub(broker, live, "topic:t", "s");
  broker.publishFromPeer("topic:t", bytes("peer"), 0, 4, undefined);
  const delayed = { ...defaultPubOptions(), delayMs: 100 };
  broker.publishFromPeer("topic:t", bytes("peer-later"), 0, 10, delayed);
  broker.publish("topic:t", bytes("here-later"), delayed);
  advance(t, 200);
  broker.fireDue();
  // Its subscribers get them all; only this node's own publish is copied.
  assert.deepEqual(live.texts(), ["peer", "peer-later", "here-later"]);
  assert.equal(queueStats(broker, "queue:near").depth, 1);
  assert.deepEqual(copies.sent.map((s) => s.text), ["here-later"]);

  // A single node routes every message it publishes, a peer's too (no cluster bindings).
  const single = testBroker().broker;
  await single.bind("topic:t", "queue:near", undefined);
  single.publishFromPeer("topic:t", bytes("peer"), 0, 4, undefined);
  assert.equal(queueStats(single, "queue:near").depth, 1);
});

Deno.test("cluster bindings: a copy that cannot be sent now refuses the publish before anything is done", async () => {
  const { broker, copies } = clustered();
  await broker.bind("topic:t", "queue:near", undefined);
  await broker.bind("topic:t", "queue:far", undefined);
  const live = new FakeClient();
  sub(broker, live, "topic:t", "s");
  copies.refuse = new BrokerError("LIMIT", "65536 bound copies wait for n1");
  assert.throws(
    () => broker.publish("topic:t", bytes("x"), undefined),
    (e) => e instanceof BrokerError && e.code === "LIMIT",
  );
  assert.deepEqual(live.texts(), []);
  assert.equal(queueStats(broker, "queue:near").depth, 0);
  assert.deepEqual(copies.sent, []);
});
