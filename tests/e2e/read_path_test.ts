/**
 * The broker's read loop over real TCP: a connection reads into its last
 * chunk again once nothing points into it (src/server/connection.ts), so a
 * message that does still point there (a delivery in flight, to a queue or
 * to a topic subscriber with explicit acks) must keep its bytes while its
 * publisher goes on sending; and frames split anywhere, payloads bigger than
 * any read, arrive whole.
 */
import assert from "node:assert/strict";
import { RawClient, rng, type ServerFrame, startTestBroker } from "../helpers.ts";

const text = (f: ServerFrame) => new TextDecoder().decode(f.payload);

/**
 * Publishes `first` to `dest`, waits for `consumer` to get it, then sends
 * 300 PUBs of the same size to a topic nobody reads, each its own read on
 * the broker (the publisher waits for each OK), so that a chunk wrongly
 * reused is overwritten; returns the first delivery.
 */
async function publishThenFlood(
  pub: RawClient,
  consumer: RawClient,
  dest: string,
  first: string,
): Promise<ServerFrame> {
  await pub.pub(dest, first);
  assert.match(await pub.line(), /^OK msg_id:\d+$/);
  const [m] = await consumer.msgs(1);
  assert.equal(text(m), first);
  const flood = "z".repeat(first.length);
  for (let i = 0; i < 300; i++) {
    await pub.pub("topic:nobody", flood);
    assert.match(await pub.line(), /^OK msg_id:\d+$/);
  }
  return m;
}

for (
  const [kind, dest, opts] of [
    ["queue", "queue:held", "prefetch:10"],
    ["topic with explicit acks", "topic:held", "ack:explicit prefetch:10"],
  ]
) {
  Deno.test(`read path: a ${kind} delivery in flight keeps its bytes while its publisher reads on`, async () => {
    const broker = await startTestBroker();
    const consumer = await RawClient.connect(broker.port);
    const pub = await RawClient.connect(broker.port);
    try {
      await consumer.send(`SUB ${dest} sub_id:s ${opts}\r\n`);
      assert.equal(await consumer.line(), "OK");
      const first = "a-message-in-flight-".repeat(5);
      const m = await publishThenFlood(pub, consumer, dest, first);
      // Redelivered from what the broker kept: its bytes, not the flood's.
      await consumer.send(`NACK msg_id:${m.fields!.msg_id}\r\n`);
      const [again] = (await consumer.until((f) => f.line.startsWith("MSG "))).slice(-1);
      assert.equal(again.fields!.msg_id, m.fields!.msg_id);
      assert.equal(text(again), first);
    } finally {
      await pub.close();
      await consumer.close();
      await broker.stop();
    }
  });
}

Deno.test("read path: frames split anywhere and payloads bigger than any read arrive whole", async () => {
  const broker = await startTestBroker();
  const sub = await RawClient.connect(broker.port);
  const pub = await RawClient.connect(broker.port);
  try {
    await sub.send("SUB topic:split sub_id:s\r\n");
    assert.equal(await sub.line(), "OK");
    await pub.send('CONNECT {"verbose":false}\r\n');
    const random = rng(15);
    const sizes = [0, 1, 100, 5000, 70_000, 300_000, 16, 65_536, 1_000_000, 3];
    const payloads = sizes.map((n, k) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = (i * 7 + k) & 0xff;
      return b;
    });
    const enc = new TextEncoder();
    const parts: Uint8Array[] = [];
    for (const p of payloads) {
      parts.push(enc.encode(`PUB topic:split ${p.length}\r\n`), p, enc.encode("\r\n"));
    }
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    // Written in random pieces, 1 B to 90 KiB, so frames split at every kind of place.
    const writing = (async () => {
      for (let off = 0; off < all.length;) {
        const n = Math.min(all.length - off, 1 + Math.floor(random() * 90_000));
        await pub.send(all.subarray(off, off + n));
        off += n;
      }
    })();
    const got = await sub.msgs(payloads.length, 10_000);
    await writing;
    for (let i = 0; i < payloads.length; i++) {
      assert.equal(got[i].payload!.length, payloads[i].length, `message ${i}`);
      assert.deepEqual(got[i].payload, payloads[i], `message ${i}`);
    }
  } finally {
    await pub.close();
    await sub.close();
    await broker.stop();
  }
});
