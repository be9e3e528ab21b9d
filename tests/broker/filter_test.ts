/**
 * Filtered subscriptions over a fake client: topics skip what a selector
 * does not take (without holding the topic's list for it), queues leave it
 * for other consumers in FIFO order, and a filtered queue consumer tests each
 * message about once however long the queue (no rescan per delivery).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { compileFilter, type Filter } from "../../src/filter/mod.ts";
import { encodeHeaders } from "../../src/protocol/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { pub, queueStats, sub, testBroker, topicStats } from "./harness.ts";
import type { Broker } from "../../src/broker/mod.ts";

/** A `filter` option as the parser makes it; `calls` counts evaluations. */
function filter(source: string): { source: string; match: Filter; calls: () => number } {
  const f = compileFilter(source);
  let n = 0;
  return { source, match: (m) => (n++, f(m)), calls: () => n };
}

/** Publishes `body` with headers `h`. */
function pubH(broker: Broker, dest: string, h: Record<string, string>, body: string): number {
  const block = new TextDecoder().decode(encodeHeaders(Object.entries(h)));
  return pub(broker, dest, block + body, { hdrBytes: block.length });
}

/** Bodies received since the last call (the header block cut off). */
function bodies(c: FakeClient): string[] {
  return c.texts().map((t) => t.slice(t.indexOf("\r\n\r\n") + 4));
}

const explicit = { ack: "explicit" } as const;

Deno.test("filter: queue consumers get what they select; the rest stays for others in order", () => {
  const { broker } = testBroker();
  const red = new FakeClient();
  const any = new FakeClient();
  sub(broker, red, "queue:q", "red", { ...explicit, filter: filter("color = 'red'") });
  const colors = ["blue", "red", "green", "red", "blue"];
  colors.forEach((c, i) => pubH(broker, "queue:q", { color: c }, `m${i}`));
  assert.deepEqual(bodies(red), ["m1", "m3"]);
  assert.equal(queueStats(broker, "queue:q").depth, 3);
  sub(broker, any, "queue:q", "any", explicit);
  assert.deepEqual(bodies(any), ["m0", "m2", "m4"]);
  assert.deepEqual(
    broker.queues.get("queue:q")!.consumers[0].stats().filter,
    "color = 'red'",
  );
});

Deno.test("filter: matching consumers share; a NACKed message comes back to a selector", () => {
  const { broker } = testBroker();
  const a = new FakeClient();
  const b = new FakeClient();
  const rest = new FakeClient();
  sub(broker, a, "queue:q", "a", { ...explicit, filter: filter("priority >= 5") });
  sub(broker, b, "queue:q", "b", { ...explicit, filter: filter("priority >= 5") });
  sub(broker, rest, "queue:q", "rest", { ...explicit, filter: filter("priority < 5") });
  const ids = [7, 1, 9, 2, 5].map((p, i) => pub(broker, "queue:q", `p${p}.${i}`, { priority: p }));
  const high = [...a.sent, ...b.sent].sort((x, y) => x.id - y.id).map((m) => m.text);
  assert.deepEqual(high, ["p7.0", "p9.2", "p5.4"]);
  assert.deepEqual(rest.texts(), ["p1.1", "p2.3"]);
  // A NACK puts the message at the front, behind every cursor: a selector still finds it.
  const holder = a.sent.some((m) => m.id === ids[2]) ? a : b;
  a.take();
  b.take();
  holder.nack(ids[2]);
  const back = [...a.texts(), ...b.texts()];
  assert.deepEqual(back, ["p9.2"]);
  assert.equal(rest.texts().length, 0);
});

Deno.test("filter: a consumer nobody else serves leaves unmatched messages queued, in FIFO order", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "queue:q", "c", { ...explicit, filter: filter("missing IS NOT NULL") });
  for (let i = 0; i < 5; i++) pub(broker, "queue:q", `m${i}`);
  assert.deepEqual(c.texts(), []);
  assert.equal(queueStats(broker, "queue:q").depth, 5);
  const later = new FakeClient();
  sub(broker, later, "queue:q", "later", explicit);
  assert.deepEqual(later.texts(), ["m0", "m1", "m2", "m3", "m4"]);
});

