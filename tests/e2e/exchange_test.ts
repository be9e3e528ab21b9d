/**
 * The protocol over real TCP: the documented exchange, line ends, pipelining,
 * verbose off, PING/PONG, INFO, errors that keep or close the connection.
 */
import assert from "node:assert/strict";
import { RawClient, startTestBroker, waitFor } from "../helpers.ts";

Deno.test("exchange: the documented session works verbatim, with \\n and with \\r\\n", async () => {
  const broker = await startTestBroker();
  try {
    for (const eol of ["\n", "\r\n"]) {
      const c = await RawClient.connect(broker.port);
      await c.send(`CONNECT {"version":"1.0","client_id":"client123"}${eol}`);
      assert.equal(await c.line(), "OK");
      await c.send(`PUB queue:orders 35${eol}{"order_id":"12345","amount":99.99}${eol}`);
      assert.match(await c.line(), /^OK msg_id:\d+$/);
      await c.send(`SUB topic:events sub_id:sub456${eol}`);
      assert.equal(await c.line(), "OK");
      const p = await RawClient.connect(broker.port);
      await p.pub("topic:events", '{"event":"order_placed","order_id":"12345"}');
      const [okLine] = [await p.line()];
      const id = okLine.match(/^OK msg_id:(\d+)$/)![1];
      const msg = await c.frame();
      assert.equal(msg.line, `MSG topic:events sub_id:sub456 msg_id:${id} 43`);
      assert.equal(
        new TextDecoder().decode(msg.payload),
        '{"event":"order_placed","order_id":"12345"}',
      );
      await c.send(`ACK msg_id:${id}${eol}`);
      assert.equal(await c.line(), "OK");
      // The queued order is still there for a consumer.
      await c.send(`SUB queue:orders sub_id:q1${eol}`);
      assert.equal(await c.line(), "OK");
      const order = await c.frame();
      assert.match(order.line, /^MSG queue:orders sub_id:q1 msg_id:\d+ 35$/);
      await c.send(`ACK msg_id:${order.fields!.msg_id}${eol}`);
      assert.equal(await c.line(), "OK");
      await c.close();
      await p.close();
    }
  } finally {
    await broker.stop();
  }
});

