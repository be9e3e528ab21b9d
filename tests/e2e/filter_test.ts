/**
 * `filter:` on SUB over real TCP: topic subscribers get only what their
 * selector takes, queue consumers leave the rest for others in FIFO order,
 * and a bad selector is `ERR BAD_FILTER` with where it went wrong.
 */
import assert from "node:assert/strict";
import { expectLine, RawClient, type ServerFrame, startTestBroker } from "../helpers.ts";

const body = (f: ServerFrame) => {
  const t = new TextDecoder().decode(f.payload);
  return t.slice(t.indexOf("\r\n\r\n") + 4);
};

/** Publishes `text` with header `region`, waits for its OK. */
async function pubRegion(p: RawClient, dest: string, region: string, text: string) {
  const block = `region: ${region}\r\n\r\n`;
  await p.pub(dest, block + text, `hdr:${block.length}`);
  assert.match(await p.line(), /^OK msg_id:\d+$/);
}

Deno.test("e2e filter: topic subscribers get only what they select", async () => {
  const broker = await startTestBroker();
  const eu = await RawClient.connect(broker.port);
  const us = await RawClient.connect(broker.port);
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(eu, `SUB topic:orders.* sub_id:eu filter:"region = 'eu'"`, "OK");
    await expectLine(us, `SUB topic:orders.* sub_id:us filter:"region IN ('us', 'ca')"`, "OK");
    const regions = ["eu", "us", "eu", "ca", "fr"];
    for (const [i, r] of regions.entries()) await pubRegion(p, "topic:orders.new", r, `m${i}`);
    assert.deepEqual((await eu.msgs(2)).map(body), ["m0", "m2"]);
    assert.deepEqual((await us.msgs(2)).map(body), ["m1", "m3"]);
    const stats = broker.broker.topicStats({ offset: 0, limit: 10 }).list[0];
    assert.equal(stats.retained, 0);
  } finally {
    for (const c of [eu, us, p]) await c.close();
    await broker.stop();
  }
});

Deno.test("e2e filter: queue consumers select, the rest waits for others in order", async () => {
  const broker = await startTestBroker();
  const eu = await RawClient.connect(broker.port);
  const p = await RawClient.connect(broker.port);
  let rest: RawClient | undefined;
  try {
    await expectLine(eu, `SUB queue:jobs sub_id:eu ack:none filter:"region = 'eu'"`, "OK");
    const regions = ["us", "eu", "fr", "eu", "us"];
    for (const [i, r] of regions.entries()) await pubRegion(p, "queue:jobs", r, `m${i}`);
    assert.deepEqual((await eu.msgs(2)).map(body), ["m1", "m3"]);
    rest = await RawClient.connect(broker.port);
    await expectLine(rest, "SUB queue:jobs sub_id:rest ack:none", "OK");
    assert.deepEqual((await rest.msgs(3)).map(body), ["m0", "m2", "m4"]);
  } finally {
    for (const c of [eu, p, rest]) await c?.close();
    await broker.stop();
  }
});

Deno.test("e2e filter: a bad selector is ERR BAD_FILTER, and the connection goes on", async () => {
  const broker = await startTestBroker();
  const c = await RawClient.connect(broker.port);
  try {
    await expectLine(
      c,
      `SUB topic:a filter:"region = 'eu' AND"`,
      "ERR BAD_FILTER at 17: expected an identifier or a literal, got the end",
    );
    await expectLine(c, `SUB topic:a filter:"x LIKE 'a' ESCAPE 'ab'"`, /^ERR BAD_FILTER at 7: /);
    await expectLine(c, `SUB topic:a filter:"unterminated`, /^ERR BAD_ARGUMENT /);
    await expectLine(c, "PING", "PONG");
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("e2e bind: QUEUE_FULL names the full queue, and nothing is enqueued anywhere", async () => {
  const broker = await startTestBroker(["--queue-max-messages", "1"]);
  const c = await RawClient.connect(broker.port);
  try {
    await expectLine(c, "BIND topic:t queue:a", "OK");
    await expectLine(c, `BIND topic:t queue:b filter:"region = 'eu'"`, "OK");
    await pubRegion(c, "topic:t", "eu", "first");
    await c.send("PUB topic:t 5\r\nhello\r\n"); // no header: the selector of b does not take it
    assert.match(await c.line(), /^ERR QUEUE_FULL queue:a /);
    const stats = broker.server.stats({ offset: 0, limit: 10, closed: 0, subs: false });
    assert.deepEqual(stats.bindings.list.map((b) => [b.queue, b.routed, b.rejected]), [
      ["queue:a", 1, 1],
      ["queue:b", 1, 0],
    ]);
    assert.equal(stats.server.routed_msgs, 2);
  } finally {
    await c.close();
    await broker.stop();
  }
});
