/** Message ids: `take(n)` (a run of publishes) leaves the generator as `n` calls of `next` would. */
import assert from "node:assert/strict";
import { IdGenerator } from "../../src/broker/ids.ts";
import { rng } from "../helpers.ts";

Deno.test("ids: take(n) returns the n-th next() and leaves the same state, across ms and overflow", () => {
  const random = rng(7);
  const a = new IdGenerator(5_000 * 1024 + 1000);
  const b = new IdGenerator(5_000 * 1024 + 1000);
  let now = 5_000;
  for (let round = 0; round < 2000; round++) {
    if (random() < 0.3) now += Math.floor(random() * 3); // the clock stands, or moves on
    const n = 1 + Math.floor(random() * (random() < 0.1 ? 5000 : 40)); // some runs overflow a ms
    let last = 0;
    for (let i = 0; i < n; i++) last = a.next(now + 0.25);
    assert.equal(b.take(n, now + 0.25), last, `round ${round}: ${n} ids at ${now}`);
    assert.equal(b.next(now), a.next(now));
  }
});