Deno.test("exchange: pipelined commands are answered in order", async () => {
  const broker = await startTestBroker();
  const c = await RawClient.connect(broker.port);
  try {
    let batch = "PING\r\n";
    for (let i = 0; i < 200; i++) batch += `PUB queue:pipe 1\r\n${i % 10}\r\n`;
    batch +=
      "FOO\r\nSUB topic:x sub_id:a\r\nSUB topic:x sub_id:a\r\nUNSUB a\r\nUNSUB a\r\nPING\r\n";
    await c.send(batch);
    assert.equal(await c.line(), "PONG");
    let last = 0;
    for (let i = 0; i < 200; i++) {
      const id = Number((await c.line()).match(/^OK msg_id:(\d+)$/)![1]);
      assert.ok(id > last, "ids increase");
      last = id;
    }
    assert.match(await c.line(), /^ERR UNKNOWN_COMMAND /);
    assert.equal(await c.line(), "OK");
    assert.match(await c.line(), /^ERR DUPLICATE_SUB_ID /);
    assert.equal(await c.line(), "OK");
    assert.match(await c.line(), /^ERR UNKNOWN_SUB_ID /);
    assert.equal(await c.line(), "PONG");
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("exchange: verbose:false drops OKs but never errors", async () => {
  const broker = await startTestBroker();
  const c = await RawClient.connect(broker.port);
  try {
    await c.send(
      'CONNECT {"verbose":false}\r\nPUB queue:v 1\r\nx\r\nSUB topic:v sub_id:s\r\nPUB nowhere 1\r\nx\r\nPING\r\n',
    );
    assert.match(await c.line(), /^ERR BAD_DESTINATION /);
    assert.equal(await c.line(), "PONG");
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("exchange: server-chosen sub ids, INFO, message options round trip", async () => {
  const broker = await startTestBroker();
  const c = await RawClient.connect(broker.port);
  try {
    await c.send("SUB topic:opts\r\n");
    assert.equal(await c.line(), "OK sub_id:1");
    await c.send("INFO\r\n");
    const info = JSON.parse((await c.line()).slice(5));
    assert.equal(info.proto, 1);
    assert.equal(info.max_payload, 1024 * 1024);
    await c.pub(
      "topic:opts",
      "Trace-Id: abc\r\nX-Two: 2 words\r\n\r\nbody",
      "priority:7 ttl:60000 correlation_id:corr-1 reply_to:topic:replies.1 content_type:text/plain hdr:33",
    );
    const msg = await c.frame();
    assert.match(
      msg.line,
      /^MSG topic:opts sub_id:1 msg_id:\d+ priority:7 ttl:60000 correlation_id:corr-1 reply_to:topic:replies.1 content_type:text\/plain hdr:33 37$/,
    );
    assert.equal(
      new TextDecoder().decode(msg.payload),
      "Trace-Id: abc\r\nX-Two: 2 words\r\n\r\nbody",
    );
    assert.match(await c.line(), /^OK msg_id:\d+$/);
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("exchange: framing errors get ERR and a typed close; others are not disturbed", async () => {
  const broker = await startTestBroker(["--max-payload", "1000"]);
  const bystander = await RawClient.connect(broker.port);
  try {
    await bystander.send("SUB topic:calm sub_id:b\r\n");
    assert.equal(await bystander.line(), "OK");
    const cases: [string, string][] = [
      ["PUB queue:a 5\r\nhelloXX", "ERR BAD_FRAME"],
      ["PUB queue:a 1001\r\n", "ERR PAYLOAD_TOO_LARGE"],
      ["PUB queue:a five\r\n", "ERR BAD_FRAME"],
      ["A".repeat(5000), "ERR CONTROL_LINE_TOO_LONG"],
    ];
    for (const [input, expected] of cases) {
      const c = await RawClient.connect(broker.port);
      await c.send(input);
      assert.ok((await c.line()).startsWith(expected + " "), input.slice(0, 20));
      assert.ok(await c.closedByServer(), "the server closed the connection");
      await c.close();
    }
    const by = broker.server.closedByReason;
    await waitFor(
      () => by.BAD_FRAME + by.PAYLOAD_TOO_LARGE + by.CONTROL_LINE_TOO_LONG === 4,
      2000,
      "4 framing closes",
    );
    assert.deepEqual(
      [by.BAD_FRAME, by.PAYLOAD_TOO_LARGE, by.CONTROL_LINE_TOO_LONG],
      [2, 1, 1],
      "each close has the reason of its ERR code",
    );
    const p = await RawClient.connect(broker.port);
    await p.pub("topic:calm", "still here");
    assert.equal(new TextDecoder().decode((await bystander.frame()).payload), "still here");
    await p.close();
  } finally {
    await bystander.close();
    await broker.stop();
  }
});

Deno.test("exchange: idle clients are PINGed and dropped after missed PONGs", async () => {
  const broker = await startTestBroker(["--ping-interval", "100"]);
  const lazy = await RawClient.connect(broker.port);
  const alive = await RawClient.connect(broker.port);
  try {
    await lazy.send("PING\r\n");
    assert.equal(await lazy.line(), "PONG");
    assert.equal(await lazy.line(1000), "PING");
    assert.equal(await alive.line(1000), "PING");
    await alive.send("PONG\r\n");
    assert.equal(await lazy.line(1000), "PING");
    assert.match(await lazy.line(1000), /^ERR STALE_CONNECTION /);
    assert.ok(await lazy.closedByServer());
    assert.equal(broker.server.closedByReason.STALE_CONNECTION, 1);
    // The client that answered is still connected.
    assert.equal(await alive.line(1000), "PING");
    assert.equal(broker.server.connections.size, 1);
  } finally {
    await lazy.close();
    await alive.close();
    await broker.stop();
  }
});

Deno.test("exchange: a connection over the limit gets ERR TOO_MANY_CONNECTIONS and a typed close in the ring", async () => {
  const broker = await startTestBroker(["--max-connections", "1"]);
  const first = await RawClient.connect(broker.port);
  try {
    await first.send("PING\r\n");
    assert.equal(await first.line(), "PONG");
    const extra = await RawClient.connect(broker.port);
    assert.match(await extra.line(), /^ERR TOO_MANY_CONNECTIONS /);
    assert.ok(await extra.closedByServer(), "the server closed the extra connection");
    await extra.close();
    const closed = broker.server.closedStats(1)[0];
    assert.equal(closed.reason, "TOO_MANY_CONNECTIONS");
    assert.equal(broker.server.closedByReason.TOO_MANY_CONNECTIONS, 1);
    assert.equal(broker.server.connections.size, 1);
    await first.send("PING\r\n");
    assert.equal(await first.line(), "PONG", "the connection within the limit is served");
  } finally {
    await first.close();
    await broker.stop();
  }
});
