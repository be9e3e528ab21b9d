/**
 * Fan-out of PUB runs over real TCP (`Topic.publishRun`: a run's MSG frames
 * encoded once and copied to each connection with its own head): every
 * subscriber, whatever its sid's length, gets every message in order with
 * the same ids and byte-exact frames; the counters are those of single PUBs,
 * and an ACK of a delivered id is a no-op. Run twice: with one subscription
 * per connection, where the run path must carry (nearly) every message, and
 * with a connection holding two subscriptions to the topic, which takes the
 * per-message path and gets each message once per subscription.
 */
import assert from "node:assert/strict";
import { Topic } from "../../src/broker/topic.ts";
import { RECENT_UNACKED_IDS } from "../../src/config/mod.ts";
import { RawClient, startTestBroker } from "../helpers.ts";

/**
 * Counts the messages `Topic.publishRun` fans out while `body` runs: a spy
 * that calls through, so the test can tell which path delivered.
 */
async function countingRuns(body: () => Promise<void>): Promise<number> {
  const original = Topic.prototype.publishRun;
  let fanned = 0;
  Topic.prototype.publishRun = function (this: Topic, run, firstId) {
    const n = original.call(this, run, firstId);
    fanned += n;
    return n;
  };
  try {
    await body();
  } finally {
    Topic.prototype.publishRun = original;
  }
  return fanned;
}

/** PUBs `i` from `from` to `to` with bodies of `i` padded to 1-200 bytes (some over 64). */
function pubs(dest: string, from: number, to: number): { wire: string; bodies: string[] } {
  let wire = "";
  const bodies: string[] = [];
  for (let i = from; i < to; i++) {
    const body = String(i).padStart(1 + (i * 37) % 200, "b");
    bodies.push(body);
    wire += `PUB ${dest} ${body.length}\r\n${body}\r\n`;
  }
  return { wire, bodies };
}

/** The scenario; `withTwo` adds a connection with two subscriptions to the topic. */
async function fanOut(withTwo: boolean): Promise<void> {
  const broker = await startTestBroker();
  const sids = ["s0", "s1", "a-much-longer-sid"];
  const subs = await Promise.all(sids.map(() => RawClient.connect(broker.port)));
  const two = await RawClient.connect(broker.port);
  const p = await RawClient.connect(broker.port);
  try {
    for (let i = 0; i < sids.length; i++) {
      await subs[i].send(`SUB topic:fan sub_id:${sids[i]}\r\n`);
      assert.equal(await subs[i].line(), "OK");
    }
    if (withTwo) {
      await two.send("SUB topic:fan sub_id:x\r\nSUB topic:fan sub_id:y\r\n");
      assert.equal(await two.line(), "OK");
      assert.equal(await two.line(), "OK");
    }
    const n = 3000;
    const { wire, bodies } = pubs("topic:fan", 0, n);
    await p.send('CONNECT {"verbose":false}\r\n' + wire + "PING\r\n");
    assert.equal(await p.line(5000), "PONG");

    let ids: string[] | undefined;
    for (let i = 0; i < sids.length; i++) {
      const got = await subs[i].msgs(n);
      assert.deepEqual(got.map((m) => new TextDecoder().decode(m.payload)), bodies);
      assert.ok(got.every((m) => m.fields!.dest === "topic:fan" && m.fields!.sub_id === sids[i]));
      assert.ok(got.every((m) => m.line.split(" ").length === 5), "no option on a plain MSG");
      const these = got.map((m) => m.fields!.msg_id);
      ids ??= these;
      assert.deepEqual(these, ids, `${sids[i]} got the same ids`);
    }
    for (let k = 1; k < n; k++) assert.ok(Number(ids![k]) > Number(ids![k - 1]), "ids grow");
    if (withTwo) {
      const both = await two.msgs(2 * n);
      for (const sid of ["x", "y"]) {
        const mine = both.filter((m) => m.fields!.sub_id === sid);
        assert.deepEqual(mine.map((m) => new TextDecoder().decode(m.payload)), bodies, sid);
      }
    }
    // A delivered id's ACK (no explicit acks) is a no-op: OK, not UNKNOWN_MSG_ID.
    await subs[0].send(`ACK msg_id:${ids![n - 1]}\r\n`);
    assert.equal(await subs[0].line(), "OK");
    // The connection remembers the last RECENT_UNACKED_IDS of them, runs or not, and no more.
    await subs[0].send(`ACK msg_id:${ids![n - RECENT_UNACKED_IDS]}\r\n`);
    assert.equal(await subs[0].line(), "OK");
    await subs[0].send(`ACK msg_id:${ids![n - RECENT_UNACKED_IDS - 1]}\r\n`);
    assert.match(await subs[0].line(), /^ERR UNKNOWN_MSG_ID /);
    const t = broker.broker.topicStats({ offset: 0, limit: 10 }).list.find((s) =>
      s.name === "topic:fan"
    )!;
    assert.equal(t.published, n);
    assert.equal(t.delivered, (withTwo ? 5 : 3) * n);
    assert.equal(t.retained, 0);
    const outs = [...broker.server.connections.values()].map((c) => c.msgsOut).sort((a, b) =>
      a - b
    );
    assert.deepEqual(outs, withTwo ? [0, n, n, n, 2 * n] : [0, 0, n, n, n]);
  } finally {
    for (const c of [...subs, two, p]) await c.close();
    await broker.stop();
  }
}

Deno.test("fan-out runs: one subscription per connection goes by runs: every message, same ids, its own sid; counters as single PUBs", async () => {
  const fanned = await countingRuns(() => fanOut(false));
  // Nearly all go by runs (2987 of 3000 seen); a PUB split across reads, or a subscriber's
  // socket slow to drain on a loaded machine, sends some message by message: half is the bound.
  assert.ok(fanned >= 1500, `${fanned} of 3000 fanned out as runs`);
});

Deno.test("fan-out runs: a connection with two subscriptions takes the per-message path, each message once per subscription", async () => {
  const fanned = await countingRuns(() => fanOut(true));
  assert.equal(fanned, 0);
});
