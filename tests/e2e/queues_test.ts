/**
 * Declared queues, scheduled delivery and deduplication over real TCP, on an
 * in-process broker: the replies are exactly as docs/PROTOCOL.md says, a
 * scheduled message arrives no sooner than its time, a duplicate is answered
 * with the first id and delivered once.
 */
import assert from "node:assert/strict";
import { expectLine, RawClient, type ServerFrame, startTestBroker } from "../helpers.ts";

const text = (f: ServerFrame) => new TextDecoder().decode(f.payload);

Deno.test("DECLARE queue over TCP: OK, OK again, DECLARE_CONFLICT, its limit holds, bad options", async () => {
  const broker = await startTestBroker();
  const c = await RawClient.connect(broker.port);
  try {
    await expectLine(c, "DECLARE queue:jobs max_messages:1 overflow:reject dlq:none", "OK");
    await expectLine(c, "DECLARE queue:jobs max_messages:1 overflow:reject dlq:none", "OK");
    await expectLine(
      c,
      "DECLARE queue:jobs max_messages:2",
      "ERR DECLARE_CONFLICT queue:jobs is declared with other settings: max_messages:1 overflow:reject dlq:none",
    );
    await c.pub("queue:jobs", "a");
    assert.match(await c.line(), /^OK msg_id:\d+$/);
    await c.pub("queue:jobs", "b");
    assert.match(await c.line(), /^ERR QUEUE_FULL queue:jobs is full/);
    await expectLine(
      c,
      "DECLARE queue:jobs overflow:sometimes",
      /^ERR BAD_ARGUMENT overflow must be/,
    );
    await expectLine(c, "DECLARE queue:jobs dlq:topic:x", /^ERR BAD_DESTINATION dlq takes a queue/);
    await expectLine(c, "PING", "PONG");
    const q = broker.broker.queueStats({ offset: 0, limit: 10 }).list[0];
    assert.deepEqual([q.name, q.declared, q.settings.max_messages, q.settings.dlq], [
      "queue:jobs",
      true,
      1,
      null,
    ]);
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("PUB delay/deliver_at over TCP: a queue consumer and a topic subscriber get it no sooner", async () => {
  const broker = await startTestBroker();
  const q = await RawClient.connect(broker.port);
  const t = await RawClient.connect(broker.port);
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(q, "SUB queue:later sub_id:q ack:none", "OK");
    await expectLine(t, "SUB topic:later sub_id:t", "OK");
    const sentAt = Date.now();
    await p.pub("queue:later", "q-300", "delay:300");
    const qid = (await p.line()).slice("OK msg_id:".length);
    await p.pub("topic:later", "t-400", `deliver_at:${sentAt + 400}`);
    const tid = (await p.line()).slice("OK msg_id:".length);
    await p.pub("queue:later", "now");
    assert.match(await p.line(), /^OK msg_id:\d+$/);
    assert.equal(text((await q.msgs(1))[0]), "now", "the scheduled one is not visible yet");
    const [qm] = await q.msgs(1, 5000);
    assert.ok(Date.now() - sentAt >= 300, "never early");
    assert.deepEqual([text(qm), qm.fields!.msg_id], ["q-300", qid]);
    const [tm] = await t.msgs(1, 5000);
    assert.ok(Date.now() >= sentAt + 400, "never early");
    assert.deepEqual([text(tm), tm.fields!.msg_id], ["t-400", tid]);
    await q.quiet(300);
    await t.quiet(10);
    await p.pub("queue:later", "x", "delay:5 deliver_at:5");
    assert.match(await p.line(), /^ERR BAD_ARGUMENT PUB takes delay or deliver_at, not both/);
  } finally {
    for (const c of [q, t, p]) await c.close();
    await broker.stop();
  }
});

Deno.test("PUB dedup_id over TCP: the second is OK msg_id:<first> duplicate:true and delivered once", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await RawClient.connect(broker.port);
  try {
    await p.pub("queue:orders", "order 42", "dedup_id:order-42");
    const first = await p.line();
    assert.match(first, /^OK msg_id:\d+$/);
    await p.pub("queue:orders", "order 42", "dedup_id:order-42");
    assert.equal(await p.line(), `${first} duplicate:true`);
    await p.pub("topic:ev", "e", "dedup_id:e-1");
    const tfirst = await p.line();
    await p.pub("topic:ev", "e", "dedup_id:e-1");
    assert.equal(await p.line(), `${tfirst} duplicate:true`);
    await expectLine(c, "SUB queue:orders sub_id:s ack:none", "OK");
    assert.equal(text((await c.msgs(1))[0]), "order 42");
    await c.quiet(200);
    assert.equal(broker.broker.stats().duplicate_msgs, 2);
  } finally {
    await p.close();
    await c.close();
    await broker.stop();
  }
});
