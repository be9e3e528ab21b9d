/**
 * The store conformance suite: one set of behaviours every `Store` must have,
 * run against the memory store and the log store (under each fsync policy).
 * A durable store also gets the restart checks: what was ready or unacked
 * comes back (unacked as a redelivery with its count), what left does not,
 * and `lastId` continues the ids.
 */
import assert from "node:assert/strict";
import { Message, MessageState, type QueueStore, type Store } from "../../src/storage/mod.ts";

/** A store implementation under test. */
export interface StoreFactory {
  /** Shown in test names. */
  name: string;
  /** Whether what it holds survives `close()` and a new `open()`. */
  durable: boolean;
  /** A fresh backing (a temp dir); `open` may be called again after `close` of the last store. */
  create(): Promise<{ open(): Store; cleanup(): Promise<void> }>;
}

const T0 = 1_800_000_000_000;
const encoder = new TextEncoder();
let nextId = 1;

/** Options of a test message. */
interface MsgOptions {
  priority?: number;
  ttlMs?: number;
  acceptedAt?: number;
  body?: string;
  correlationId?: string;
  replyTo?: string;
  contentType?: string;
  hdrBytes?: number;
}

/** A message for queue `dest` with a fresh, increasing id. */
export function msg(dest: string, o: MsgOptions = {}): Message {
  const at = o.acceptedAt ?? T0;
  const ttl = o.ttlMs ?? 0;
  return new Message(
    nextId++,
    dest,
    encoder.encode(o.body ?? `body-${nextId}`),
    o.hdrBytes ?? 0,
    o.priority ?? 0,
    ttl,
    ttl === 0 ? 0 : at + ttl,
    o.correlationId,
    o.replyTo,
    o.contentType,
    at,
  );
}

/** Takes every deliverable message at `now`; returns their ids. */
function drain(q: QueueStore, now = T0): number[] {
  const ids: number[] = [];
  for (let i = 0; i < 100_000; i++) {
    const m = q.take(now);
    if (m === undefined) return ids;
    ids.push(m.id);
  }
  assert.fail("drain: no end");
}

/** One macrotask: the store's end-of-tick write (a microtask) has run. */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

/** Pushes and waits for durability when the store asks for it. */
async function push(q: QueueStore, ...ms: Message[]): Promise<void> {
  await Promise.all(ms.map((m) => q.push(m)));
}

