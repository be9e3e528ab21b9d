/**
 * Topics over real TCP: fan-out, publish order, wildcards, explicit acks,
 * slow consumers under both policies, the shared list being released.
 */
import assert from "node:assert/strict";
import { RawClient, type ServerFrame, startTestBroker, waitFor } from "../helpers.ts";

const text = (f: ServerFrame) => new TextDecoder().decode(f.payload);

async function sub(port: number, dest: string, sid = "s", opts = ""): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.send(`SUB ${dest} sub_id:${sid} ${opts}\r\n`);
  assert.equal(await c.line(), "OK");
  return c;
}

Deno.test("topic: every subscriber gets every message after it subscribed, in publish order", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await p.pub("topic:fan", "before");
    await p.line();
    const subs = await Promise.all([1, 2, 3, 4].map(() => sub(broker.port, "topic:fan")));
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < 500; i++) batch += `PUB topic:fan ${String(i).length}\r\n${i}\r\n`;
    await p.send(batch);
    for (const s of subs) {
      const got = (await s.msgs(500)).map(text);
      assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => String(i)));
      await s.quiet(50);
    }
    for (const s of subs) await s.close();
    await waitFor(
      () => broker.broker.topics.size === 0,
      1000,
      "topic released with its last subscriber",
    );
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("topic: wildcards * and > match by token; MSG names the concrete topic", async () => {
  const broker = await startTestBroker();
  const star = await sub(broker.port, "topic:orders.*", "star");
  const tail = await sub(broker.port, "topic:orders.>", "tail");
  const exact = await sub(broker.port, "topic:orders.eu", "exact");
  const p = await RawClient.connect(broker.port);
  try {
    for (const t of ["orders.eu", "orders.eu.paris", "orders", "ordersx.eu", "orders.us"]) {
      await p.pub(`topic:${t}`, t);
    }
    assert.deepEqual((await star.msgs(2)).map((f) => f.fields!.dest), [
      "topic:orders.eu",
      "topic:orders.us",
    ]);
    assert.deepEqual((await tail.msgs(3)).map(text), ["orders.eu", "orders.eu.paris", "orders.us"]);
    assert.deepEqual((await exact.msgs(1)).map((f) => f.line.split(" ").slice(0, 3).join(" ")), [
      "MSG topic:orders.eu sub_id:exact",
    ]);
    await star.quiet(50);
    await exact.quiet(50);
  } finally {
    for (const c of [star, tail, exact, p]) await c.close();
    await broker.stop();
  }
});

Deno.test("topic: explicit acks bound in-flight messages and redeliver after the ack timeout", async () => {
  const broker = await startTestBroker();
  const s = await sub(broker.port, "topic:acked", "s", "ack:explicit prefetch:2 ack_timeout:300");
  const p = await RawClient.connect(broker.port);
  try {
    for (let i = 0; i < 4; i++) await p.pub("topic:acked", `m${i}`);
    const first = await s.msgs(2);
    assert.deepEqual(first.map(text), ["m0", "m1"]);
    await s.send(`ACK msg_id:${first[0].fields!.msg_id}\r\n`);
    const next = await s.until((f) => f.line.startsWith("MSG"));
    assert.equal(next[0].line, "OK");
    assert.equal(text(next[1]), "m2");
    // m1 is not acked: it comes back with delivery:2 after the timeout.
    const again = (await s.msgs(1, 2000))[0];
    assert.equal(text(again), "m1");
    assert.equal(again.fields!.delivery, "2");
    await s.send(`NACK msg_id:${again.fields!.msg_id}\r\n`);
    const frames = await s.until((f) => f.line.startsWith("MSG") && text(f) === "m1");
    assert.ok(frames.some((f) => f.line === "OK"));
    assert.equal(frames.at(-1)!.fields!.delivery, "3");
  } finally {
    await s.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("topic: a slow consumer is disconnected, others and the publisher go on", async () => {
  const broker = await startTestBroker(["--sub-pending-messages", "100"]);
  const slow = await sub(broker.port, "topic:firehose", "slow", "ack:explicit prefetch:1");
  const fast = await sub(broker.port, "topic:firehose", "fast");
  const p = await RawClient.connect(broker.port);
  try {
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < 300; i++) {
      batch += `PUB topic:firehose 3\r\n${String(i).padStart(3, "0")}\r\n`;
    }
    await p.send(batch + "PING\r\n");
    assert.equal(await p.line(), "PONG");
    assert.equal((await fast.msgs(300)).length, 300);
    const frames = await slow.until((f) => f.line.startsWith("ERR"), 10);
    assert.match(frames.at(-1)!.line, /^ERR SLOW_CONSUMER /);
    assert.ok(await slow.closedByServer());
    assert.equal(broker.server.closedByReason.SLOW_CONSUMER, 1);
    assert.equal(
      broker.broker.topics.get("topic:firehose")!.retained,
      0,
      "its hold on the list is released",
    );
  } finally {
    for (const c of [slow, fast, p]) await c.close();
    await broker.stop();
  }
});

Deno.test("topic: drop-oldest slow subscriptions skip their oldest messages and stay connected", async () => {
  const broker = await startTestBroker([
    "--sub-pending-messages",
    "10",
    "--slow-consumer",
    "drop-oldest",
  ]);
  const slow = await sub(broker.port, "topic:lossy", "slow", "ack:explicit prefetch:1");
  const p = await RawClient.connect(broker.port);
  try {
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < 50; i++) batch += `PUB topic:lossy 2\r\n${String(i).padStart(2, "0")}\r\n`;
    await p.send(batch + "PING\r\n");
    assert.equal(await p.line(), "PONG");
    const first = (await slow.msgs(1))[0];
    assert.equal(text(first), "00");
    const t = broker.broker.topics.get("topic:lossy")!;
    assert.equal(t.counters.dropped, 39);
    assert.equal(t.retained, 10);
    await slow.send(`ACK msg_id:${first.fields!.msg_id}\r\n`);
    assert.equal(await slow.line(), "OK");
    assert.equal(text((await slow.msgs(1))[0]), "40", "resumes after the dropped ones");
  } finally {
    await slow.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("topic: messages held for a lagging subscriber are stored once and released as it catches up", async () => {
  const broker = await startTestBroker();
  const lag = await sub(broker.port, "topic:shared", "lag", "ack:explicit prefetch:1");
  const lag2 = await sub(broker.port, "topic:shared", "lag2", "ack:explicit prefetch:1");
  const p = await RawClient.connect(broker.port);
  try {
    for (let i = 0; i < 20; i++) await p.pub("topic:shared", `m${i}`);
    for (let i = 0; i < 20; i++) await p.line();
    const t = broker.broker.topics.get("topic:shared")!;
    assert.equal(t.retained, 19, "one list for both lagging subscribers");
    for (const c of [lag, lag2]) {
      for (let i = 0; i < 20; i++) {
        const m = (await c.until((f) => f.line.startsWith("MSG"))).at(-1)!;
        assert.equal(text(m), `m${i}`);
        await c.send(`ACK msg_id:${m.fields!.msg_id}\r\n`);
      }
    }
    await waitFor(() => t.retained === 0, 1000, "list released");
  } finally {
    for (const c of [lag, lag2, p]) await c.close();
    await broker.stop();
  }
});
