/**
 * Checks a queue history (`history.ts`) for what a replicated queue
 * promises, rule by rule, and names the operations behind each violation:
 *
 * - `lost`: a publish answered `OK` whose payload was never delivered (the
 *   history ends after a final drain, so "by the end" is well defined);
 * - `phantom`: a delivery of a payload that was never published (no publish
 *   invoked), or delivered before its publish was invoked;
 * - `failed-delivered`: a delivery of a publish that definitely failed (an
 *   `ERR` that says it was not accepted, such as `QUEUE_FULL`);
 * - `delivered-after-ack`: a delivery of a payload after an `ACK` of it was
 *   answered `OK` (the ack was acknowledged, then forgotten);
 * - `order` (with `order: true`, for a single consumer): per publisher, a
 *   publish that completed before another was invoked is first delivered
 *   before it;
 * - `unmarked-redelivery` (with `marked: true`): a payload delivered again
 *   without the broker's redelivery mark (`delivery:<n>`, n > 1), as if it
 *   had never been delivered (a failover that forgot the old leader's
 *   deliveries; a `max_deliveries` rule would count it short).
 *
 * Unknown outcomes (`info`: connection lost, timeout, `ERR UNAVAILABLE`) may
 * go either way: delivered or not, neither is a violation. Duplicates before
 * an ack's `OK` are at-least-once delivery, counted but allowed.
 *
 * @module
 */
import type { Op } from "./history.ts";

/** The rules a violation can break. */
export type Rule =
  | "lost"
  | "phantom"
  | "failed-delivered"
  | "delivered-after-ack"
  | "order"
  | "unmarked-redelivery";

/** One broken rule, with the operations that show it. */
export interface Violation {
  rule: Rule;
  /** The payload concerned. */
  value: string;
  /** One sentence for a human. */
  message: string;
  ops: Op[];
}

/** What the history holds, beside its violations. */
export interface CheckStats {
  publishes: number;
  publishOk: number;
  publishFail: number;
  publishUnknown: number;
  /** Publishes with an unknown outcome that were delivered anyway. */
  unknownDelivered: number;
  deliveries: number;
  /** Distinct payloads delivered. */
  delivered: number;
  /** Deliveries beyond the first of their payload (allowed: at least once). */
  duplicates: number;
  /** Deliveries the broker marked as redeliveries. */
  redelivered: number;
  /** Deliveries beyond the first of their payload that the broker did not mark as redeliveries. */
  unmarked: number;
  ackOk: number;
  ackFail: number;
  ackUnknown: number;
}

/** The checker's answer. */
export interface Verdict {
  valid: boolean;
  violations: Violation[];
  /** Violations per rule. */
  byRule: Partial<Record<Rule, number>>;
  stats: CheckStats;
}

/** Options of {@linkcode check}. */
export interface CheckOptions {
  /** Check per-publisher order of first deliveries (meaningful with one consumer). */
  order?: boolean;
  /** Check that every delivery of a payload after its first is marked a redelivery. */
  marked?: boolean;
}

/** A publish: its invoke and how it completed (undefined: never completed, i.e. unknown). */
interface Publish {
  invoke: Op;
  done?: Op;
}

