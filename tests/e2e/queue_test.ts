/**
 * Queues over real TCP: competing consumers, prefetch, ACK/NACK, redelivery,
 * dead-lettering, TTL, priority, capacity policies.
 */
import assert from "node:assert/strict";
import { RawClient, type ServerFrame, startTestBroker, waitFor } from "../helpers.ts";

const text = (f: ServerFrame) => new TextDecoder().decode(f.payload);

async function subscribe(port: number, dest: string, opts = ""): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.send(`SUB ${dest} sub_id:s ${opts}\r\n`);
  assert.equal(await c.line(), "OK");
  return c;
}

Deno.test("queue: competing consumers get every message exactly once under concurrency", async () => {
  const broker = await startTestBroker();
  const N = 3000;
  const consumers = await Promise.all(
    [1, 2, 3].map(() => subscribe(broker.port, "queue:work", "prefetch:50")),
  );
  const publishers = await Promise.all([1, 2].map(() => RawClient.connect(broker.port)));
  try {
    const seen = new Map<string, number>();
    const perConsumer = [0, 0, 0];
    let done = 0;
    const consume = async (c: RawClient, k: number) => {
      while (done < N) {
        let f: ServerFrame;
        try {
          f = await c.frame(300);
        } catch {
          continue;
        }
        if (!f.line.startsWith("MSG")) continue; // OKs of our ACKs
        const body = text(f);
        seen.set(body, (seen.get(body) ?? 0) + 1);
        perConsumer[k]++;
        done++;
        await c.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
      }
    };
    const deadline = Date.now() + 20_000;
    const consuming = consumers.map((c, k) => consume(c, k));
    await Promise.all(publishers.map(async (p, k) => {
      let batch = 'CONNECT {"verbose":false}\r\n';
      for (let i = 0; i < N / 2; i++) {
        const body = `m-${k}-${i}`;
        batch += `PUB queue:work ${body.length}\r\n${body}\r\n`;
      }
      await p.send(batch);
    }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(consuming),
      new Promise((_, rej) =>
        timer = setTimeout(() => rej(new Error(`only ${done} of ${N}`)), deadline - Date.now())
      ),
    ]).finally(() => clearTimeout(timer));
    assert.equal(seen.size, N, "every message arrived");
    assert.ok([...seen.values()].every((n) => n === 1), "no message arrived twice");
    for (const n of perConsumer) assert.ok(n > N / 10, `fair share: ${perConsumer}`);
    await waitFor(
      () => broker.broker.queues.get("queue:work")?.store.size === 0,
      2000,
      "all acked",
    );
  } finally {
    for (const c of [...consumers, ...publishers]) await c.close();
    await broker.stop();
  }
});

