/**
 * Declared topics over real TCP: retention by count, bytes and age (drops
 * counted), replay from the first retained message, an id or a time, durable
 * subscriptions that resume after a disconnect, and the errors around them.
 */
import assert from "node:assert/strict";
import {
  expectLine,
  publishAll,
  RawClient,
  type ServerFrame,
  startTestBroker,
  waitFor,
} from "../helpers.ts";

const text = (f: ServerFrame) => new TextDecoder().decode(f.payload);

const range = (from: number, to: number, prefix = "m") =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

Deno.test("declared topic: retention by count and bytes drops the oldest, counted; start:first replays the rest", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(p, "DECLARE topic:count retain_messages:5", "OK");
    await publishAll(p, "topic:count", range(0, 8));
    const t = broker.broker.topics.get("topic:count")!;
    assert.equal(t.retained, 5);
    assert.equal(t.counters.retentionDropped, 3);
    const s = await RawClient.connect(broker.port);
    await expectLine(s, "SUB topic:count sub_id:r start:first", "OK");
    assert.deepEqual((await s.msgs(5)).map(text), range(3, 8));
    // ...then goes on live, in order.
    await publishAll(p, "topic:count", ["live"]);
    assert.deepEqual((await s.msgs(1)).map(text), ["live"]);
    await s.quiet(50);
    await s.close();

    // Bytes: 10-byte bodies, at most 25 bytes retained: the last 2.
    await expectLine(p, "DECLARE topic:bytes retain_bytes:25", "OK");
    await publishAll(p, "topic:bytes", range(0, 4, "body-0000"));
    const tb = broker.broker.topics.get("topic:bytes")!;
    assert.equal(tb.retained, 2);
    assert.equal(tb.retainedBytes, 20);
    assert.equal(tb.counters.retentionDropped, 2);

    // Redeclaring changes the limits at once.
    await expectLine(p, "DECLARE topic:count retain_messages:2", "OK");
    assert.equal(t.retained, 2);
    assert.equal(t.counters.retentionDropped, 7, "m0-m3 (by the 5 limit), then m4-m6");
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("declared topic: retention by age drops messages older than retain_age", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(p, "DECLARE topic:aged retain_age:150", "OK");
    await publishAll(p, "topic:aged", range(0, 3));
    const t = broker.broker.topics.get("topic:aged")!;
    assert.equal(t.retained, 3);
    await waitFor(() => t.retained === 0, 2000, "aged out by the sweep");
    assert.equal(t.counters.retentionDropped, 3);
    const s = await RawClient.connect(broker.port);
    await expectLine(s, "SUB topic:aged sub_id:r start:first", "OK");
    await s.quiet(50);
    await s.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("declared topic: replay from start:id and start:time; start:new waits for new messages", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const subs: RawClient[] = [];
  try {
    await expectLine(p, "DECLARE topic:replay retain_messages:100", "OK");
    const ids = await publishAll(p, "topic:replay", range(0, 6));
    const byId = await RawClient.connect(broker.port);
    subs.push(byId);
    await expectLine(byId, `SUB topic:replay sub_id:i start:id:${ids[3]}`, "OK");
    const got = await byId.msgs(3);
    assert.deepEqual(got.map(text), range(3, 6));
    assert.deepEqual(got.map((f) => Number(f.fields!.msg_id)), ids.slice(3));

    // time:<ms> is the first message with id >= ms * 1024.
    const ms = Math.floor(ids[4] / 1024);
    const expected = range(0, 6).filter((_, i) => ids[i] >= ms * 1024);
    const byTime = await RawClient.connect(broker.port);
    subs.push(byTime);
    await expectLine(byTime, `SUB topic:replay sub_id:t start:time:${ms}`, "OK");
    assert.deepEqual((await byTime.msgs(expected.length)).map(text), expected);

    const fresh = await RawClient.connect(broker.port);
    subs.push(fresh);
    await expectLine(fresh, "SUB topic:replay sub_id:n start:new", "OK");
    await fresh.quiet(50);
    await publishAll(p, "topic:replay", ["next"]);
    for (const s of subs) assert.deepEqual((await s.msgs(1)).map(text), ["next"]);
  } finally {
    for (const s of subs) await s.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("durable: resumes after a disconnect; unacked messages come back, acked ones do not", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(p, "DECLARE topic:orders retain_messages:1000", "OK");
    await publishAll(p, "topic:orders", range(0, 3));
    const a = await RawClient.connect(broker.port);
    await expectLine(a, "SUB topic:orders sub_id:d durable:billing start:first prefetch:10", "OK");
    await publishAll(p, "topic:orders", range(3, 6));
    const got = await a.msgs(6);
    assert.deepEqual(got.map(text), range(0, 6));
    // Acks m0, m1 and m3: the position stops before m2, the oldest unacked.
    const ack = [0, 1, 3].map((i) => `msg_id:${got[i].fields!.msg_id}`).join(" ");
    await expectLine(a, `ACK ${ack}`, "OK");

    // A second live SUB with the name is refused; the connection goes on.
    const b = await RawClient.connect(broker.port);
    await expectLine(b, "SUB topic:orders sub_id:x durable:billing", /^ERR DURABLE_IN_USE /);
    await expectLine(b, "PING", "PONG");

    await a.close();
    await waitFor(() => broker.broker.topics.get("topic:orders")!.bindings.length === 0);
    await publishAll(p, "topic:orders", range(6, 8));
    // Reconnects: from m2 on (m3 again too: the position is everything before the oldest unacked).
    await expectLine(b, "SUB topic:orders sub_id:d durable:billing start:first", "OK");
    const again = await b.msgs(6);
    assert.deepEqual(again.map(text), range(2, 8));
    assert.equal(again[0].fields!.delivery, undefined, "a new delivery to the durable");
    await expectLine(b, `ACK ${again.map((f) => `msg_id:${f.fields!.msg_id}`).join(" ")}`, "OK");
    await expectLine(b, "UNSUB d", "OK");
    await expectLine(b, "SUB topic:orders sub_id:d2 durable:billing", "OK");
    await b.quiet(100);
    // forget:true deletes the durable: the name starts afresh, at its start.
    await expectLine(b, "UNSUB d2 forget:true", "OK");
    await expectLine(b, "SUB topic:orders sub_id:d3 durable:billing start:first", "OK");
    assert.deepEqual((await b.msgs(8)).map(text), range(0, 8));
    await expectLine(b, "SUB topic:orders sub_id:plain", "OK");
    await expectLine(b, "UNSUB plain forget:true", /^ERR BAD_ARGUMENT /);
    await b.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("durable: messages retention dropped while it was away are skipped and counted", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(p, "DECLARE topic:small retain_messages:3", "OK");
    const a = await RawClient.connect(broker.port);
    await expectLine(a, "SUB topic:small sub_id:d durable:audit", "OK");
    await a.close();
    await waitFor(() => broker.broker.topics.get("topic:small")!.bindings.length === 0);
    await publishAll(p, "topic:small", range(0, 5));
    const d = broker.broker.topics.get("topic:small")!.durables.get("audit")!;
    assert.equal(d.skipped, 2);
    const b = await RawClient.connect(broker.port);
    await expectLine(b, "SUB topic:small sub_id:d durable:audit", "OK");
    assert.deepEqual((await b.msgs(3)).map(text), range(2, 5));
    await b.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("durable and replay: errors for undeclared topics, wildcards, queues and bad options", async () => {
  const broker = await startTestBroker();
  const c = await RawClient.connect(broker.port);
  try {
    await expectLine(c, "SUB topic:plain sub_id:a durable:x", /^ERR NOT_DECLARED /);
    await expectLine(c, "SUB topic:plain sub_id:a start:first", /^ERR NOT_DECLARED /);
    await expectLine(c, "SUB topic:plain.* sub_id:a durable:x", /^ERR BAD_DESTINATION /);
    await expectLine(c, "SUB queue:jobs sub_id:a durable:x", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "DECLARE topic:d", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "DECLARE topic:d.* retain_messages:1", /^ERR BAD_DESTINATION /);
    await expectLine(
      c,
      "DECLARE queue:d retain_messages:1",
      /^ERR BAD_ARGUMENT retain_messages is for topics/,
    );
    await expectLine(c, "DECLARE topic:d retain_messages:0", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "DECLARE topic:d retain_forever:1", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "DECLARE topic:d retain_messages:10", "OK");
    await expectLine(c, "SUB topic:d sub_id:a start:last", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "SUB topic:d sub_id:a durable:bad/name", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "SUB topic:d sub_id:a durable:x ack:none", /^ERR BAD_ARGUMENT /);
    await expectLine(c, "PING", "PONG");
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("ordinary topics are unchanged: nothing retained without subscribers, released with the last", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await publishAll(p, "topic:plain", ["lost"]);
    assert.equal(broker.broker.counters.unrouted, 1);
    const s = await RawClient.connect(broker.port);
    await expectLine(s, "SUB topic:plain sub_id:s", "OK");
    await publishAll(p, "topic:plain", ["seen"]);
    assert.deepEqual((await s.msgs(1)).map(text), ["seen"]);
    await s.quiet(50);
    await s.close();
    await waitFor(() => broker.broker.topics.size === 0, 1000, "topic released");
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("durable: a NACK with a delay holds the position; expired messages are not replayed", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(p, "DECLARE topic:nack retain_messages:100", "OK");
    await publishAll(p, "topic:nack", range(0, 3));
    await p.pub("topic:nack", "short-lived", "ttl:100");
    assert.match(await p.line(), /^OK msg_id:/);
    const a = await RawClient.connect(broker.port);
    await expectLine(a, "SUB topic:nack sub_id:d durable:n start:first", "OK");
    const got = await a.msgs(4);
    await expectLine(a, `NACK msg_id:${got[0].fields!.msg_id} delay:60000`, "OK");
    await expectLine(
      a,
      `ACK msg_id:${got[1].fields!.msg_id} msg_id:${got[2].fields!.msg_id}`,
      "OK",
    );
    await a.close();
    await waitFor(() => broker.broker.topics.get("topic:nack")!.bindings.length === 0);
    await new Promise((r) => setTimeout(r, 150)); // the TTL of the fourth passes
    const b = await RawClient.connect(broker.port);
    await expectLine(b, "SUB topic:nack sub_id:d durable:n", "OK");
    assert.deepEqual((await b.msgs(3)).map(text), range(0, 3), "from the NACKed one on");
    await b.quiet(100);
    await b.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("declared topic: a restart on the same data dir keeps declarations, messages and positions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-durable-topic-" });
  try {
    let broker = await startTestBroker(["--data-dir", dir]);
    let c = await RawClient.connect(broker.port);
    await expectLine(c, "DECLARE topic:kept retain_messages:4 retain_age:600000", "OK");
    await publishAll(c, "topic:kept", range(0, 6));
    await expectLine(c, "SUB topic:kept sub_id:d durable:w start:first", "OK");
    const got = await c.msgs(4);
    assert.deepEqual(got.map(text), range(2, 6));
    await expectLine(c, `ACK msg_id:${got[0].fields!.msg_id}`, "OK");
    await c.close();
    await broker.stop();

    broker = await startTestBroker(["--data-dir", dir]);
    c = await RawClient.connect(broker.port);
    try {
      const t = broker.broker.topics.get("topic:kept")!;
      assert.deepEqual(t.retention, { messages: 4, bytes: 1024 * 1024 * 1024, ageMs: 600000 });
      await expectLine(c, "SUB topic:kept sub_id:d durable:w", "OK");
      assert.deepEqual((await c.msgs(3)).map(text), range(3, 6));
      const p = await RawClient.connect(broker.port);
      await publishAll(p, "topic:kept", ["m6"]);
      await p.close();
      assert.deepEqual((await c.msgs(1)).map(text), ["m6"]);
      assert.equal(t.retained, 4, "retain_messages:4 still holds");
    } finally {
      await c.close();
      await broker.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