Deno.test("filter: a filtered consumer tests each queued message about once (no rescan per delivery)", () => {
  const { broker } = testBroker();
  const f = filter("hit = 'yes'");
  const c = new FakeClient();
  sub(broker, c, "queue:q", "c", { ...explicit, prefetch: 1, filter: f });
  const misses = 2000;
  for (let i = 0; i < misses; i++) pubH(broker, "queue:q", { hit: "no" }, `n${i}`);
  const hits: number[] = [];
  for (let i = 0; i < 50; i++) {
    hits.push(pubH(broker, "queue:q", { hit: "yes" }, `y${i}`));
    // Each ACK frees the one prefetch slot: the next delivery looks again.
  }
  for (const id of hits) c.ack(id);
  assert.equal(bodies(c).length, 50);
  // Rescanning from the front for each of the 50 deliveries would be ~100,000 tests.
  assert.ok(f.calls() <= misses + 2 * 50, `${f.calls()} evaluations`);
  assert.equal(queueStats(broker, "queue:q").depth, misses);
});

Deno.test("filter: header blocks are parsed once per message, however many selectors read them", () => {
  const { broker } = testBroker();
  const clients = [0, 1, 2, 3].map(() => new FakeClient());
  clients.forEach((c, i) =>
    sub(broker, c, "topic:t", `s${i}`, { filter: filter(`n = ${i} OR k = 'x'`) })
  );
  for (let i = 0; i < 8; i++) pubH(broker, "topic:t", { n: String(i % 4), k: "y" }, `m${i}`);
  clients.forEach((c, i) => assert.deepEqual(bodies(c), [`m${i}`, `m${i + 4}`]));
});

Deno.test("filter: topic subscribers skip what they do not select, without holding the list", () => {
  const { broker } = testBroker();
  const fast = new FakeClient();
  const slow = new FakeClient();
  sub(broker, fast, "topic:t", "fast", { filter: filter("priority > 4") });
  sub(broker, slow, "topic:t", "slow", { filter: filter("priority <= 4") });
  const none = new FakeClient();
  sub(broker, none, "topic:t", "none", { filter: filter("priority > 9") });
  none.writable = false;
  for (let i = 0; i < 10; i++) pub(broker, "topic:t", `m${i}`, { priority: 9 - i });
  // A lagging subscriber that selects none of them holds none of them.
  assert.equal(topicStats(broker, "topic:t").retained, 0);
  assert.deepEqual(fast.texts(), ["m0", "m1", "m2", "m3", "m4"]);
  assert.deepEqual(slow.texts(), ["m5", "m6", "m7", "m8", "m9"]);
  slow.writable = false;
  for (let i = 0; i < 10; i++) pub(broker, "topic:t", `m${i}`, { priority: i });
  assert.deepEqual(fast.texts(), ["m5", "m6", "m7", "m8", "m9"]);
  // The lagging one holds its five; the five after them are passed by it (refs 0), and the list,
  // indexed by sequence, lets them go together with its five.
  assert.equal(topicStats(broker, "topic:t").retained, 10);
  slow.writable = true;
  broker.topics.get("topic:t")!.bindings[1].sub.activate();
  assert.deepEqual(slow.texts(), ["m0", "m1", "m2", "m3", "m4"]);
  assert.equal(topicStats(broker, "topic:t").retained, 0);
});

Deno.test("filter: a wildcard subscription keeps publish order across topics it filters", () => {
  const { broker } = testBroker();
  const c = new FakeClient();
  sub(broker, c, "topic:t.*", "w", { filter: filter("correlation_id LIKE 'k%'") });
  sub(broker, new FakeClient(), "topic:t.a", "pin-a");
  sub(broker, new FakeClient(), "topic:t.b", "pin-b");
  c.writable = false;
  const order = ["a:k1", "b:x", "b:k2", "a:x", "a:k3", "b:k4"];
  for (const o of order) {
    const [t, cid] = o.split(":");
    pub(broker, `topic:t.${t}`, o, { correlationId: cid });
  }
  c.writable = true;
  broker.topics.get("topic:t.a")!.bindings[0].sub.activate();
  assert.deepEqual(c.texts(), ["a:k1", "b:k2", "a:k3", "b:k4"]);
});

