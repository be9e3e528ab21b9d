/**
 * Runs of repeated PUBs over real TCP (`PubRun`, published as one by
 * `Broker.publishRun`): what a subscriber gets, the counters and ids are
 * those of single PUBs, and every case that must take them one at a time
 * (verbose OKs, a wildcard making the topic) still answers each.
 */
import assert from "node:assert/strict";
import { RawClient, startTestBroker, waitFor } from "../helpers.ts";

const text = (f: { payload?: Uint8Array }) => new TextDecoder().decode(f.payload);

/** `n` PUBs to `dest` with bodies `<tag><i>`, in one string (one write: runs in one chunk). */
function pubs(dest: string, tag: string, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += `PUB ${dest} ${tag.length + String(i).length}\r\n${tag}${i}\r\n`;
  return s;
}

Deno.test("PUB runs: a subscriber gets each message in order; nobody's topic is counted, each id taken", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const s = await RawClient.connect(broker.port);
  try {
    await s.send("SUB topic:runs sub_id:s\r\n");
    assert.equal(await s.line(), "OK");
    await p.send('CONNECT {"verbose":false}\r\n');
    const before = broker.broker.stats().published_msgs;
    const batch = pubs("topic:runs", "a", 1000) + pubs("topic:nobody", "n", 1000) +
      pubs("topic:runs", "b", 1000);
    await p.send(batch + "PING\r\n");
    assert.equal(await p.line(5000), "PONG");
    const got = (await s.msgs(2000)).map(text);
    const want = [...Array(1000).keys()].map((i) => `a${i}`).concat(
      [...Array(1000).keys()].map((i) => `b${i}`),
    );
    assert.deepEqual(got, want);
    const stats = broker.broker.stats();
    assert.equal(stats.published_msgs - before, 3000);
    const conn = [...broker.server.connections.values()].find((c) => c.msgsIn === 3000);
    assert.ok(conn, "the publisher counted 3000 messages in");
    // The ids the run to nobody took: the next message's id is past all of them.
    await p.send('CONNECT {"verbose":true}\r\n');
    assert.equal(await p.line(), "OK");
    const ids: number[] = [];
    await p.send(pubs("topic:nobody", "v", 3));
    for (let i = 0; i < 3; i++) {
      const m = /^OK msg_id:(\d+)$/.exec(await p.line());
      assert.ok(m, "an OK with an id per PUB of a run when verbose");
      ids.push(Number(m[1]));
    }
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2]);
    await p.send("PUB topic:runs 4\r\nlast\r\n");
    const ok = /^OK msg_id:(\d+)$/.exec(await p.line())!;
    const msg = (await s.msgs(1))[0];
    assert.equal(text(msg), "last");
    assert.equal(Number(msg.fields!.msg_id), Number(ok[1]));
    assert.ok(Number(ok[1]) > ids[2]);
  } finally {
    await p.close();
    await s.close();
    await broker.stop();
  }
});

Deno.test("PUB runs: a wildcard subscriber's new topic is made by the run and gets all of it", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const s = await RawClient.connect(broker.port);
  try {
    await s.send("SUB topic:w.> sub_id:w\r\n");
    assert.equal(await s.line(), "OK");
    await p.send('CONNECT {"verbose":false}\r\n' + pubs("topic:w.new", "x", 500) + "PING\r\n");
    assert.equal(await p.line(5000), "PONG");
    const got = (await s.msgs(500)).map(text);
    assert.deepEqual(got, [...Array(500).keys()].map((i) => `x${i}`));
    await waitFor(() => broker.broker.topics.has("topic:w.new"), 1000, "the topic exists");
  } finally {
    await p.close();
    await s.close();
    await broker.stop();
  }
});

Deno.test("PUB runs: a queue takes a run whole when it fits, else one PUB at a time (QUEUE_FULL each)", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await RawClient.connect(broker.port);
  try {
    await p.send("DECLARE queue:small max_messages:10\r\n");
    assert.equal(await p.line(), "OK");
    await c.send("SUB queue:jobs sub_id:j ack:none\r\n");
    assert.equal(await c.line(), "OK");
    await p.send('CONNECT {"verbose":false}\r\n' + pubs("queue:jobs", "j", 1000) + "PING\r\n");
    assert.equal(await p.line(5000), "PONG");
    const got = (await c.msgs(1000)).map(text);
    assert.deepEqual(got, [...Array(1000).keys()].map((i) => `j${i}`));
    // 30 PUBs to a queue with room for 10: ten stored, then an ERR for each of the others.
    await p.send(pubs("queue:small", "s", 30) + "PING\r\n");
    for (let i = 0; i < 20; i++) {
      assert.match(await p.line(), /^ERR QUEUE_FULL queue:small is full/);
    }
    assert.equal(await p.line(), "PONG");
    assert.equal(broker.broker.queues.get("queue:small")!.store.size, 10);
  } finally {
    await p.close();
    await c.close();
    await broker.stop();
  }
});

Deno.test("PUB runs: queue messages that wait for a consumer keep their payloads when the read buffer is reused", async () => {
  const broker = await startTestBroker();
  const p = await RawClient.connect(broker.port);
  const c = await RawClient.connect(broker.port);
  try {
    await c.send("SUB queue:held sub_id:h prefetch:10\r\n");
    assert.equal(await c.line(), "OK");
    await p.send('CONNECT {"verbose":false}\r\nPING\r\n');
    assert.equal(await p.line(), "PONG");
    // Runs in separate writes of one size: once its size settles, the broker reads each into
    // the buffer the last one freed (a waiting message not copied out would be overwritten).
    const tags = "abcdefghij".split("");
    for (const tag of tags) {
      await p.send(pubs("queue:held", tag, 300) + "PING\r\n");
      assert.equal(await p.line(5000), "PONG");
    }
    const got: string[] = [];
    while (got.length < 3000) {
      const batch = await c.msgs(10);
      got.push(...batch.map(text));
      await c.send(`ACK ${batch.map((f) => `msg_id:${f.fields!.msg_id}`).join(" ")}\r\n`);
      assert.equal(await c.line(), "OK");
    }
    const want = tags.flatMap((t) => [...Array(300).keys()].map((i) => `${t}${i}`));
    assert.deepEqual(got, want);
  } finally {
    await p.close();
    await c.close();
    await broker.stop();
  }
});