Deno.test("queue: messages wait for a consumer; FIFO within priority, higher priority first", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    const order = [[0, "a"], [5, "b"], [0, "c"], [9, "d"], [5, "e"]] as const;
    for (const [prio, body] of order) {
      await p.pub("queue:prio", body, prio ? `priority:${prio}` : "");
      await p.line();
    }
    const c = await subscribe(broker.port, "queue:prio", "prefetch:10");
    const got = (await c.msgs(5)).map(text);
    assert.deepEqual(got, ["d", "b", "e", "a", "c"]);
    await c.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: prefetch bounds unacked messages; ACK lets the next one through", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await subscribe(broker.port, "queue:pf", "prefetch:2");
  try {
    for (let i = 0; i < 5; i++) await p.pub("queue:pf", `m${i}`);
    const two = await c.msgs(2);
    assert.deepEqual(two.map(text), ["m0", "m1"]);
    await c.quiet(150);
    await c.send(`ACK msg_id:${two[0].fields!.msg_id}\r\n`);
    assert.equal(await c.line(), "OK");
    assert.equal(text((await c.msgs(1))[0]), "m2");
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: NACK requeues at once, NACK with delay later; delivery count shows", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await subscribe(broker.port, "queue:nack", "prefetch:1");
  try {
    await p.pub("queue:nack", "x");
    const first = (await c.msgs(1))[0];
    assert.equal(first.fields!.delivery, undefined);
    await c.send(`NACK msg_id:${first.fields!.msg_id}\r\n`);
    const frames = await c.until((f) => f.line.startsWith("MSG"));
    assert.equal(frames[0].line, "OK");
    const second = frames[1];
    assert.equal(second.fields!.msg_id, first.fields!.msg_id);
    assert.equal(second.fields!.delivery, "2");
    const t0 = Date.now();
    await c.send(`NACK msg_id:${second.fields!.msg_id} delay:400\r\n`);
    assert.equal(await c.line(), "OK");
    const third = (await c.msgs(1, 3000))[0];
    assert.ok(Date.now() - t0 >= 350, "redelivered after the delay");
    assert.equal(third.fields!.delivery, "3");
    await c.send(
      `NACK msg_id:99\r\nACK msg_id:${third.fields!.msg_id}\r\nACK msg_id:${
        third.fields!.msg_id
      }\r\n`,
    );
    assert.match(await c.line(), /^ERR UNKNOWN_MSG_ID /);
    assert.equal(await c.line(), "OK");
    assert.match(await c.line(), /^ERR UNKNOWN_MSG_ID /);
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: after max deliveries a message moves to <queue>.dlq", async () => {
  const broker = await startTestBroker(["--max-deliveries", "3"]);
  const p = await RawClient.connect(broker.port);
  const c = await subscribe(broker.port, "queue:poison", "prefetch:1");
  try {
    await p.pub("queue:poison", "bad", "correlation_id:c9");
    for (let i = 1; i <= 3; i++) {
      const m = (await c.until((f) => f.line.startsWith("MSG"))).at(-1)!;
      assert.equal(m.fields!.delivery ?? "1", String(i));
      await c.send(`NACK msg_id:${m.fields!.msg_id}\r\n`);
    }
    assert.equal(await c.line(), "OK");
    await c.quiet(150);
    const d = await subscribe(broker.port, "queue:poison.dlq");
    const dead = (await d.msgs(1))[0];
    assert.equal(text(dead), "bad");
    assert.equal(dead.fields!.correlation_id, "c9");
    assert.equal(broker.broker.queues.get("queue:poison")!.counters.deadLettered, 1);
    await d.close();
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: unacked messages are redelivered when a consumer disconnects or unsubscribes", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    for (let i = 0; i < 4; i++) await p.pub("queue:rd", `m${i}`);
    const a = await subscribe(broker.port, "queue:rd", "prefetch:4");
    assert.deepEqual((await a.msgs(4)).map(text), ["m0", "m1", "m2", "m3"]);
    await a.close();
    const b = await subscribe(broker.port, "queue:rd", "prefetch:4");
    const again = await b.msgs(4);
    assert.deepEqual(again.map(text), ["m0", "m1", "m2", "m3"], "original order kept");
    assert.ok(again.every((f) => f.fields!.delivery === "2"));
    await b.send("UNSUB s\r\n");
    assert.equal(await b.line(), "OK");
    await b.send("SUB queue:rd sub_id:t prefetch:1\r\n");
    assert.equal(await b.line(), "OK");
    assert.equal((await b.msgs(1))[0].fields!.delivery, "3");
    await b.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: a message unacked past the ack timeout goes to another consumer", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const slow = await subscribe(broker.port, "queue:to", "prefetch:1 ack_timeout:300");
  try {
    await p.pub("queue:to", "job");
    const m = (await slow.msgs(1))[0];
    const fast = await subscribe(broker.port, "queue:to", "prefetch:1");
    const again = (await fast.msgs(1, 3000))[0];
    assert.equal(again.fields!.msg_id, m.fields!.msg_id);
    assert.ok(Number(again.fields!.delivery) >= 2, "marked as a redelivery");
    await slow.send(`ACK msg_id:${m.fields!.msg_id}\r\n`);
    const reply = (await slow.until((f) => !f.line.startsWith("MSG"))).at(-1)!;
    assert.match(reply.line, /^ERR UNKNOWN_MSG_ID /, "the timed-out consumer no longer holds it");
    await fast.close();
  } finally {
    await slow.close();
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: an expired message is never delivered and is reclaimed without a consumer", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  try {
    await p.pub("queue:ttl", "short", "ttl:100");
    await p.pub("queue:ttl", "long", "ttl:60000");
    await p.pub("queue:ttl", "forever");
    await p.line();
    await p.line();
    await p.line();
    const q = broker.broker.queues.get("queue:ttl")!;
    await waitFor(() => q.store.removed.expired === 1, 2000, "the sweep to expire it");
    assert.equal(q.store.size, 2);
    const c = await subscribe(broker.port, "queue:ttl", "prefetch:10");
    assert.deepEqual((await c.msgs(2)).map(text), ["long", "forever"]);
    await c.quiet(100);
    await c.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: capacity limit rejects by default, nothing silently lost", async () => {
  const broker = await startTestBroker(["--queue-max-messages", "3"]);
  const p = await RawClient.connect(broker.port);
  try {
    for (let i = 0; i < 5; i++) await p.pub("queue:cap", `m${i}`);
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await p.line());
    assert.equal(replies.filter((r) => r.startsWith("OK")).length, 3);
    assert.equal(replies.filter((r) => r.startsWith("ERR QUEUE_FULL")).length, 2);
    const c = await subscribe(broker.port, "queue:cap", "prefetch:10");
    assert.deepEqual((await c.msgs(3)).map(text), ["m0", "m1", "m2"]);
    await c.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: drop-oldest keeps the newest messages and counts the drops", async () => {
  const broker = await startTestBroker([
    "--queue-max-messages",
    "3",
    "--queue-overflow",
    "drop-oldest",
  ]);
  const p = await RawClient.connect(broker.port);
  try {
    for (let i = 0; i < 5; i++) await p.pub("queue:dro", `m${i}`);
    for (let i = 0; i < 5; i++) assert.match(await p.line(), /^OK/);
    assert.equal(broker.broker.queues.get("queue:dro")!.store.removed.dropped, 2);
    const c = await subscribe(broker.port, "queue:dro", "prefetch:10");
    assert.deepEqual((await c.msgs(3)).map(text), ["m2", "m3", "m4"]);
    await c.close();
  } finally {
    await p.close();
    await broker.stop();
  }
});

Deno.test("queue: ack:none consumers settle on send", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await subscribe(broker.port, "queue:auto", "ack:none");
  try {
    for (let i = 0; i < 20; i++) await p.pub("queue:auto", `m${i}`);
    assert.equal((await c.msgs(20)).length, 20);
    await waitFor(() => broker.broker.queues.get("queue:auto")!.store.size === 0, 1000, "settled");
  } finally {
    await c.close();
    await p.close();
    await broker.stop();
  }
});