Deno.test("filter: queue dispatch against a model, any mix of publishes, acks and nacks (property)", () => {
  const FILTERS = ["priority >= 5", "priority < 5", "k = 'a'", "k IS NULL OR priority = 9", ""];
  type Op =
    | { op: "pub"; p: number; k: string }
    | { op: "ack" | "nack"; c: number; n: number }
    | { op: "reset"; c: number };
  const ops = fc.array(
    fc.oneof(
      fc.record({
        op: fc.constant("pub" as const),
        // Few levels, so that requeued messages share one and a cursor's front window holds several.
        p: fc.constantFrom(0, 0, 5, 9),
        k: fc.constantFrom("a", "b", ""),
      }),
      fc.record({
        op: fc.constantFrom("ack" as const, "nack" as const),
        c: fc.nat(2),
        n: fc.nat(5),
      }),
      // The consumer leaves and comes back: all its deliveries are requeued at once.
      fc.record({ op: fc.constant("reset" as const), c: fc.nat(2) }),
    ),
    { maxLength: 300, size: "max" },
  );
  const setup = fc.tuple(
    fc.array(fc.constantFrom(...FILTERS), { minLength: 1, maxLength: 3 }),
    fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 3, maxLength: 3 }),
  );
  fc.assert(
    fc.property(setup, ops, ([filters, prefetch], list: Op[]) => {
      const { broker } = testBroker();
      const compiled = filters.map((f) => f === "" ? undefined : filter(f));
      const start = (c: FakeClient, i: number) =>
        sub(broker, c, "queue:m", `c${i}`, {
          ack: "explicit",
          prefetch: prefetch[i],
          ...(compiled[i] ? { filter: compiled[i] } : {}),
        });
      const clients = filters.map(() => new FakeClient());
      const subs = clients.map((c, i) => start(c, i));
      /** Per consumer and priority, the last first-delivered id (FIFO within a level). */
      const lastFirst = clients.map(() => new Map<number, number>());
      /** What was published, as a filter sees it. */
      const model = new Map<number, { priority: number; k: string }>();
      const inflight = clients.map(() => [] as number[]);
      const selects = (i: number, id: number) => {
        const m = model.get(id)!;
        const f = compiled[i];
        return f === undefined || f.match({
          priority: m.priority,
          contentType: undefined,
          correlationId: undefined,
          replyTo: undefined,
          header: (name) => (name === "k" && m.k !== "" ? m.k : undefined),
        });
      };
      for (const o of list) {
        if (o.op === "pub") {
          const h = o.k === "" ? {} : { k: o.k };
          const block = new TextDecoder().decode(encodeHeaders(Object.entries(h)));
          const id = pub(broker, "queue:m", block + "x", {
            priority: o.p,
            hdrBytes: o.k === "" ? 0 : block.length,
          });
          model.set(id, { priority: o.p, k: o.k });
        } else if (o.op === "reset") {
          if (o.c >= clients.length) continue;
          subs[o.c].close(false);
          inflight[o.c].length = 0;
          clients[o.c] = new FakeClient();
          subs[o.c] = start(clients[o.c], o.c);
        } else if (o.c < clients.length && inflight[o.c].length > 0) {
          const [id] = inflight[o.c].splice(o.n % inflight[o.c].length, 1);
          if (o.op === "ack") clients[o.c].ack(id);
          else clients[o.c].nack(id);
        }
        const q = broker.queues.get("queue:m")!;
        clients.forEach((c, i) => {
          for (const m of c.take()) {
            const held = [...q.store.messages()];
            assert.ok(!held.some((h) => h.id === m.id), "delivered and still ready");
            assert.ok(selects(i, m.id), `c${i} got ${m.id} it does not select`);
            inflight[i].push(m.id);
            if (m.delivery === 1) {
              const p = model.get(m.id)!.priority;
              assert.ok((lastFirst[i].get(p) ?? -1) < m.id, `c${i}: ${m.id} out of order`);
              lastFirst[i].set(p, m.id);
            }
          }
        });
        // No consumer with room leaves a ready message it selects: no cursor missed one.
        const ready = [...q.store.messages()];
        clients.forEach((c, i) => {
          if (c.inflight.size >= prefetch[i]) return;
          const missed = ready.find((m) => selects(i, m.id));
          assert.equal(missed, undefined, `c${i} has room and ${missed?.id} waits`);
        });
      }
    }),
    { numRuns: 300, seed: 12 },
  );
});