/** Checks `ops` (in history order) against every rule. */
export function check(ops: readonly Op[], options: CheckOptions = {}): Verdict {
  const publishes = new Map<string, Publish>();
  const pendingAcks = new Map<string, Op[]>();
  const firstDelivery = new Map<string, Op>();
  /** The earliest `OK` of an ack, per payload. */
  const ackedAt = new Map<string, { invoke: Op; ok: Op }>();
  const violations: Violation[] = [];
  const stats: CheckStats = {
    publishes: 0,
    publishOk: 0,
    publishFail: 0,
    publishUnknown: 0,
    unknownDelivered: 0,
    deliveries: 0,
    delivered: 0,
    duplicates: 0,
    redelivered: 0,
    unmarked: 0,
    ackOk: 0,
    ackFail: 0,
    ackUnknown: 0,
  };
  for (const op of ops) {
    if (op.f === "publish") {
      if (op.type === "invoke") {
        if (!publishes.has(op.value)) publishes.set(op.value, { invoke: op });
        stats.publishes++;
      } else {
        const p = publishes.get(op.value);
        if (p !== undefined && p.done === undefined) p.done = op;
      }
    } else if (op.f === "ack") {
      const key = `${op.process}\u0000${op.value}`;
      if (op.type === "invoke") {
        const list = pendingAcks.get(key) ?? [];
        list.push(op);
        pendingAcks.set(key, list);
        continue;
      }
      const invoke = pendingAcks.get(key)?.shift() ?? op;
      if (op.type === "ok") {
        stats.ackOk++;
        if (!ackedAt.has(op.value)) ackedAt.set(op.value, { invoke, ok: op });
      } else if (op.type === "fail") stats.ackFail++;
      else stats.ackUnknown++;
    } else {
      stats.deliveries++;
      if (op.redelivered) stats.redelivered++;
      const first = firstDelivery.get(op.value);
      if (first === undefined) firstDelivery.set(op.value, op);
      else {
        stats.duplicates++;
        if (!op.redelivered) {
          stats.unmarked++;
          if (options.marked) {
            violations.push({
              rule: "unmarked-redelivery",
              value: op.value,
              message: `${op.value} was delivered again to ${op.process} by ${op.node} without ` +
                `a delivery count, as if never delivered (first by ${first.node})`,
              ops: [first, op],
            });
          }
        }
      }
      const acked = ackedAt.get(op.value);
      if (acked !== undefined && op.time > acked.ok.time) {
        violations.push({
          rule: "delivered-after-ack",
          value: op.value,
          message: `${op.value} was delivered to ${op.process} by ${op.node} ${
            (op.time - acked.ok.time).toFixed(1)
          } ms after ${acked.ok.process}'s ACK of it was answered OK by ${acked.ok.node}`,
          ops: [acked.invoke, acked.ok, op],
        });
      }
    }
  }
  for (const [value, p] of publishes) {
    const type = p.done?.type ?? "info";
    const first = firstDelivery.get(value);
    if (type === "ok") stats.publishOk++;
    else if (type === "fail") stats.publishFail++;
    else {
      stats.publishUnknown++;
      if (first !== undefined) stats.unknownDelivered++;
    }
    if (type === "ok" && first === undefined) {
      violations.push({
        rule: "lost",
        value,
        message: `${value} was answered OK by ${p.done!.node} (msg_id ${
          p.done!.msgId ?? "?"
        }) and never delivered`,
        ops: [p.invoke, p.done!],
      });
    }
    if (first !== undefined && first.time < p.invoke.time) {
      violations.push({
        rule: "phantom",
        value,
        message: `${value} was delivered before its publish was invoked`,
        ops: [first, p.invoke],
      });
    }
    if (type === "fail" && first !== undefined) {
      violations.push({
        rule: "failed-delivered",
        value,
        message: `${value} was refused (${p.done!.error}) and delivered anyway by ${first.node}`,
        ops: [p.invoke, p.done!, first],
      });
    }
  }
  for (const [value, first] of firstDelivery) {
    if (publishes.has(value)) continue;
    violations.push({
      rule: "phantom",
      value,
      message: `${value} was delivered by ${first.node} but never published`,
      ops: [first],
    });
  }
  stats.delivered = firstDelivery.size;
  if (options.order) violations.push(...orderViolations(publishes, firstDelivery));
  const byRule: Partial<Record<Rule, number>> = {};
  for (const v of violations) byRule[v.rule] = (byRule[v.rule] ?? 0) + 1;
  return { valid: violations.length === 0, violations, byRule, stats };
}

/**
 * Per publisher, in invoke order: a publish that completed (ok) before another
 * was invoked must be first delivered before it. Each publish is compared
 * with the predecessor first delivered last, so each inversion is reported once.
 */
function orderViolations(
  publishes: Map<string, Publish>,
  firstDelivery: Map<string, Op>,
): Violation[] {
  const byProcess = new Map<string, Publish[]>();
  for (const p of publishes.values()) {
    const list = byProcess.get(p.invoke.process) ?? [];
    list.push(p);
    byProcess.set(p.invoke.process, list);
  }
  const out: Violation[] = [];
  for (const list of byProcess.values()) {
    list.sort((a, b) => a.invoke.index - b.invoke.index);
    // Publishes that completed ok and were delivered, by completion time: a pointer
    // walks them as the invokes advance, keeping the one first delivered last.
    const done = list
      .filter((p) => p.done?.type === "ok" && firstDelivery.has(p.invoke.value))
      .sort((a, b) => a.done!.index - b.done!.index);
    let next = 0;
    let worst: { p: Publish; d: Op } | undefined;
    for (const p of list) {
      while (next < done.length && done[next].done!.time < p.invoke.time) {
        const q = done[next++];
        const qd = firstDelivery.get(q.invoke.value)!;
        if (worst === undefined || qd.index > worst.d.index) worst = { p: q, d: qd };
      }
      const d = firstDelivery.get(p.invoke.value);
      if (d === undefined || worst === undefined || worst.d.index < d.index) continue;
      out.push({
        rule: "order",
        value: p.invoke.value,
        message: `${p.invoke.value} was first delivered before ${worst.p.invoke.value}, ` +
          `which ${p.invoke.process} published (OK) before it`,
        ops: [worst.p.invoke, worst.p.done!, p.invoke, d, worst.d],
      });
    }
  }
  return out;
}

/** A verdict as a few lines for a human: the counts, then up to `max` violations. */
export function describe(v: Verdict, max = 20): string {
  const s = v.stats;
  const lines = [
    `${
      v.valid ? "VALID" : "INVALID"
    }: publishes ${s.publishes} (ok ${s.publishOk}, failed ${s.publishFail}, ` +
    `unknown ${s.publishUnknown}, of which delivered ${s.unknownDelivered}); deliveries ${s.deliveries} ` +
    `of ${s.delivered} payloads (duplicates ${s.duplicates}, marked redelivered ${s.redelivered}, ` +
    `unmarked duplicates ${s.unmarked}); ` +
    `acks ok ${s.ackOk}, failed ${s.ackFail}, unknown ${s.ackUnknown}`,
  ];
  if (!v.valid) lines.push(`violations: ${JSON.stringify(v.byRule)}`);
  for (const x of v.violations.slice(0, max)) {
    lines.push(`  ${x.rule}: ${x.message}`);
    for (const op of x.ops) lines.push(`    ${JSON.stringify(op)}`);
  }
  if (v.violations.length > max) lines.push(`  ... and ${v.violations.length - max} more`);
  return lines.join("\n");
}
