/**
 * The broker's side of permissions: a wildcard subscription binds only to
 * topics its client may read (at subscribe, as topics appear, again after a
 * change), and a client's `lagBytesMax` tightens its topic subscriptions.
 */
import assert from "node:assert/strict";
import { FakeClient } from "./fake_client.ts";
import { pub, sub, testBroker } from "./harness.ts";

/** A client whose user may read the topics `readable` accepts. */
class ReaderClient extends FakeClient {
  readable: (topic: string) => boolean = () => true;
  lagBytesMax: number | undefined = undefined;
  mayRead(topic: string): boolean {
    return this.readable(topic);
  }
}

Deno.test("broker: a wildcard subscription is bound only to topics its client may read", () => {
  const { broker } = testBroker();
  const other = new FakeClient();
  sub(broker, other, "topic:public.old", "o1");
  sub(broker, other, "topic:private.old", "o2");
  const c = new ReaderClient();
  c.readable = (t) => t.startsWith("topic:public.");
  const s = sub(broker, c, "topic:>", "all");
  for (const t of ["public.old", "private.old", "public.new", "private.new", "public.a.b"]) {
    pub(broker, `topic:${t}`, t);
  }
  assert.deepEqual(c.texts(), ["public.old", "public.new", "public.a.b"]);
  const bound = broker.topics.get("topic:private.old")!.bindings.map((b) => b.sub);
  assert.equal(bound.includes(s as never), false, "never bound, so never a candidate");
  assert.equal(broker.topics.has("topic:private.new"), false, "no topic made for a denied reader");

  // The user's permissions change: the subscription re-decides its topics.
  c.readable = (t) => t.startsWith("topic:private.");
  s.permissionsChanged();
  pub(broker, "topic:public.old", "p");
  pub(broker, "topic:private.old", "q");
  assert.deepEqual(c.texts(), ["q"]);
});

Deno.test("broker: a client's lagBytesMax tightens the lag its topic subscriptions may have", () => {
  const { broker } = testBroker({ subPendingBytesMax: 1 << 20 });
  const tight = new ReaderClient();
  tight.lagBytesMax = 100;
  tight.writable = false; // not reading: everything waits in the topic
  const loose = new FakeClient();
  loose.writable = false;
  sub(broker, tight, "topic:t", "s");
  sub(broker, loose, "topic:t", "s");
  for (let i = 0; i < 11; i++) pub(broker, "topic:t", "x".repeat(10));
  assert.equal(tight.slowCalls.length, 1, "over 100 bytes behind");
  assert.equal(loose.slowCalls.length, 0, "the broker's 1 MiB applies to the other");
});
