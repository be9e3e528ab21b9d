/**
 * `Broker.publishRun` to a topic: a run is fanned out whole (`Client.sendRun`,
 * no message made) only when every subscription takes all of it at once, and
 * each subscription gets exactly what single publishes would have given it;
 * otherwise (a connection near its high mark, explicit acks, a selector, two
 * subscriptions of one connection) the run goes message by message.
 */
import assert from "node:assert/strict";
import { RECENT_UNACKED_IDS } from "../../src/config/mod.ts";
import { compileFilter } from "../../src/filter/mod.ts";
import { type Frame, MsgRun, Parser } from "../../src/protocol/mod.ts";
import { FakeClient } from "./fake_client.ts";
import { sub, testBroker, topicStats } from "./harness.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A fake connection that also takes runs, and records their frames as its MSGs. */
class RunClient extends FakeClient {
  /** Bytes below its high mark (what `roomFor` allows). */
  bytesFree = Infinity;
  /** `sendRun` calls. */
  runs = 0;

  roomFor(bytes: number): boolean {
    return this.writable && bytes <= this.bytesFree;
  }

  sendRun(head: Uint8Array, run: MsgRun, bytes: number): void {
    this.runs++;
    assert.equal(bytes, run.bytesFor(head));
    const out = new Uint8Array(bytes);
    assert.equal(run.writeTo(out, 0, head), out.length);
    this.bytesFree -= out.length;
    const text = dec.decode(out);
    const re = /MSG (\S+) sub_id:(\S+) msg_id:(\d+) (\d+)\r\n/y;
    for (let i = 0; i < run.count; i++) {
      const m = re.exec(text);
      assert.ok(m, `a MSG line at ${re.lastIndex} of ${JSON.stringify(text.slice(0, 200))}`);
      const size = Number(m[4]);
      this.sent.push({
        dest: m[1],
        sid: m[2],
        id: Number(m[3]),
        delivery: 1,
        text: text.slice(re.lastIndex, re.lastIndex + size),
      });
      re.lastIndex += size + 2;
    }
    assert.equal(re.lastIndex, text.length, "nothing after the last frame");
    const last = run.firstId + run.count - 1;
    for (let id = Math.max(run.firstId, last - RECENT_UNACKED_IDS + 1); id <= last; id++) {
      this.delivered(id);
    }
  }
}

/**
 * `n` PUBs to `dest` with bodies `<tag><i>`, parsed as the connection parses
 * them (runs on: the first PUB alone, the rest one run) and published as it
 * publishes them.
 */
function publishAll(t: ReturnType<typeof testBroker>, dest: string, tag: string, n: number): void {
  let s = "";
  for (let i = 0; i < n; i++) s += `PUB ${dest} ${tag.length + String(i).length}\r\n${tag}${i}\r\n`;
  const frames: Frame[] = [];
  new Parser({ runs: true }).push(enc.encode(s), frames);
  assert.ok(frames.some((f) => f.op === "PUBS" && f.count === n - 1), "the rest is one run");
  for (const f of frames) {
    if (f.op === "PUBS") assert.ok(t.broker.publishRun(f.dest, f.buf, f.offs, f.from, f.to));
    else if (f.op === "PUB") {
      t.broker.publish(f.dest, f.buf.subarray(f.off, f.off + f.len), undefined);
    }
  }
}

const texts = (tag: string, n: number) => [...Array(n).keys()].map((i) => `${tag}${i}`);

Deno.test("fan-out runs: every subscriber gets the whole run in order, ids one apart, counted", () => {
  const t = testBroker();
  const cs = [new RunClient(), new RunClient(), new RunClient()];
  const sids = ["s0", "s1", "a-longer-sid"];
  cs.forEach((c, i) => sub(t.broker, c, "topic:f", sids[i]));
  const before = t.broker.stats();
  publishAll(t, "topic:f", "m", 2000);
  const ids = cs[0].sent.map((m) => m.id);
  cs.forEach((c, i) => {
    assert.equal(c.runs, 1, "one run per connection");
    const got = c.take();
    assert.deepEqual(got.map((m) => m.text), texts("m", 2000));
    assert.ok(got.every((m) => m.sid === sids[i] && m.dest === "topic:f" && m.delivery === 1));
    assert.deepEqual(got.map((m) => m.id), ids);
    // The single first PUB's id, then the last of the run's: their ACKs are no-ops.
    assert.deepEqual(c.noAckIds, [ids[0], ...ids.slice(-RECENT_UNACKED_IDS)]);
  });
  ids.forEach((id, i) => assert.equal(id, ids[0] + i));
  const s = topicStats(t.broker, "topic:f");
  assert.equal(s.published, 2000);
  assert.equal(s.delivered, 6000);
  assert.equal(s.retained, 0);
  const after = t.broker.stats();
  assert.equal(after.published_msgs - before.published_msgs, 2000);
  assert.equal(t.broker.latency.count, 6000);
  // The next single publish gets the next id, and every subscriber is caught up for it.
  const id = t.broker.publish("topic:f", enc.encode("one"), undefined);
  assert.equal(id, ids[1999] + 1);
  for (const c of cs) assert.deepEqual(c.texts(), ["one"]);
});