Deno.test("filter: messages requeued together are all found again by a filtered consumer", () => {
  const { broker } = testBroker();
  const a = new FakeClient();
  const b = new FakeClient();
  const f = filter("k IS NULL");
  // A message nobody takes stays at the front, so the deque is never emptied (nor its cursors reset).
  pubH(broker, "queue:r", { k: "x" }, "stays");
  sub(broker, a, "queue:r", "a", { ack: "explicit", prefetch: 1, filter: f });
  const bSub = sub(broker, b, "queue:r", "b", { ack: "explicit", prefetch: 3, filter: f });
  const ids = ["m1", "m2", "m3", "m4"].map((t) => pub(broker, "queue:r", t));
  assert.deepEqual(a.texts(), ["m1"]);
  assert.deepEqual(b.texts(), ["m2", "m3", "m4"]);
  bSub.close(false); // m2, m3, m4 go back to the front, together
  for (const [i, want] of [[0, "m2"], [1, "m3"], [2, "m4"]] as const) {
    a.ack(ids[i]);
    assert.deepEqual(a.texts(), [want]);
  }
});

Deno.test("filter: topic subscribers against a model, lagging and catching up (property)", () => {
  const FILTERS = ["priority >= 5", "priority < 5", "priority = 3", "FALSE", ""];
  type Op = { op: "pub"; p: number } | { op: "lag" | "drain"; s: number };
  const ops = fc.array(
    fc.oneof(
      fc.record({ op: fc.constant("pub" as const), p: fc.integer({ min: 0, max: 9 }) }),
      fc.record({ op: fc.constantFrom("lag" as const, "drain" as const), s: fc.nat(3) }),
    ),
    { maxLength: 300, size: "max" },
  );
  const subsOf = fc.array(fc.constantFrom(...FILTERS), { minLength: 1, maxLength: 4 });
  fc.assert(
    fc.property(subsOf, ops, (filters, list: Op[]) => {
      const { broker } = testBroker({ subPendingMessagesMax: 1_000_000 });
      const compiled = filters.map((f) => f === "" ? undefined : compileFilter(f));
      const clients = filters.map(() => new FakeClient());
      const subs = filters.map((f, i) =>
        sub(broker, clients[i], "topic:m", `s${i}`, f === "" ? {} : { filter: filter(f) })
      );
      const want = filters.map(() => [] as string[]);
      const got = filters.map(() => [] as string[]);
      let n = 0;
      for (const o of list) {
        if (o.op === "pub") {
          const text = `m${n++}`;
          pub(broker, "topic:m", text, { priority: o.p });
          compiled.forEach((f, i) => {
            const sel = {
              priority: o.p,
              contentType: undefined,
              correlationId: undefined,
              replyTo: undefined,
              header: () => undefined,
            };
            if (f === undefined || f(sel)) want[i].push(text);
          });
        } else if (o.s < clients.length) {
          clients[o.s].writable = o.op === "drain";
          if (o.op === "drain") subs[o.s].activate();
        }
        clients.forEach((c, i) => got[i].push(...c.texts()));
      }
      clients.forEach((c, i) => {
        c.writable = true;
        subs[i].activate();
        got[i].push(...c.texts());
      });
      // Every subscriber got exactly what it selects, in publish order; nothing is held after.
      filters.forEach((f, i) => assert.deepEqual(got[i], want[i], `s${i} (${f || "all"})`));
      assert.equal(broker.topics.get("topic:m")!.retained, 0);
    }),
    { numRuns: 200, seed: 7 },
  );
});
