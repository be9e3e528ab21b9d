/**
 * `IdMap` (src/broker/id_map.ts), the in-flight index by message id, against
 * a `Map` under random operations: ids as the broker makes them (`ms * 1024 +
 * seq`, bunched and colliding in their low bits), growth, backward-shift
 * deletion and shrinking.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { IdMap } from "../../src/broker/mod.ts";

/** Ids like the broker's: a few milliseconds apart, sequences within each, some 2^32 apart. */
const ids = fc.tuple(
  fc.integer({ min: 0, max: 40 }),
  fc.integer({ min: 0, max: 1023 }),
  fc.boolean(),
)
  .map(([ms, seq, far]) => (1_765_000_000_000 + ms + (far ? 4_194_304 : 0)) * 1024 + seq);

const op = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), id: ids, v: fc.integer() }),
  fc.record({ kind: fc.constant("delete" as const), id: ids }),
  fc.record({ kind: fc.constant("get" as const), id: ids }),
  fc.record({ kind: fc.constant("take" as const), id: ids }),
);

Deno.test("IdMap: any sequence of set, get, delete and take agrees with Map", () => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 500, maxLength: 3000 }), (ops) => {
      const m = new IdMap<number>();
      const ref = new Map<number, number>();
      for (const o of ops) {
        if (o.kind === "set") {
          m.set(o.id, o.v);
          ref.set(o.id, o.v);
        } else if (o.kind === "delete") assert.equal(m.delete(o.id), ref.delete(o.id));
        else if (o.kind === "take") {
          assert.equal(m.take(o.id), ref.get(o.id));
          ref.delete(o.id);
        } else assert.equal(m.get(o.id), ref.get(o.id));
        assert.equal(m.size, ref.size);
      }
      for (const [id, v] of ref) assert.equal(m.get(id), v);
    }),
    { seed: 15, numRuns: 200 },
  );
});

Deno.test("IdMap: fills to 100,000 ids, empties in another order, and is found again each step", () => {
  const m = new IdMap<number>();
  const base = 1_765_000_000_000 * 1024;
  const n = 100_000;
  for (let i = 0; i < n; i++) m.set(base + i * 7, i);
  assert.equal(m.size, n);
  for (let i = 0; i < n; i += 1000) assert.equal(m.get(base + i * 7), i);
  assert.equal(m.get(base + 1), undefined);
  // Odd ones first, then even: holes everywhere while the table shrinks.
  for (let i = 1; i < n; i += 2) assert.ok(m.delete(base + i * 7));
  for (let i = 0; i < n; i += 2) assert.equal(m.get(base + i * 7), i);
  for (let i = 0; i < n; i += 2) assert.ok(m.delete(base + i * 7));
  assert.equal(m.size, 0);
  assert.equal(m.delete(base), false);
  m.set(base, 1);
  assert.equal(m.get(base), 1);
});

Deno.test("IdMap: a table of up to 16384 slots is kept while it swings; trim and a larger one shrink it", () => {
  const m = new IdMap<number>();
  const base = 1_765_000_000_000 * 1024;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 1000; i++) m.set(base + i, i);
    assert.equal(m.capacity, 2048);
    for (let i = 0; i < 1000; i++) assert.ok(m.delete(base + i));
    assert.equal(m.capacity, 2048, "kept: no rehash on the way down or back up");
  }
  m.trim();
  assert.equal(m.capacity, 0, "trimmed when idle: an empty table goes back whole");
  for (let i = 0; i < 100_000; i++) m.set(base + i, i);
  assert.equal(m.capacity, 262_144);
  for (let i = 0; i < 99_000; i++) assert.ok(m.delete(base + i));
  assert.equal(m.capacity, 16_384, "a large table shrinks as entries leave");
  m.trim();
  assert.equal(m.capacity, 4096, "trim: at most 1/4 full");
  for (let i = 99_000; i < 100_000; i++) assert.equal(m.get(base + i), i);
  m.trim();
  assert.equal(m.capacity, 4096);
  assert.equal(new IdMap().capacity, 0);
});

Deno.test("IdMap: an empty map holds no table, and trim of an emptied one gives it back whole", () => {
  const m = new IdMap<number>();
  const base = 1_765_000_000_000 * 1024;
  assert.equal(m.capacity, 0, "nothing allocated before the first set");
  assert.equal(m.get(base), undefined);
  assert.equal(m.take(base), undefined);
  m.trim();
  assert.equal(m.capacity, 0);
  for (let i = 0; i < 600; i++) m.set(base + i, i);
  m.delete(base + 1);
  m.trim();
  assert.equal(m.capacity, 2048, "trim keeps a table that still holds entries");
  for (let i = 0; i < 600; i++) m.delete(base + i);
  m.trim();
  assert.equal(m.capacity, 0, "an idle connection with nothing in flight holds no table");
  assert.deepEqual(m.values(), []);
  m.set(base + 5, 5);
  assert.equal(m.get(base + 5), 5, "and it is used again as a new one");
  assert.equal(m.capacity, 16);
});