Deno.test("fan-out runs: a connection without room for the whole run gets it message by message, the others still by runs", () => {
  const t = testBroker();
  const roomy = new RunClient();
  const tight = new RunClient();
  sub(t.broker, roomy, "topic:r", "a");
  const tightSub = sub(t.broker, tight, "topic:r", "b");
  tight.bytesFree = 100; // not the run's frames...
  tight.room = 5; // ...and 5 messages before its buffer is over the high mark
  publishAll(t, "topic:r", "m", 50);
  assert.equal(roomy.runs, 1, "the roomy one takes the run whole");
  assert.equal(tight.runs, 0);
  assert.deepEqual(roomy.texts(), texts("m", 50));
  assert.deepEqual(tight.texts(), texts("m", 5), "what single publishes give it");
  assert.equal(topicStats(t.broker, "topic:r").retained, 45, "held for the lagging one");
  // It lags: the next run is held for it and goes whole to the other, which is caught up.
  tight.room = Infinity;
  tight.bytesFree = Infinity;
  publishAll(t, "topic:r", "n", 10);
  assert.equal(roomy.runs, 2);
  assert.deepEqual(roomy.texts(), texts("n", 10));
  assert.deepEqual(tight.texts(), []);
  assert.equal(topicStats(t.broker, "topic:r").retained, 55);
  tightSub.activate(); // as the connection does once it drained
  assert.deepEqual(tight.texts(), [...texts("m", 50).slice(5), ...texts("n", 10)]);
  assert.equal(topicStats(t.broker, "topic:r").retained, 0);
  // Caught up again: runs go whole to both.
  publishAll(t, "topic:r", "o", 10);
  assert.equal(roomy.runs + tight.runs, 4);
  assert.deepEqual(tight.texts(), texts("o", 10));
});

/** What a fake connection and its topic look like after a step, to compare two brokers by. */
function snapshot(t: ReturnType<typeof testBroker>, cs: FakeClient[], topic: string): unknown {
  const s = topicStats(t.broker, topic);
  const b = t.broker.stats();
  return {
    clients: cs.map((c) => ({ sent: c.take(), slow: c.slowCalls.length })),
    topic: { ...s, durables: undefined },
    blocked: t.broker.topics.get(topic)?.blocked,
    blockedBy: t.broker.takeBlocked()?.name,
    published: b.published_msgs,
    latency: t.broker.latency.count,
  };
}

