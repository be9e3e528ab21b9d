/**
 * The history checker on hand-built histories: each rule is caught and names
 * the operations behind it, and a valid history with unknown outcomes,
 * duplicates and redeliveries is accepted.
 */
import assert from "node:assert/strict";
import { check, describe } from "./checker.ts";
import { History, historyText, type Op } from "./history.ts";

/** A history on a fake clock that advances 1 ms per event. */
function recorder(): { h: History; pub: Pub; deliver: Deliver; ack: Ack } {
  let t = 0;
  const h = new History(() => t++);
  const pub: Pub = (process, value, outcome, node = "n1") => {
    h.add({ type: "invoke", f: "publish", process, node, value });
    if (outcome === undefined) return;
    if (outcome === "ok") h.add({ type: outcome, f: "publish", process, node, value, msgId: "1" });
    else {
      const error = outcome === "fail" ? "ERR QUEUE_FULL" : "timeout";
      h.add({ type: outcome, f: "publish", process, node, value, error });
    }
  };
  const deliver: Deliver = (process, value, node = "n1", redelivered = false) =>
    h.add({ type: "ok", f: "deliver", process, node, value, msgId: "1", redelivered });
  const ack: Ack = (process, value, outcome, node = "n1") => {
    h.add({ type: "invoke", f: "ack", process, node, value, msgId: "1" });
    h.add({ type: outcome, f: "ack", process, node, value, msgId: "1" });
  };
  return { h, pub, deliver, ack };
}
type Outcome = "ok" | "fail" | "info";
type Pub = (process: string, value: string, outcome?: Outcome, node?: string) => void;
type Deliver = (process: string, value: string, node?: string, redelivered?: boolean) => Op;
type Ack = (process: string, value: string, outcome: Outcome, node?: string) => void;

