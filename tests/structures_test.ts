/**
 * Property tests of the data structures under the stores (fast-check against
 * a plain array model). Their O(1) cost is measured by `deno task bench`, not
 * asserted by a timed test.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Deque, DequeCursor, Heap, MemoryQueueStore, Message, Ring } from "../src/storage/mod.ts";

type Op = { op: "push" | "unshift"; v: number } | { op: "shift" };
const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant("push" as const), v: fc.integer() }),
    fc.record({ op: fc.constant("unshift" as const), v: fc.integer() }),
    fc.record({ op: fc.constant("shift" as const) }),
  ),
  { maxLength: 5000 },
);

Deno.test("deque: behaves like an array under any mix of push, unshift and shift", () => {
  fc.assert(
    fc.property(ops, (list: Op[]) => {
      const d = new Deque<number>();
      const model: number[] = [];
      for (const o of list) {
        if (o.op === "push") (d.push(o.v), model.push(o.v));
        else if (o.op === "unshift") (d.unshift(o.v), model.unshift(o.v));
        else assert.equal(d.shift(), model.shift());
        assert.equal(d.length, model.length);
        assert.equal(d.peek(), model[0]);
      }
      assert.deepEqual([...d], model);
    }),
    { numRuns: 200, seed: 42 },
  );
});

Deno.test("deque: cursors take the first item they want, leaving holes, under any mix of ops", () => {
  const scanOps = fc.array(
    fc.oneof(
      fc.record({ op: fc.constant("push" as const), v: fc.integer({ min: 0, max: 99 }) }),
      fc.record({ op: fc.constant("unshift" as const), v: fc.integer({ min: 0, max: 99 }) }),
      fc.record({ op: fc.constant("shift" as const) }),
      fc.record({ op: fc.constant("scan" as const), k: fc.constantFrom(2, 3) }),
      fc.record({ op: fc.constant("compact" as const) }),
    ),
    { maxLength: 3000, size: "max" },
  );
  fc.assert(
    fc.property(scanOps, (list) => {
      const d = new Deque<number>();
      // The model keeps holes as undefined, as the deque does.
      const model: (number | undefined)[] = [];
      const cursors = new Map([[2, new DequeCursor<number>()], [3, new DequeCursor<number>()]]);
      for (const o of list) {
        if (o.op === "push") (d.push(o.v), model.push(o.v));
        else if (o.op === "unshift") (d.unshift(o.v), model.unshift(o.v));
        else if (o.op === "shift") assert.equal(d.shift(), model.shift());
        else if (o.op === "compact") {
          d.compact();
          model.splice(0, model.length, ...model.filter((v) => v !== undefined));
        } else {
          const want = (v: number) => v % o.k === 0;
          const i = model.findIndex((v) => v !== undefined && want(v));
          assert.equal(d.scan(cursors.get(o.k)!, want), i < 0 ? undefined : model[i]);
          if (i >= 0) model[i] = undefined;
        }
        assert.equal(d.length, model.length);
        assert.equal(d.holes, model.filter((v) => v === undefined).length);
      }
      assert.deepEqual([...d], model.filter((v) => v !== undefined));
    }),
    { numRuns: 200, seed: 11 },
  );
});

Deno.test("ring: indexed access matches an array while pushing and shifting", () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { maxLength: 3000 }), (pushes: boolean[]) => {
      const r = new Ring<number>();
      const model: number[] = [];
      let n = 0;
      for (const push of pushes) {
        if (push) (r.push(n), model.push(n++));
        else assert.equal(r.shift(), model.shift());
        assert.equal(r.length, model.length);
        if (model.length > 0) {
          const i = model.length >> 1;
          assert.equal(r.at(i), model[i]);
        }
      }
    }),
    { numRuns: 200, seed: 7 },
  );
});

Deno.test("heap: pops in key order; filter keeps the heap valid", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 500 }),
      (keys: number[]) => {
        const h = new Heap<number>();
        keys.forEach((k, i) => h.push(k, i));
        h.filter((i) => i % 3 !== 0);
        const expected = keys.map((k, i) => [k, i]).filter(([, i]) => i % 3 !== 0).map(([k]) => k)
          .sort((a, b) => a - b);
        const got: number[] = [];
        while (h.length > 0) {
          got.push(h.peekKey());
          h.pop();
        }
        assert.deepEqual(got, expected);
      },
    ),
    { numRuns: 200, seed: 3 },
  );
});

Deno.test("memory store: holes behind a message nobody takes are compacted", () => {
  const q = new MemoryQueueStore("queue:holes");
  const mk = (id: number, cid?: string) =>
    new Message(id, q.name, new Uint8Array(1), 0, 0, 0, 0, cid, undefined, undefined);
  q.push(mk(1, "stuck"));
  const cursor = q.newCursor();
  const plain = (m: Message) => m.correlationId === undefined;
  for (let id = 2; id < 20_002; id++) {
    q.push(mk(id));
    const m = q.takeMatching(cursor, plain, 0);
    assert.equal(m?.id, id);
    q.remove(m!, "acked");
  }
  assert.equal(q.size, 1);
  // Without compaction the level would hold 20,001 slots.
  assert.ok(q.slots <= 2 * 1024 + 1, `${q.slots} slots`);
  assert.equal(q.take(0)?.id, 1);
});
