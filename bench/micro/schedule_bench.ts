/**
 * The time index of scheduled messages (`PUB ... delay:`): the memory store's
 * due-time heap, the same one NACK delays use. Inserts at 1e3, 1e6 already
 * scheduled (O(log n): the cost grows by the heap's depth, not by n), one
 * due message popped by the sweep at 1e6, and the whole run: 1,000,000
 * inserts with random due times, then one sweep that makes them all ready.
 * The memory the index holds at 1,000,000 is printed once at start (heap
 * used after a GC, before and after the inserts).
 *
 * Run: `deno bench --allow-all --v8-flags=--expose-gc bench/micro/schedule_bench.ts`
 */
import { MemoryQueueStore, Message } from "../../src/storage/mod.ts";
import { rng } from "../fuzz_frames.ts";

const N = 1_000_000;
const T0 = 1_800_000_000_000;
const payload = new Uint8Array(16);
let nextId = 1;
const msg = () =>
  new Message(nextId++, "queue:b", payload, 0, 0, 0, 0, undefined, undefined, undefined, 0);

/** Seeded: the same due times every run. */
const rand = rng(42);
/** Due times spread over one day after T0. */
const due = () => T0 + 1 + Math.floor(rand() * 86_400_000);

const gc = (globalThis as { gc?: () => void }).gc;
function heapUsed(): number {
  gc?.();
  return Deno.memoryUsage().heapUsed;
}

/** Bytes the index holds per scheduled message (the messages themselves exist before and are not counted). */
function indexBytes(): void {
  if (gc === undefined) {
    console.log("schedule index: run with --v8-flags=--expose-gc for its memory figure");
    return;
  }
  const ms = Array.from({ length: N }, msg);
  const dues = Array.from({ length: N }, due);
  const before = heapUsed();
  const scheduled = new MemoryQueueStore("queue:scheduled");
  for (let i = 0; i < N; i++) scheduled.push(ms[i], dues[i]);
  const bytes = heapUsed() - before;
  console.log(
    `schedule index holding ${scheduled.scheduled} messages: ${
      (bytes / 2 ** 20).toFixed(1)
    } MiB, ` +
      `${(bytes / N).toFixed(1)} bytes per message`,
  );
}
indexBytes();

for (const size of [1e3, 1e6]) {
  const store = new MemoryQueueStore("queue:b");
  for (let i = 0; i < size; i++) store.push(msg(), due());
  Deno.bench({
    name: `schedule: insert with ${size.toExponential(0)} scheduled`,
    group: "schedule-insert",
    baseline: size === 1e3,
    fn() {
      store.push(msg(), due());
    },
  });
}

{
  // One message due per sweep, the rest (1e6) still waiting: the sweep's cost is the pop.
  const store = new MemoryQueueStore("queue:b");
  for (let i = 0; i < N; i++) store.push(msg(), T0 + 86_400_000 + i);
  let now = T0;
  Deno.bench({
    name: "schedule: sweep pops one due message with 1e6 scheduled",
    group: "schedule-pop",
    fn() {
      store.push(msg(), ++now);
      store.sweep(now);
      store.remove(store.take(now)!, "acked");
    },
  });
}

Deno.bench({
  name: `schedule: insert ${N} with random due times, then one sweep makes them all ready`,
  group: "schedule-all",
  n: 3,
  warmup: 1,
  fn(b) {
    const ms = Array.from({ length: N }, msg);
    const store = new MemoryQueueStore("queue:b");
    b.start();
    for (const m of ms) store.push(m, due());
    store.sweep(T0 + 86_400_001);
    b.end();
    if (store.ready !== N || store.scheduled !== 0) throw new Error("not all due");
  },
});