Deno.test("checker: a valid history with unknowns, duplicates and redeliveries is accepted", () => {
  const { h, pub, deliver, ack } = recorder();
  pub("p1", "p1-1", "ok");
  pub("p1", "p1-2", "info"); // connection lost: delivered anyway
  pub("p1", "p1-3", "info"); // timeout: never delivered
  pub("p1", "p1-4"); // never completed (the run ended): unknown
  pub("p2", "p2-1", "fail"); // refused and never delivered
  deliver("c1", "p1-1");
  deliver("c2", "p1-1", "n2", true); // a redelivery before any ack OK: at least once
  ack("c1", "p1-1", "fail"); // UNKNOWN_MSG_ID: the message had moved on
  ack("c2", "p1-1", "ok");
  deliver("c1", "p1-2", "n3");
  ack("c1", "p1-2", "info");
  deliver("c2", "p1-2", "n2", true); // its ack's outcome was unknown: may come again
  ack("c2", "p1-2", "ok");
  const v = check(h.ops, { order: true });
  assert.equal(v.valid, true, describe(v));
  assert.deepEqual(v.violations, []);
  assert.deepEqual(v.stats, {
    publishes: 5,
    publishOk: 1,
    publishFail: 1,
    publishUnknown: 3,
    unknownDelivered: 1,
    deliveries: 4,
    delivered: 2,
    duplicates: 2,
    redelivered: 2,
    unmarked: 0,
    ackOk: 2,
    ackFail: 1,
    ackUnknown: 1,
  });
  assert.match(describe(v), /^VALID: publishes 5 \(ok 1, failed 1, unknown 3/);
});

Deno.test("checker: an OK'd publish never delivered is lost, with its invoke and OK", () => {
  const { h, pub, deliver } = recorder();
  pub("p1", "p1-1", "ok");
  pub("p1", "p1-2", "ok", "n2");
  deliver("c1", "p1-1");
  const v = check(h.ops);
  assert.equal(v.valid, false);
  assert.deepEqual(v.byRule, { lost: 1 });
  const [x] = v.violations;
  assert.equal(x.value, "p1-2");
  assert.deepEqual(x.ops.map((o) => [o.type, o.f, o.node]), [
    ["invoke", "publish", "n2"],
    ["ok", "publish", "n2"],
  ]);
  assert.match(describe(v), /lost: p1-2 was answered OK by n2 \(msg_id 1\) and never delivered/);
});

Deno.test("checker: a delivery of something never published, or before its publish, is a phantom", () => {
  const { h, pub, deliver } = recorder();
  deliver("c1", "ghost-1", "n3");
  deliver("c1", "p1-1"); // before the publish below was invoked
  pub("p1", "p1-1", "ok");
  const v = check(h.ops);
  assert.deepEqual(v.byRule, { phantom: 2 });
  assert.deepEqual(v.violations.map((x) => x.value).sort(), ["ghost-1", "p1-1"]);
  const ghost = v.violations.find((x) => x.value === "ghost-1")!;
  assert.match(ghost.message, /ghost-1 was delivered by n3 but never published/);
  const early = v.violations.find((x) => x.value === "p1-1")!;
  assert.deepEqual(early.ops.map((o) => `${o.f} ${o.type}`), ["deliver ok", "publish invoke"]);
});

Deno.test("checker: a delivery after an ACK's OK is caught, one before it is not", () => {
  const { h, pub, deliver, ack } = recorder();
  pub("p1", "p1-1", "ok");
  deliver("c1", "p1-1");
  deliver("c2", "p1-1", "n2", true); // before the ACK's OK: allowed
  ack("c1", "p1-1", "ok");
  const late = deliver("c2", "p1-1", "n3", true); // after it: the ack was forgotten
  const v = check(h.ops);
  assert.deepEqual(v.byRule, { "delivered-after-ack": 1 });
  const [x] = v.violations;
  assert.deepEqual(x.ops.map((o) => `${o.f} ${o.type} ${o.process}`), [
    "ack invoke c1",
    "ack ok c1",
    "deliver ok c2",
  ]);
  assert.equal(x.ops[2], late);
  assert.match(x.message, /delivered to c2 by n3 .* after c1's ACK of it was answered OK by n1/);
});

Deno.test("checker: a refused publish that is delivered anyway is caught", () => {
  const { h, pub, deliver } = recorder();
  pub("p1", "p1-1", "fail");
  deliver("c1", "p1-1");
  const v = check(h.ops);
  assert.deepEqual(v.byRule, { "failed-delivered": 1 });
  assert.match(v.violations[0].message, /refused \(ERR QUEUE_FULL\) and delivered anyway/);
});

Deno.test("checker: order of first deliveries per publisher, only when asked", () => {
  const { h, pub, deliver } = recorder();
  pub("p1", "p1-1", "ok");
  pub("p1", "p1-2", "ok");
  pub("p2", "p2-1", "ok");
  deliver("c1", "p1-2");
  deliver("c1", "p2-1");
  deliver("c1", "p1-1");
  deliver("c1", "p1-2", "n1", true); // a redelivery does not count: first deliveries only
  assert.equal(check(h.ops).valid, true);
  const v = check(h.ops, { order: true });
  assert.deepEqual(v.byRule, { order: 1 });
  assert.equal(v.violations[0].value, "p1-2");
  assert.match(v.violations[0].message, /p1-2 was first delivered before p1-1/);
});

Deno.test("checker: pipelined publishes (invoked before the previous OK) may be delivered in any order", () => {
  const { h, deliver } = recorder();
  h.add({ type: "invoke", f: "publish", process: "p1", node: "n1", value: "p1-1" });
  h.add({ type: "invoke", f: "publish", process: "p1", node: "n2", value: "p1-2" });
  h.add({ type: "ok", f: "publish", process: "p1", node: "n1", value: "p1-1" });
  h.add({ type: "ok", f: "publish", process: "p1", node: "n2", value: "p1-2" });
  deliver("c1", "p1-2");
  deliver("c1", "p1-1");
  assert.equal(check(h.ops, { order: true }).valid, true);
});

Deno.test("history: written as JSON one op per line, read back whole", () => {
  const { h, pub, deliver } = recorder();
  pub("p1", "p1-1", "ok");
  deliver("c1", "p1-1");
  h.note("kill -9 n1");
  const text = historyText(h.toJSON({ seed: 1 }));
  assert.equal(text.trim().split("\n").length, 2 + h.ops.length);
  assert.deepEqual(JSON.parse(text), {
    about: { seed: 1 },
    nemesis: [{ time: 3, what: "kill -9 n1" }],
    ops: h.ops,
  });
  assert.deepEqual(h.counts(), { "publish invoke": 1, "publish ok": 1, "deliver ok": 1 });
});

Deno.test("checker: with marked, a payload delivered again without a delivery count is named", () => {
  const { h, pub, deliver, ack } = recorder();
  pub("p1", "p1-1", "ok");
  pub("p1", "p1-2", "ok");
  const first = deliver("c1", "p1-1", "n1");
  deliver("c1", "p1-2", "n1");
  deliver("c1", "p1-2", "n2", true); // marked: fine
  const again = deliver("c2", "p1-1", "n3"); // the new leader forgot n1 delivered it
  ack("c2", "p1-1", "ok");
  ack("c1", "p1-2", "ok");
  // Counted, and allowed, unless asked.
  const lax = check(h.ops);
  assert.equal(lax.valid, true, describe(lax));
  assert.equal(lax.stats.unmarked, 1);
  assert.equal(lax.stats.duplicates, 2);
  const v = check(h.ops, { marked: true });
  assert.equal(v.valid, false);
  assert.deepEqual(v.byRule, { "unmarked-redelivery": 1 });
  assert.equal(v.violations[0].value, "p1-1");
  assert.deepEqual(v.violations[0].ops, [first, again]);
  assert.match(describe(v), /unmarked-redelivery: p1-1 was delivered again to c2 by n3 without/);
  assert.match(describe(v), /unmarked duplicates 1/);
});
