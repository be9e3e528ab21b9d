/**
 * Declared topics led by one node of a cluster (`ledTopics`), at the
 * broker's seams with fake clients and a memory store standing for the
 * replicated one: a topic is declared only when adopted (over the log
 * recovered in its store), live subscribers keep their place, and a release
 * makes it plain again and tells its replays; durables' positions live in
 * their own store queue and come back with the next adoption.
 */
import assert from "node:assert/strict";
import { BrokerError } from "../../src/broker/mod.ts";
import { MemoryStore, Message, type QueueStore } from "../../src/storage/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { pub, sub, testBroker } from "./harness.ts";

const T = "topic:x";
const D = "durables:topic:x";
const R = { messages: 100, bytes: 1 << 20, ageMs: 0 };

/** A memory store whose queues, once opened, are the same on every open (as the replicated store's). */
class KeptStore extends MemoryStore {
  #queues = new Map<string, QueueStore>();
  override openQueue(name: string): QueueStore {
    let q = this.#queues.get(name);
    if (q === undefined) this.#queues.set(name, q = super.openQueue(name));
    return q;
  }
}

/** A client that records being told its subscription's leader changed. */
class Told extends FakeClient {
  readonly changed: string[] = [];
  leaderChanged(detail: string): void {
    this.changed.push(detail);
  }
}

/** A message as a recovered log holds it. */
function logged(id: number, text: string): Message {
  const payload = new TextEncoder().encode(text);
  return new Message(id, T, payload, 0, 0, 0, 0, undefined, undefined, undefined);
}

Deno.test("led topics: declared only when adopted; live subscribers keep their place", () => {
  const store = new KeptStore();
  const { broker } = testBroker({ store, ledTopics: true });
  // Declared at the leader by the cluster, not here.
  assert.throws(
    () => broker.declare(T, { messages: 10, bytes: undefined, ageMs: undefined }),
    (e) => e instanceof BrokerError && e.code === "BAD_ARGUMENT",
  );
  // While another node leads it, it is a plain topic here: no replay.
  const caught = new FakeClient();
  const lagging = new FakeClient();
  sub(broker, caught, T, "c");
  sub(broker, lagging, T, "l");
  lagging.writable = false;
  const p1 = pub(broker, T, "p1");
  const p2 = pub(broker, T, "p2");
  assert.deepEqual(caught.texts(), ["p1", "p2"]);
  assert.deepEqual(lagging.texts(), []);
  assert.throws(
    () => sub(broker, new FakeClient(), T, "r", { start: { kind: "first" } }),
    (e) => e instanceof BrokerError && e.code === "NOT_DECLARED",
  );
  // Adopted over the log recovered here: an older message, the two, and one never seen here.
  const log = [logged(p1 - 5, "r0"), logged(p1, "p1"), logged(p2, "p2"), logged(p2 + 1, "p3")];
  const q = store.openQueue(T);
  for (const m of log) void q.push(m);
  broker.adoptTopic(T, R, log, D);
  assert.deepEqual(caught.texts(), [], "a caught-up subscriber gets no old message");
  lagging.writable = true;
  for (const s of broker.topic(T)!.bindings) s.sub.activate();
  assert.deepEqual(lagging.texts(), ["p1", "p2", "p3"], "a lagging one goes on where it was");
  const replay = new FakeClient();
  sub(broker, replay, T, "r", { start: { kind: "first" } });
  assert.deepEqual(replay.texts(), ["r0", "p1", "p2", "p3"]);
  pub(broker, T, "p4");
  for (const c of [caught, lagging, replay]) assert.deepEqual(c.texts(), ["p4"]);
  assert.equal(q.size, 5, "a publish goes to its store");
});

Deno.test("led topics: a release tells replays and durables; the positions come back", async () => {
  const store = new KeptStore();
  const { broker } = testBroker({ store, ledTopics: true });
  broker.adoptTopic(T, R, [], D);
  const ids = ["m1", "m2", "m3"].map((t) => pub(broker, T, t));
  const durable = new Told();
  sub(broker, durable, T, "d", { durable: "billing", start: { kind: "first" } });
  assert.deepEqual(durable.take().map((m) => m.text), ["m1", "m2", "m3"]);
  durable.ack(ids[0]);
  durable.ack(ids[1]);
  await broker.stateSaved(); // the position, in the durables' own store queue
  assert.equal(store.openQueue(D).size, 1);
  const live = new Told();
  sub(broker, live, T, "l");
  broker.releaseTopic(T, "no longer the leader");
  assert.deepEqual(durable.changed, ["no longer the leader"]);
  assert.deepEqual(live.changed, [], "a live subscriber stays");
  assert.equal(broker.topic(T)!.retention, undefined);
  pub(broker, T, "plain");
  assert.deepEqual(live.texts(), ["plain"]);
  // Adopted again (say, after the next leader went too): the durable resumes after m2.
  broker.releaseTopic(T, "gone"); // twice is nothing
  const msgs = [...store.openQueue(T).messages()].sort((a, b) => a.id - b.id);
  broker.adoptTopic(T, R, msgs, D);
  const back = new FakeClient();
  sub(broker, back, T, "d", { durable: "billing" });
  assert.deepEqual(back.texts(), ["m3"]);
});
