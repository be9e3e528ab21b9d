/**
 * Queue store micro benchmarks: enqueue + dequeue + ack cost at 1e3, 1e4,
 * 1e5 and 1e6 messages already queued. Flat numbers across the group are
 * the O(1) claim of docs/ARCHITECTURE.md. Run: `deno task bench:micro`.
 */
import { MemoryQueueStore, Message } from "../../src/storage/mod.ts";

const payload = new Uint8Array(16);
let nextId = 1;
const msg = (priority = 0) =>
  new Message(nextId++, "queue:b", payload, 0, priority, 0, 0, undefined, undefined, undefined, 0);

for (const size of [1e3, 1e4, 1e5, 1e6]) {
  const store = new MemoryQueueStore("queue:b");
  for (let i = 0; i < size; i++) store.push(msg(i % 3));
  Deno.bench({
    name: `queue store: push + take + ack with ${size.toExponential(0)} queued`,
    group: "queue-store",
    baseline: size === 1e3,
    fn() {
      store.push(msg(1));
      const m = store.take(0)!;
      store.remove(m, "acked");
    },
  });
}

for (const size of [1e3, 1e4, 1e5, 1e6]) {
  // The same message object goes round: the deque and priority levels alone,
  // without the garbage collector's cost of a heap holding `size` messages.
  const store = new MemoryQueueStore("queue:b");
  for (let i = 0; i < size; i++) store.push(msg(i % 3));
  Deno.bench({
    name: `queue store: take + push (no allocation) with ${size.toExponential(0)} queued`,
    group: "queue-store-structure",
    baseline: size === 1e3,
    fn() {
      const m = store.take(0)!;
      store.remove(m, "acked");
      m.state = 0;
      store.push(m);
    },
  });
}

for (const size of [1e3, 1e6]) {
  const store = new MemoryQueueStore("queue:b");
  for (let i = 0; i < size; i++) store.push(msg());
  Deno.bench({
    name: `queue store: take + requeue (NACK) with ${size.toExponential(0)} queued`,
    group: "queue-nack",
    baseline: size === 1e3,
    fn() {
      const m = store.take(0)!;
      store.requeue(m, 0, 0);
    },
  });
}
