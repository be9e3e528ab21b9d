/**
 * The SDK's ack window on its own (src/client/ack_window.ts): which acks may
 * go out as one cumulative `upto` and which must go by id. The end-to-end
 * behaviour against a broker is in client_acks_test.ts.
 */
import assert from "node:assert/strict";
import { AckWindow } from "../src/client/ack_window.ts";
import { ACK_WINDOW_ENTRIES_MAX } from "../src/client/limits.ts";

/** Delivers ids 1..n (first deliveries); returns their numbers. */
function deliver(w: AckWindow, ids: number[], delivery = 1): number[] {
  return ids.map((id) => w.deliver(id, delivery));
}

Deno.test("ack window: a run in delivery order is one upto; the prefix is dropped", () => {
  const w = new AckWindow("s1");
  const n = deliver(w, [10, 11, 12, 13]);
  for (const x of n.slice(0, 3)) assert.ok(w.ack(x));
  const ids: string[] = [];
  assert.equal(w.collect(ids), 12);
  assert.deepEqual(ids, []);
  assert.equal(w.size, 1, "13 is still open");
  assert.equal(w.collect(ids), -1, "nothing new");
});

Deno.test("ack window: acks past an open delivery go by id, once", () => {
  const w = new AckWindow("s1");
  const n = deliver(w, [1, 2, 3, 4, 5]);
  w.ack(n[0]);
  w.ack(n[2]);
  w.ack(n[4]);
  const ids: string[] = [];
  assert.equal(w.collect(ids), 1);
  assert.deepEqual(ids, ["3", "5"]);
  // Now 2 and 4: the run reaches 4 (3 and 5 were written by id, they are passed over).
  w.ack(n[1]);
  w.ack(n[3]);
  const more: string[] = [];
  assert.equal(w.collect(more), 4);
  assert.deepEqual(more, []);
  assert.equal(w.size, 0);
});

Deno.test("ack window: a delivery settled by another line is passed over, never the upto", () => {
  const w = new AckWindow("s1");
  const n = deliver(w, [1, 2, 3]);
  w.ack(n[0]);
  w.settled(n[1]); // nacked
  assert.equal(w.ack(n[1]), false, "settled: not taken again");
  const ids: string[] = [];
  assert.equal(w.collect(ids), 1);
  w.ack(n[2]);
  assert.equal(w.collect(ids), 3);
  assert.deepEqual(ids, []);
});

Deno.test("ack window: a redelivery makes the older delivery of its id go by id", () => {
  const w = new AckWindow("s1");
  const n = deliver(w, [7, 8, 9]);
  w.ack(n[0]); // acked before the redelivery: by id, not as an upto naming 7
  const again = w.deliver(7, 2);
  const ids: string[] = [];
  assert.equal(w.collect(ids), -1);
  assert.deepEqual(ids, ["7"]);
  // An open older delivery of 8 is gone at the broker: its ack is refused (goes by id).
  w.deliver(8, 2);
  assert.equal(w.ack(n[1]), false);
  assert.ok(w.ack(again));
  w.ack(n[2]);
  // The run: the old 8 (gone), 9, the new 7; the new 8 came after it and stays open.
  const more: string[] = [];
  assert.equal(w.collect(more), 7);
  assert.deepEqual(more, []);
  assert.equal(w.size, 1);
});

Deno.test("ack window: ids that do not fit a number, or a full window, turn it off until reset", () => {
  const w = new AckWindow("s1");
  const a = w.deliver(1, 1);
  assert.equal(w.deliver(-1, 1), -1, "an id past 2^53");
  assert.equal(w.deliver(2, 1), -1, "off: later deliveries are not recorded");
  assert.ok(w.ack(a), "what was recorded still works");
  assert.equal(w.collect([]), 1);
  w.reset();
  assert.equal(w.deliver(3, 1), 0);

  const full = new AckWindow("s2");
  for (let i = 0; i < ACK_WINDOW_ENTRIES_MAX; i++) assert.equal(full.deliver(i + 1, 1), i);
  assert.equal(full.deliver(ACK_WINDOW_ENTRIES_MAX + 1, 1), -1);
  assert.ok(full.ack(ACK_WINDOW_ENTRIES_MAX - 1));
  assert.deepEqual(((ids: string[]) => [full.collect(ids), ids])([]), [
    -1,
    [String(ACK_WINDOW_ENTRIES_MAX)],
  ]);
});

Deno.test("ack window: a redelivery after the window turned off still retires the older delivery", () => {
  // The broker's order: X (recorded), then, with the window off, Z (not
  // recorded, never acked) and X again (ack timeout). An `upto:X` would now
  // settle Z as well: the old delivery of X must go by id.
  const w = new AckWindow("s1");
  const x = w.deliver(1, 1);
  assert.equal(w.deliver(-1, 1), -1, "off");
  assert.equal(w.deliver(2, 1), -1, "Z, not recorded");
  assert.equal(w.deliver(1, 2), -1, "X again, not recorded");
  assert.equal(w.ack(x), false, "the old delivery of X is gone: by id");
  assert.equal(w.collect([]), -1, "no upto that would cover Z");

  // The same once acked before the redelivery came: by id, not an upto.
  const v = new AckWindow("s2");
  const y = v.deliver(5, 1);
  v.deliver(-1, 1);
  assert.ok(v.ack(y));
  v.deliver(6, 1);
  v.deliver(5, 2);
  const ids: string[] = [];
  assert.equal(v.collect(ids), -1);
  assert.deepEqual(ids, ["5"]);
});