/** Registers the suite for one store implementation. */
export function storeConformance(f: StoreFactory): void {
  const test = (name: string, fn: (store: Store, again: () => Store) => Promise<void>) =>
    Deno.test(`store conformance [${f.name}]: ${name}`, async () => {
      const env = await f.create();
      let store = env.open();
      try {
        await fn(store, () => store = env.open());
      } finally {
        await store.close();
        await env.cleanup();
      }
    });

  test("FIFO within a priority level", async (s) => {
    const q = s.openQueue("queue:fifo");
    const ms = Array.from({ length: 50 }, () => msg(q.name));
    await push(q, ...ms);
    assert.deepEqual(drain(q), ms.map((m) => m.id));
  });

  test("higher priority first, FIFO within each level", async (s) => {
    const q = s.openQueue("queue:prio");
    const ms = [0, 5, 9, 5, 0, 9, 1].map((priority) => msg(q.name, { priority }));
    await push(q, ...ms);
    const want = [...ms].sort((a, b) => b.priority - a.priority || a.id - b.id).map((m) => m.id);
    assert.deepEqual(drain(q), want);
  });

  test("take counts the delivery; remove settles; requeue puts back at the front in order", async (s) => {
    const q = s.openQueue("queue:requeue");
    const [a, b, c, d] = [msg(q.name), msg(q.name), msg(q.name), msg(q.name)];
    await push(q, a, b, c, d);
    assert.equal(q.take(T0), a);
    assert.equal(q.take(T0), b);
    assert.equal(q.take(T0), c);
    assert.equal(a.deliveries, 1);
    assert.equal(a.state, MessageState.INFLIGHT);
    assert.deepEqual([q.ready, q.inflight, q.size], [1, 3, 4]);
    q.remove(b, "acked");
    assert.equal(b.state, MessageState.DONE);
    // The broker gives a consumer's messages back newest first, so they keep their order.
    q.requeue(c, 0, T0);
    q.requeue(a, 0, T0);
    assert.deepEqual([q.ready, q.inflight, q.size], [3, 0, 3]);
    const again = [q.take(T0)!, q.take(T0)!, q.take(T0)!];
    assert.deepEqual(again.map((m) => m.id), [a.id, c.id, d.id]);
    assert.deepEqual(again.map((m) => m.deliveries), [2, 2, 1]);
    q.remove(b, "acked"); // settled twice: ignored
    assert.equal(q.removed.acked, 1);
  });

  test("takeMatching: a consumer's selector takes its messages; the rest keep their order", async (s) => {
    const q = s.openQueue("queue:matching");
    const ms = [0, 7, 0, 7, 3].map((priority, i) => msg(q.name, { priority, body: `b${i}` }));
    await push(q, ...ms);
    const odd = q.newCursor();
    const isOdd = (m: Message) => m.priority % 2 === 1;
    assert.deepEqual([q.takeMatching(odd, isOdd, T0)?.id, q.takeMatching(odd, isOdd, T0)?.id], [
      ms[1].id,
      ms[3].id,
    ]);
    const taken = q.takeMatching(odd, isOdd, T0)!;
    assert.equal(taken.id, ms[4].id);
    assert.equal(taken.state, MessageState.INFLIGHT);
    assert.equal(taken.deliveries, 1);
    assert.equal(q.takeMatching(odd, isOdd, T0), undefined);
    assert.deepEqual([q.ready, q.inflight], [2, 3]);
    // Given back, it is found again by the same cursor, behind which it now sits.
    q.requeue(taken, 0, T0);
    assert.equal(q.takeMatching(odd, isOdd, T0), taken);
    assert.equal(taken.deliveries, 2);
    assert.deepEqual(drain(q), [ms[0].id, ms[2].id]);
    assert.deepEqual([...q.messages()], []);
  });

  test("requeue goes to the front of its own priority level only", async (s) => {
    const q = s.openQueue("queue:requeue-prio");
    const low = msg(q.name, { priority: 1 });
    const high = msg(q.name, { priority: 7 });
    await push(q, low, high);
    assert.equal(q.take(T0), high);
    assert.equal(q.take(T0), low);
    q.requeue(low, 0, T0);
    const high2 = msg(q.name, { priority: 7 });
    await push(q, high2);
    assert.deepEqual(drain(q), [high2.id, low.id]);
  });

  test("NACK delay: due again through sweep, not before", async (s) => {
    const q = s.openQueue("queue:delay");
    const a = msg(q.name);
    const b = msg(q.name);
    await push(q, a, b);
    assert.equal(q.take(T0), a);
    q.requeue(a, 1000, T0);
    assert.deepEqual([q.ready, q.inflight, q.delayed, q.size], [1, 0, 1, 2]);
    assert.equal(a.state, MessageState.DELAYED);
    assert.equal(q.nextDueAt(), T0 + 1000);
    assert.deepEqual(drain(q), [b.id]);
    assert.equal(q.sweep(T0 + 999), 0);
    assert.equal(q.take(T0 + 999), undefined);
    q.sweep(T0 + 1000);
    assert.deepEqual([q.ready, q.delayed], [1, 0]);
    const again = q.take(T0 + 1000)!;
    assert.equal(again, a);
    assert.equal(again.deliveries, 2);
  });

  test("TTL: expired messages are never taken and count as expired", async (s) => {
    const q = s.openQueue("queue:ttl-take");
    const short = msg(q.name, { ttlMs: 10, body: "12345" });
    const long = msg(q.name, { ttlMs: 10_000 });
    await push(q, short, long);
    assert.equal(q.take(T0 + 10), long, "expired at its expiry time");
    assert.equal(q.removed.expired, 1);
    assert.equal(short.state, MessageState.DONE);
    assert.equal(q.bytes, long.size);
    assert.equal(q.size, 1);
  });

  test("TTL: sweep expires ready and delayed messages; an in-flight one expires when it comes back", async (s) => {
    const q = s.openQueue("queue:ttl-sweep");
    const a = msg(q.name, { ttlMs: 100 });
    const b = msg(q.name, { ttlMs: 100 });
    const c = msg(q.name, { ttlMs: 100 });
    const keep = msg(q.name);
    await push(q, a, b, c, keep);
    assert.equal(q.nextDueAt(), T0 + 100);
    assert.equal(q.take(T0), a);
    assert.equal(q.take(T0), b);
    q.requeue(b, 50, T0);
    assert.equal(q.sweep(T0 + 100), 2, "b (delayed) and c (ready)");
    assert.deepEqual([q.ready, q.inflight, q.delayed, q.size], [1, 1, 0, 2]);
    q.requeue(a, 0, T0 + 101);
    assert.equal(a.state, MessageState.DONE);
    assert.equal(q.removed.expired, 3);
    assert.deepEqual(drain(q, T0 + 101), [keep.id]);
  });

  test("sweep finds due messages without rescanning the queue", async (s) => {
    const q = s.openQueue("queue:sweep-cost");
    const n = 50_000;
    const pending: (void | Promise<void>)[] = [];
    for (let i = 0; i < n; i++) pending.push(q.push(msg(q.name)));
    const ttl = msg(q.name, { ttlMs: 5 });
    pending.push(q.push(ttl));
    await Promise.all(pending);
    assert.equal(q.nextDueAt(), T0 + 5);
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) q.sweep(T0 + 1);
    assert.equal(q.sweep(T0 + 5), 1);
    assert.equal(q.nextDueAt(), Infinity);
    // A rescan would touch 50k messages 10k times (seconds); the heap makes it microseconds.
    assert.ok(
      performance.now() - started < 500,
      `10k sweeps took ${performance.now() - started} ms`,
    );
    assert.equal(q.size, n);
  });

  test("dropOldest removes the oldest ready message of any level", async (s) => {
    const q = s.openQueue("queue:drop");
    const a = msg(q.name, { priority: 0 });
    const b = msg(q.name, { priority: 9 });
    const c = msg(q.name, { priority: 0 });
    await push(q, a, b, c);
    assert.equal(q.take(T0), b);
    assert.equal(q.dropOldest(), a);
    assert.equal(q.removed.dropped, 1);
    assert.deepEqual([q.ready, q.inflight], [1, 1]);
    assert.equal(q.dropOldest(), c);
    assert.equal(q.dropOldest(), undefined, "in-flight messages are not dropped");
  });

  test("counts, bytes and removed counters through every exit", async (s) => {
    const q = s.openQueue("queue:counts");
    const ms = ["a", "bb", "ccc", "dddd", "eeeee"].map((body) => msg(q.name, { body }));
    await push(q, ...ms);
    assert.deepEqual([q.ready, q.size, q.bytes], [5, 5, 15]);
    const [a, b, c] = [q.take(T0)!, q.take(T0)!, q.take(T0)!];
    q.remove(a, "acked");
    q.remove(b, "dead_lettered");
    q.requeue(c, 500, T0);
    assert.deepEqual([q.ready, q.inflight, q.delayed, q.size, q.bytes], [2, 0, 1, 3, 12]);
    q.dropOldest();
    q.remove(c, "acked"); // a delayed message can be settled too
    assert.deepEqual([q.ready, q.inflight, q.delayed, q.size, q.bytes], [1, 0, 0, 1, 5]);
    assert.deepEqual({ ...q.removed }, {
      acked: 2,
      expired: 0,
      dropped: 1,
      dead_lettered: 1,
      purged: 0,
      replayed: 0,
    });
    assert.equal(a.payload.length, 0, "a settled message lets its payload go");
  });

  test("purge removes ready and delayed messages, leaves in-flight ones to their ACK", async (s) => {
    const q = s.openQueue("queue:purge");
    const ms = [0, 5, 0, 9, 0].map((priority) => msg(q.name, { priority }));
    await push(q, ...ms);
    const [x, y] = [q.take(T0)!, q.take(T0)!];
    q.requeue(y, 1000, T0); // delayed
    assert.deepEqual([q.ready, q.inflight, q.delayed], [3, 1, 1]);
    assert.equal(q.purge(), 4);
    assert.deepEqual([q.ready, q.inflight, q.delayed, q.size, q.bytes], [0, 1, 0, 1, x.size]);
    assert.equal(q.removed.purged, 4);
    assert.equal(q.take(T0 + 5000), undefined, "the delayed one is gone too");
    assert.equal(q.sweep(T0 + 5000), 0);
    q.remove(x, "acked");
    assert.equal(q.size, 0);
    const later = msg(q.name);
    await push(q, later);
    assert.equal(q.take(T0)?.id, later.id, "the queue works on after a purge");
    assert.equal(q.purge(), 0);
  });

  test("messages() lists the ready messages, highest priority first", async (s) => {
    const q = s.openQueue("queue:list");
    const ms = [3, 0, 3, 7].map((priority) => msg(q.name, { priority }));
    await push(q, ...ms);
    const taken = q.take(T0)!;
    const want = ms.filter((m) => m !== taken)
      .sort((a, b) => b.priority - a.priority || a.id - b.id).map((m) => m.id);
    assert.deepEqual([...q.messages()].map((m) => m.id), want);
  });

  test("queues are independent; dropQueue forgets an empty one", async (s) => {
    const a = s.openQueue("queue:one");
    const b = s.openQueue("queue:two");
    const m = msg(a.name);
    await push(a, m);
    assert.equal(b.size, 0);
    a.remove(a.take(T0)!, "acked");
    s.dropQueue("queue:one");
    assert.equal(s.openQueue("queue:one").size, 0);
  });

  test("synced(): a promise for this tick's records only where replies wait for the device", async (s) => {
    const q = s.openQueue("queue:synced");
    const r = s.openQueue("queue:synced-2");
    const [a, b, c] = [msg(q.name), msg(q.name), msg(r.name)];
    const pushed = q.push(a);
    assert.equal(pushed instanceof Promise, s.waitsForSync, "push waits exactly when synced does");
    await Promise.all([pushed, q.push(b), r.push(c)]);
    await tick(); // the end of the tick that wrote them
    assert.equal(s.synced(), undefined, "nothing appended since the last write");
    q.remove(q.take(T0)!, "acked"); // a DELIVER and a REMOVE in one queue
    const one = s.synced();
    assert.equal(one instanceof Promise, s.waitsForSync);
    assert.equal(s.synced(), one, "one promise for the whole tick, not one per call");
    q.requeue(q.take(T0)!, 100, T0);
    assert.equal(s.synced(), one, "still one queue: the same promise");
    r.remove(r.take(T0)!, "acked");
    const two = s.synced();
    assert.equal(two instanceof Promise, s.waitsForSync);
    if (s.waitsForSync) assert.notEqual(two, one, "a second queue: one promise over both");
    assert.equal(s.synced(), two);
    await Promise.all([one, two]);
    await tick();
    assert.equal(s.synced(), undefined, "written and synced: nothing waits");
    s.writePending();
    assert.equal(s.synced(), undefined);
  });

  test("scheduled push: invisible until due, then at the back in due order, counted", async (s) => {
    const q = s.openQueue("queue:scheduled");
    const [late, soon, plain] = [msg(q.name), msg(q.name), msg(q.name)];
    await Promise.all([q.push(late, T0 + 200), q.push(soon, T0 + 100), q.push(plain)]);
    assert.deepEqual([q.ready, q.delayed, q.scheduled, q.size], [1, 2, 2, 3]);
    assert.equal(q.nextDueAt(), T0 + 100);
    q.sweep(T0 + 99);
    assert.deepEqual(drain(q, T0 + 99), [plain.id], "not before its time");
    const after = msg(q.name);
    await q.push(after);
    q.sweep(T0 + 200);
    assert.deepEqual(q.scheduled, 0);
    assert.deepEqual(drain(q, T0 + 200), [after.id, soon.id, late.id]);
    assert.equal(soon.deliveries, 1, "a first delivery");
    // A burst due in the same millisecond comes out in publish order (the heap alone is not stable).
    const burst = Array.from({ length: 200 }, () => msg(q.name));
    await Promise.all(burst.map((m) => q.push(m, T0 + 300)));
    q.sweep(T0 + 300);
    assert.deepEqual(drain(q, T0 + 300), burst.map((m) => m.id));
  });

  if (!f.durable) return;

  test(
    "restart: a scheduled message waits for its time again, an overdue one is due at the next sweep",
    async (s, again) => {
      let q = s.openQueue("queue:sched-restart");
      const far = Date.now() + 3_600_000;
      const [waits, overdue] = [msg(q.name), msg(q.name)];
      await Promise.all([q.push(waits, far), q.push(overdue, Date.now() - 1)]);
      await s.close();
      s = again();
      q = s.openQueue("queue:sched-restart");
      assert.deepEqual([q.size, q.scheduled, q.ready], [2, 2, 0]);
      assert.ok(q.nextDueAt() <= Date.now(), "the overdue one asks for a sweep now");
      q.sweep(Date.now());
      assert.deepEqual(drain(q, Date.now()), [overdue.id]);
      q.sweep(far);
      const m = q.take(far)!;
      assert.deepEqual([m.id, m.deliveries], [waits.id, 1]);
    },
  );

  test("restart: ready and unacked messages come back, settled ones do not", async (s, again) => {
    let q = s.openQueue("queue:restart");
    const ms = Array.from({ length: 10 }, (_, i) => msg(q.name, { priority: i % 3 }));
    await push(q, ...ms);
    const taken = [q.take(T0)!, q.take(T0)!, q.take(T0)!, q.take(T0)!, q.take(T0)!];
    q.remove(taken[0], "acked");
    q.remove(taken[1], "dead_lettered");
    q.requeue(taken[2], 0, T0); // back, delivered once
    // taken[3] and taken[4] stay in flight: the broker dies with them unacked.
    const dropped = q.dropOldest()!;
    await s.close();
    s = again();
    assert.deepEqual(s.queueNames(), ["queue:restart"]);
    assert.ok(s.lastId() >= ms[ms.length - 1].id);
    q = s.openQueue("queue:restart");
    const gone = new Set([taken[0].id, taken[1].id, dropped.id]);
    const left = ms.filter((m) => !gone.has(m.id));
    assert.equal(q.size, left.length);
    assert.equal(q.ready, left.length, "unacked messages are ready again");
    const got = [...Array(left.length)].map(() => q.take(T0)!);
    const want = [...left].sort((a, b) => b.priority - a.priority || a.id - b.id);
    assert.deepEqual(got.map((m) => m.id), want.map((m) => m.id));
    const count = new Map(got.map((m) => [m.id, m.deliveries]));
    assert.equal(count.get(taken[2].id), 2, "requeued once: second delivery");
    assert.equal(count.get(taken[3].id), 2, "in flight at the crash: redelivered");
    assert.equal(count.get(taken[4].id), 2);
    for (const m of got) {
      const orig = ms.find((o) => o.id === m.id)!;
      assert.equal(m.priority, orig.priority);
      assert.equal(new TextDecoder().decode(m.payload), `body-${m.id + 1}`);
    }
  });

  test("restart: purged messages stay gone, the in-flight one comes back", async (s, again) => {
    let q = s.openQueue("queue:purged");
    const ms = Array.from({ length: 6 }, () => msg(q.name));
    await push(q, ...ms);
    const kept = q.take(T0)!;
    assert.equal(q.purge(), 5);
    await s.close();
    s = again();
    q = s.openQueue("queue:purged");
    assert.equal(q.size, 1);
    assert.equal(q.take(T0)?.id, kept.id);
  });

  test("restart: every field survives, a NACK delay keeps its due time", async (s, again) => {
    const now = Date.now();
    let q = s.openQueue("queue:fields");
    const full = msg(q.name, {
      priority: 4,
      ttlMs: 3_600_000,
      acceptedAt: now,
      body: "Trace: x\r\n\r\nhéllo",
      hdrBytes: 12,
      correlationId: "corr-ü-1",
      replyTo: "queue:replies",
      contentType: "application/json",
    });
    const delayed = msg(q.name, { acceptedAt: now });
    await push(q, full, delayed);
    q.take(now); // full (priority 4)
    const d = q.take(now)!;
    q.requeue(d, 60_000, now);
    const due = d.dueAt;
    await s.close();
    s = again();
    q = s.openQueue("queue:fields");
    assert.deepEqual([q.ready, q.delayed], [1, 1]);
    assert.equal(q.nextDueAt(), Math.min(due, full.expiresAt));
    const m = q.take(Date.now())!;
    for (const k of ["id", "priority", "ttlMs", "expiresAt", "acceptedAt", "hdrBytes"] as const) {
      assert.equal(m[k], full[k], k);
    }
    assert.equal(m.correlationId, "corr-ü-1");
    assert.equal(m.replyTo, "queue:replies");
    assert.equal(m.contentType, "application/json");
    assert.equal(new TextDecoder().decode(m.payload), "Trace: x\r\n\r\nhéllo");
    assert.equal(m.deliveries, 2);
    q.sweep(due);
    const d2 = q.take(due)!;
    assert.equal(d2.id, delayed.id);
    assert.equal(d2.deliveries, 2);
  });

  test("restart: lastId is the highest id stored, also when it was acked", async (s, again) => {
    const q = s.openQueue("queue:ids");
    const ms = [msg(q.name), msg(q.name), msg(q.name)];
    await push(q, ...ms);
    q.remove(q.take(T0)!, "acked");
    q.remove(q.take(T0)!, "acked");
    q.remove(q.take(T0)!, "acked");
    await s.close();
    s = again();
    assert.equal(s.lastId(), ms[2].id);
    assert.deepEqual(s.queueNames(), [], "an empty queue is not recovered");
  });

  test("restart: an expired message is not delivered after the restart", async (s, again) => {
    const now = Date.now();
    let q = s.openQueue("queue:ttl-restart");
    const short = msg(q.name, { ttlMs: 1, acceptedAt: now - 10 });
    const keep = msg(q.name, { acceptedAt: now });
    await push(q, short, keep);
    await s.close();
    s = again();
    q = s.openQueue("queue:ttl-restart");
    assert.equal(q.take(Date.now())?.id, keep.id);
    assert.equal(q.removed.expired, 1);
  });
}
