/**
 * `--slow-consumer block` over real sockets: a subscriber that stops reading
 * pauses the topic's publishers (their socket is no longer read, so TCP
 * back-pressure reaches them) instead of being cut off; a healthy subscriber
 * is not held; the pause ends when the stalled one drains, or, after
 * `--slow-consumer-block-ms`, by disconnecting it.
 */
import assert from "node:assert/strict";
import { RawClient, startTestBroker, waitFor } from "../helpers.ts";

const N = 4000;
const SIZE = 4096;

/** N publishes of SIZE bytes (16 MiB: more than the 4 MiB outbound high mark and the socket buffers). */
function batch(): string {
  const body = "x".repeat(SIZE);
  let s = 'CONNECT {"verbose":false}\r\n';
  for (let i = 0; i < N; i++) s += `PUB topic:flow ${SIZE}\r\n${body}\r\n`;
  return s + "PING\r\n";
}

async function subscribe(port: number, sid: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.send(`SUB topic:flow sub_id:${sid}\r\nPING\r\n`);
  assert.equal(await c.line(), "OK");
  assert.equal(await c.line(), "PONG");
  return c;
}

Deno.test("slow consumer block: a stalled subscriber pauses the publisher, then gets every message once it reads", async () => {
  const broker = await startTestBroker([
    ...["--slow-consumer", "block", "--sub-pending-messages", "100"],
    ...["--slow-consumer-block-ms", "60000"],
  ]);
  const stalled = await subscribe(broker.port, "stalled");
  const healthy = await subscribe(broker.port, "healthy");
  const pub = await RawClient.connect(broker.port);
  try {
    const sent = pub.send(batch()); // not awaited: its write blocks while the broker does not read
    const healthyGot = healthy.msgs(N, 20_000);
    const topic = () => broker.broker.topics.get("topic:flow");
    await waitFor(() => topic()?.blocked === true, 10_000, "the topic blocks its publishers");
    const paused = [...broker.server.connections.values()].find((c) => c.msgsIn > 0)!;
    const inAtPause = paused.msgsIn;
    assert.ok(inAtPause < N, `the publisher was paused after ${inAtPause} of ${N} publishes`);
    assert.equal(topic()!.counters.blocks >= 1, true);
    // The stalled one reads: the pause ends, and nothing was dropped or cut off.
    const got = await stalled.msgs(N, 20_000);
    assert.equal(got.length, N);
    assert.equal(await pub.line(10_000), "PONG", "the publisher was read to the end");
    await sent;
    assert.equal((await healthyGot).length, N, "the healthy subscriber got everything");
    assert.equal(broker.server.closedByReason.SLOW_CONSUMER, 0);
    assert.equal(topic()!.counters.dropped, 0);
  } finally {
    await pub.close();
    await stalled.close();
    await healthy.close();
    await broker.stop();
  }
});

Deno.test("slow consumer block: after --slow-consumer-block-ms the stalled subscriber is disconnected and publishing goes on", async () => {
  const broker = await startTestBroker([
    ...["--slow-consumer", "block", "--sub-pending-messages", "100"],
    ...["--slow-consumer-block-ms", "300"],
  ]);
  const stalled = await subscribe(broker.port, "stalled");
  const healthy = await subscribe(broker.port, "healthy");
  const pub = await RawClient.connect(broker.port);
  try {
    const sent = pub.send(batch());
    const healthyGot = healthy.msgs(N, 20_000);
    await waitFor(
      () => broker.server.closedByReason.SLOW_CONSUMER === 1,
      10_000,
      "the stalled subscriber is closed as a slow consumer",
    );
    assert.match(broker.server.closedStats(1)[0].detail, /after 300 ms of blocked publishers/);
    assert.equal(await pub.line(20_000), "PONG", "the publisher goes on");
    await sent;
    assert.equal((await healthyGot).length, N, "the healthy subscriber got everything");
    assert.equal(broker.broker.topics.get("topic:flow")!.blocked, false);
  } finally {
    await pub.close();
    await stalled.close();
    await healthy.close();
    await broker.stop();
  }
});
