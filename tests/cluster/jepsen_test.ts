/**
 * Jepsen-style fault tests: real broker processes (and a real etcd) under a
 * workload that records every operation; the checker (checker.ts) judges
 * the history, not end counts.
 *
 * 1. The checker finds a real loss: one node without replication
 *    (`--memory`) is SIGKILLed with OK'd messages queued; the history says
 *    exactly those are lost.
 * 2. No false alarm: one durable node (`--fsync always`) SIGKILLed 3 times
 *    under load gives a valid history (order included) that the checker accepts.
 * 3. The guarantees on three nodes: the leader of the queue SIGKILLed five
 *    times and SIGSTOPped once past its lease, a follower restarted with an
 *    empty data dir (then the leader killed: its copy counts), etcd
 *    restarted, under load: every OK'd publish delivered, nothing delivered
 *    after its ACK's OK, nothing phantom.
 */
import assert from "node:assert/strict";
import { check, describe } from "./checker.ts";
import { ETCD_MISSING } from "./etcd.ts";
import { History, historyText } from "./history.ts";
import { JepsenCluster } from "./jepsen_harness.ts";
import { Workload } from "./jepsen_client.ts";
import { runJepsen, type RunResult, WORKLOAD_DEFAULTS } from "./jepsen_run.ts";

Deno.test("jepsen: the checker finds the OK'd publishes a kill -9 of an unreplicated node lost", async () => {
  const history = new History();
  const cluster = await JepsenCluster.start(
    { nodes: 1, etcd: false, memory: true },
    history,
    WORKLOAD_DEFAULTS.queue,
  );
  const w = new Workload(history, {
    ...WORKLOAD_DEFAULTS,
    publishers: 2,
    targets: cluster.targets,
  });
  let killedAt = 0;
  try {
    // Messages queue up with nobody consuming; then the node dies with them.
    w.startPublishers();
    await until(() => w.okd.size >= 100, "100 publishes OK'd");
    killedAt = performance.now();
    await cluster.restart(cluster.nodes[0]);
    const before = w.okd.size;
    await until(() => w.okd.size >= before + 50, "publishing to go on after the restart");
    w.startConsumers();
    await w.stopPublishing();
    assert.equal(await w.drain(300, 3_000), false, "the drain cannot find what was lost");
  } finally {
    await w.stop();
    await cluster.stop();
  }
  const v = check(history.ops);
  assert.equal(v.valid, false);
  assert.deepEqual(Object.keys(v.byRule), ["lost"], describe(v, 3));
  // Lost: the publishes the first process answered OK. Those read before the kill was sent
  // are among them; every one of them was invoked before that process had died (an OK read
  // later may still have been sent before the kill); none answered by the restarted one is.
  const dead = history.nemesis.find((e) => e.what === "kill -9 n1")!.time;
  const lost = new Set(v.violations.map((x) => x.value));
  const publishes = history.ops.filter((o) => o.f === "publish");
  const okBefore = publishes.filter((o) => o.type === "ok" && o.time < killedAt);
  assert.ok(okBefore.length >= 100);
  for (const o of okBefore) assert.ok(lost.has(o.value), `${o.value} OK'd before the kill`);
  const invokedBeforeDeath = new Set(
    publishes.filter((o) => o.type === "invoke" && o.time < dead).map((o) => o.value),
  );
  for (const value of lost) assert.ok(invokedBeforeDeath.has(value), `${value} lost`);
  assert.ok(v.stats.delivered > 0, "what came after the restart was delivered");
  assert.match(
    describe(v),
    /lost: p\d-\d+ was answered OK by n1 \(msg_id \d+\) and never delivered/,
  );
});