for (const policy of ["disconnect", "drop-oldest", "block"] as const) {
  Deno.test(`fan-out runs: a laggard under ${policy} gets what single publishes give it, the others go by runs`, () => {
    // Two brokers at the same fake time, so the same ids: one whose connections take runs, one
    // whose connections cannot (`FakeClient` has no `sendRun`: every message goes by `publish`).
    const o = { slowConsumer: policy, subPendingMessagesMax: 30 };
    const runs = testBroker(o);
    const singles = testBroker(o);
    const rc = [new RunClient(), new RunClient(), new RunClient()];
    const sc = [new FakeClient(), new FakeClient(), new FakeClient()];
    const sids = ["h0", "h1", "laggard"];
    const rs = sids.map((sid, i) => sub(runs.broker, rc[i], "topic:l", sid));
    const ss = sids.map((sid, i) => sub(singles.broker, sc[i], "topic:l", sid));
    const steps: [string, (cs: FakeClient[], subs: typeof rs) => void, number][] = [
      ["all healthy", () => {}, 20],
      ["the laggard stops reading", (cs) => cs[2].writable = false, 25],
      ["it stays stalled", () => {}, 25],
      ["it takes 3 more, then its buffer is full", (cs) => {
        cs[2].writable = true;
        cs[2].room = 3;
        if (cs[2] instanceof RunClient) cs[2].bytesFree = 50;
      }, 10],
      ["it reads again", (cs, subs) => {
        cs[2].room = Infinity;
        if (cs[2] instanceof RunClient) cs[2].bytesFree = Infinity;
        subs[2].activate();
      }, 15],
      ["all caught up", () => {}, 20],
    ];
    let fannedWhileLagging = 0;
    for (const [what, setUp, n] of steps) {
      const before = rc[0].runs;
      for (const [t, cs, subs] of [[runs, rc, rs], [singles, sc, ss]] as const) {
        setUp(cs, subs);
        publishAll(t, "topic:l", what.slice(0, 3), n);
      }
      const lagging = topicStats(runs.broker, "topic:l").retained > 0;
      if (lagging && rc[0].runs > before) fannedWhileLagging++;
      assert.deepEqual(snapshot(runs, rc, "topic:l"), snapshot(singles, sc, "topic:l"), what);
    }
    // Each policy had its say (and the same in both brokers: compared above).
    const c = runs.broker.topics.get("topic:l")!.counters;
    assert.equal(c.slowConsumers, policy === "disconnect" ? 1 : 0);
    assert.equal(c.dropped > 0, policy === "drop-oldest");
    assert.equal(c.blocks > 0, policy === "block");
    assert.ok(fannedWhileLagging > 0, "the healthy ones took runs while the laggard lagged");
    assert.equal(rc[0].runs, steps.length, "a healthy one took every step's run");
  });
}

Deno.test("fan-out runs: explicit acks, a selector or two subscriptions on one connection take it one by one", () => {
  const t = testBroker();
  const acking = new RunClient();
  const plain = new RunClient();
  sub(t.broker, acking, "topic:e", "e", { ack: "explicit" });
  sub(t.broker, plain, "topic:e", "p");
  publishAll(t, "topic:e", "m", 20);
  assert.equal(acking.runs + plain.runs, 0);
  assert.equal(acking.inflight.size, 20, "each a delivery in flight");
  assert.deepEqual(plain.texts(), texts("m", 20));

  const selecting = new RunClient();
  const other = new RunClient();
  const f = compileFilter("priority = 0");
  sub(t.broker, selecting, "topic:s", "f", { filter: { source: "priority = 0", match: f } });
  sub(t.broker, other, "topic:s", "o");
  publishAll(t, "topic:s", "m", 20);
  assert.equal(selecting.runs + other.runs, 0);
  assert.deepEqual(selecting.texts(), texts("m", 20));
  assert.deepEqual(other.texts(), texts("m", 20));

  const both = new RunClient();
  sub(t.broker, both, "topic:two", "x");
  sub(t.broker, both, "topic:two", "y");
  publishAll(t, "topic:two", "m", 3);
  assert.equal(both.runs, 0);
  assert.deepEqual(
    both.take().map((m) => `${m.sid}:${m.text}`),
    ["x:m0", "y:m0", "x:m1", "y:m1", "x:m2", "y:m2"],
    "interleaved per message, as single publishes",
  );
});

Deno.test("fan-out runs: the frames are encoded with the head length most subscribers share", () => {
  const t = testBroker();
  const cs = [new RunClient(), new RunClient(), new RunClient(), new RunClient()];
  const sids = ["a-longer-sid", "s0", "s1", "s2"];
  cs.forEach((c, i) => sub(t.broker, c, "topic:v", sids[i]));
  const encode = MsgRun.prototype.encode;
  const heads: string[] = [];
  MsgRun.prototype.encode = function (this: MsgRun, head: Uint8Array, subscribers: number) {
    heads.push(dec.decode(head));
    return encode.call(this, head, subscribers);
  };
  try {
    publishAll(t, "topic:v", "m", 100);
  } finally {
    MsgRun.prototype.encode = encode;
  }
  assert.equal(heads.length, 1);
  assert.match(heads[0], /^MSG topic:v sub_id:s\d$/, "one of the short ones");
  cs.forEach((c, i) => {
    assert.deepEqual(c.texts(), texts("m", 100), sids[i]);
  });
});
