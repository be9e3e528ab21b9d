/**
 * The cumulative ACK (`ACK sub_id:<sid> upto:<id>`) over real TCP: it settles
 * a subscription's deliveries in the order they were sent, through the named
 * one, and nothing of other subscriptions; errors settle nothing.
 */
import assert from "node:assert/strict";
import { RawClient, type ServerFrame, startTestBroker } from "../helpers.ts";

const text = (f: ServerFrame) => new TextDecoder().decode(f.payload);
const idOf = (f: ServerFrame) => f.fields!.msg_id;

async function consumer(port: number, subs: string[]): Promise<RawClient> {
  const c = await RawClient.connect(port);
  for (const s of subs) {
    await c.send(`SUB ${s}\r\n`);
    assert.equal(await c.line(), "OK");
  }
  return c;
}

Deno.test("ack upto: settles the subscription's deliveries through the named one, in sent order", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await consumer(broker.port, ["queue:up sub_id:a prefetch:10"]);
  const q = () => broker.broker.queues.get("queue:up")!.store;
  try {
    for (let i = 0; i < 6; i++) await p.pub("queue:up", `m${i}`);
    const ms = await c.msgs(6);
    assert.deepEqual(ms.map(text), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    await c.send(`ACK sub_id:a upto:${idOf(ms[3])}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(q().size, 2, "m0-m3 settled, m4 and m5 still held");
    assert.equal(q().inflight, 2);
    // Already settled by the cumulative ACK: unknown now; the others stay settleable one by one.
    await c.send(`ACK msg_id:${idOf(ms[2])}\r\nACK msg_id:${idOf(ms[4])}\r\n`);
    assert.match(await c.line(), new RegExp(`^ERR UNKNOWN_MSG_ID msg_id:${idOf(ms[2])} `));
    assert.equal(await c.line(), "OK");
    await c.send(`ACK upto:${idOf(ms[5])} sub_id:a\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(q().size, 0);
    assert.equal(broker.broker.queues.get("queue:up")!.counters.acked, 6);
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("ack upto: a redelivery sent after the named delivery is not settled by it", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await consumer(broker.port, ["queue:rd sub_id:a prefetch:3"]);
  const q = () => broker.broker.queues.get("queue:rd")!.store;
  try {
    for (let i = 0; i < 3; i++) await p.pub("queue:rd", `m${i}`);
    const [m0, , m2] = await c.msgs(3);
    await c.send(`NACK msg_id:${idOf(m0)}\r\n`);
    const again = (await c.until((f) => f.line.startsWith("MSG"))).at(-1)!;
    assert.equal(text(again), "m0");
    assert.equal(again.fields!.delivery, "2");
    // m0 went out again after m2: "up to m2" covers m1 and m2, not m0, whose id is lower.
    await c.send(`ACK sub_id:a upto:${idOf(m2)}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(q().size, 1);
    assert.equal(q().inflight, 1);
    await c.send(`ACK sub_id:a upto:${idOf(m0)}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(q().size, 0);
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("ack upto: other subscriptions untouched; unknown sid or id settles nothing; ack:none is a no-op", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await consumer(broker.port, [
    "queue:x sub_id:a prefetch:5",
    "queue:y sub_id:b prefetch:5",
    "queue:z sub_id:n ack:none",
  ]);
  const size = (q: string) => broker.broker.queues.get(q)!.store.size;
  try {
    await p.pub("queue:x", "x0");
    await p.pub("queue:y", "y0");
    await p.pub("queue:x", "x1");
    await p.pub("queue:y", "y1");
    await p.pub("queue:z", "z0");
    const ms = await c.msgs(5);
    const x1 = ms.find((f) => text(f) === "x1")!;
    const y0 = ms.find((f) => text(f) === "y0")!;
    const z0 = ms.find((f) => text(f) === "z0")!;
    // y0 was sent before x1 on this connection, but belongs to another subscription.
    await c.send(`ACK sub_id:b upto:${idOf(x1)}\r\n`);
    assert.match(await c.line(), new RegExp(`^ERR UNKNOWN_MSG_ID msg_id:${idOf(x1)} `));
    await c.send(`ACK sub_id:nope upto:${idOf(x1)}\r\n`);
    assert.match(await c.line(), /^ERR UNKNOWN_SUB_ID /);
    await c.send(`ACK sub_id:a upto:12345\r\n`);
    assert.match(await c.line(), /^ERR UNKNOWN_MSG_ID msg_id:12345 /);
    assert.equal(size("queue:x"), 2, "the errors settled nothing");
    assert.equal(size("queue:y"), 2);
    await c.send(`ACK sub_id:n upto:${idOf(z0)}\r\n`);
    assert.equal(await c.line(), "OK");
    await c.send(`ACK sub_id:a upto:${idOf(x1)}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(size("queue:x"), 0);
    assert.equal(size("queue:y"), 2, "queue:y's deliveries are still in flight");
    await c.send(`ACK sub_id:b upto:${idOf(y0)}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(size("queue:y"), 1);
    // A malformed one is refused and the connection goes on.
    await c.send(`ACK sub_id:b upto:x\r\nPING\r\n`);
    assert.match(await c.line(), /^ERR BAD_ARGUMENT /);
    assert.equal(await c.line(), "PONG");
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("ack upto: a topic subscription with explicit acks, twins on one connection settled apart", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await consumer(broker.port, [
    "topic:t.* sub_id:w ack:explicit",
    "topic:t.a sub_id:e ack:explicit",
  ]);
  try {
    await p.pub("topic:t.a", "one");
    await p.pub("topic:t.a", "two");
    const ms = await c.msgs(4);
    const two = ms.filter((f) => text(f) === "two");
    assert.equal(two.length, 2, "each subscription got its own delivery");
    assert.equal(idOf(two[0]), idOf(two[1]));
    await c.send(`ACK sub_id:w upto:${idOf(two[0])}\r\n`);
    assert.equal(await c.line(), "OK");
    // The other subscription's two deliveries are still in flight, one id each.
    const one = ms.find((f) => text(f) === "one")!;
    await c.send(`ACK msg_id:${idOf(one)} msg_id:${idOf(two[0])}\r\n`);
    assert.equal(await c.line(), "OK");
    await c.send(`ACK msg_id:${idOf(one)}\r\n`);
    assert.match(await c.line(), /^ERR UNKNOWN_MSG_ID /);
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("ack upto: the settles reach the log (--fsync always): a restart on the data dir does not bring them back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-ack-upto-" });
  try {
    let broker = await startTestBroker(["--data-dir", dir, "--fsync", "always"]);
    const p = await RawClient.connect(broker.port);
    const c = await consumer(broker.port, ["queue:dur sub_id:a prefetch:10"]);
    try {
      for (let i = 0; i < 5; i++) await p.pub("queue:dur", `m${i}`);
      // The publishes' OKs: stored.
      for (let i = 0; i < 5; i++) assert.match(await p.line(), /^OK msg_id:\d+$/);
      const ms = await c.msgs(5);
      await c.send(`ACK sub_id:a upto:${idOf(ms[2])}\r\n`);
      assert.equal(await c.line(), "OK");
    } finally {
      await c.close();
      await p.close();
      await broker.stop();
    }
    broker = await startTestBroker(["--data-dir", dir, "--fsync", "always"]);
    const again = await consumer(broker.port, ["queue:dur sub_id:b prefetch:10"]);
    try {
      assert.deepEqual((await again.msgs(2)).map(text), ["m3", "m4"]);
      await again.quiet(150);
    } finally {
      await again.close();
      await broker.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ack upto: an id far back in a large window, or in flight nowhere, is found without a walk over the window", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await consumer(broker.port, ["queue:far sub_id:a prefetch:200"]);
  const q = () => broker.broker.queues.get("queue:far")!.store;
  try {
    let batch = "";
    for (let i = 0; i < 150; i++) batch += `PUB queue:far 4\r\nm${String(i).padStart(3, "0")}\r\n`;
    await p.send(batch);
    const ms = await c.msgs(150);
    // 145 deliveries after it: past the backward look, the index finds it.
    await c.send(`ACK sub_id:a upto:${idOf(ms[4])}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(q().size, 145);
    await c.send(`ACK sub_id:a upto:${idOf(ms[2])}\r\nACK sub_id:a upto:7\r\n`);
    assert.match(await c.line(), new RegExp(`^ERR UNKNOWN_MSG_ID msg_id:${idOf(ms[2])} `));
    assert.match(await c.line(), /^ERR UNKNOWN_MSG_ID msg_id:7 /);
    await c.send(`ACK msg_id:${idOf(ms[100])}\r\nACK sub_id:a upto:${idOf(ms[149])}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(await c.line(), "OK");
    assert.equal(q().size, 0);
    assert.equal(broker.broker.queues.get("queue:far")!.counters.acked, 150);
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});