Deno.test("jepsen: one durable node (--fsync always) kill -9'd 3 times under load: the history is valid, in order", async () => {
  const history = new History();
  const cluster = await JepsenCluster.start(
    { nodes: 1, etcd: false, extra: ["--fsync", "always"] },
    history,
    WORKLOAD_DEFAULTS.queue,
  );
  const w = new Workload(history, { ...WORKLOAD_DEFAULTS, consumers: 1, targets: cluster.targets });
  let drained = false;
  try {
    w.startConsumers();
    w.startPublishers();
    for (let round = 0; round < 3; round++) {
      const before = w.okd.size;
      await until(() => w.okd.size >= before + 200, "200 more publishes OK'd");
      await cluster.restart(cluster.nodes[0]);
    }
    const before = w.okd.size;
    await until(() => w.okd.size >= before + 100, "publishing to go on after the restarts");
    await w.stopPublishing();
    drained = await w.drain(300, 10_000);
  } finally {
    await w.stop();
    await cluster.stop();
  }
  // A real history with faults that the checker must accept: no false alarm from the
  // workload's recording (unknowns at each kill, redeliveries after the restart).
  const v = check(history.ops, { order: true });
  assert.equal(v.valid, true, describe(v, 10));
  assert.ok(drained);
  assert.ok(v.stats.publishOk >= 700);
  assert.equal(history.nemesis.filter((e) => e.what === "kill -9 n1").length, 3);
});

Deno.test({
  name:
    "jepsen: 3 nodes, the queue's leader kill -9'd 5 times and paused once, a follower wiped, " +
    "etcd restarted: the history is valid",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const r = await runJepsen({
      cluster: { nodes: 3, etcd: true, leaseTtl: 1 },
      faults: ["kill", "kill", "wipe", "kill", "pause", "kill", "etcd", "kill"],
      progress: 30,
    });
    const v = r.verdict;
    assert.equal(r.faults.length, 8);
    assert.ok(v.stats.publishOk >= 200, describe(v, 0));
    if (!v.valid) assert.fail(await invalid(r, "three-nodes"));
    assert.ok(r.drained);
  },
});

Deno.test({
  name:
    "jepsen: 3 nodes, publishes to a topic bound to the queue (each reaches it as a binding's copy), " +
    "the queue's leader kill -9'd 3 times and paused once: the history is valid",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const r = await runJepsen({
      cluster: { nodes: 3, etcd: true, leaseTtl: 1 },
      faults: ["kill", "kill", "pause", "kill"],
      progress: 30,
      bindTopic: "topic:jepsen.in",
    });
    const v = r.verdict;
    assert.equal(r.faults.length, 4);
    assert.ok(v.stats.publishOk >= 120, describe(v, 0));
    if (!v.valid) assert.fail(await invalid(r, "bound-topic"));
    assert.ok(r.drained);
  },
});

/**
 * The failure message of an invalid run: the verdict, the faults, whether the drain ended in
 * time, and where the whole history and the nodes' logs were written (test-output/), so a
 * failure seen once under load can be read afterwards.
 */
async function invalid(r: RunResult, name: string): Promise<string> {
  const dir = new URL("../../test-output/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const base = `${dir}jepsen-${name}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  await Deno.writeTextFile(`${base}.json`, historyText(r.history.toJSON({ faults: r.faults })));
  await Deno.writeTextFile(`${base}.log`, r.outputs);
  return `${describe(r.verdict, 10)}\nfaults: ${r.faults.join("; ")}\n` +
    `drained: ${r.drained}\ncopies at the end:\n${r.copies}\n` +
    `${trails(r)}\nnemesis: ${JSON.stringify(r.history.nemesis)}\n` +
    `history: ${base}.json, node logs: ${base}.log`;
}

/**
 * For each payload the checker calls lost (up to 10): every op on it, and what the nemesis
 * did last before its OK (which node led, at which epoch) and first after it.
 */
function trails(r: RunResult): string {
  const lost = r.verdict.violations.filter((x) => x.rule === "lost").slice(0, 10);
  const nemesis = r.history.nemesis;
  return lost.map((x) => {
    const ok = x.ops[x.ops.length - 1];
    const before = nemesis.filter((e) => e.time <= ok.time).at(-1);
    const after = nemesis.find((e) => e.time > ok.time);
    const ops = r.history.ops.filter((o) => o.value === x.value);
    return `trail of ${x.value}: ${ops.map((o) => JSON.stringify(o)).join(" ")}\n` +
      `  nemesis before its OK: ${JSON.stringify(before)}; after: ${JSON.stringify(after)}`;
  }).join("\n");
}

/** Polls `ok` until it holds (bounded). */
async function until(ok: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
