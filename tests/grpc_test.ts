/**
 * The gRPC front end over real sockets: an in-process broker with its gRPC
 * listener on a free port, a grpc-js client generated from the same
 * descriptor, and raw TCP clients for the cross-protocol exchange.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import type { Running } from "../src/app.ts";
import {
  errorCode,
  GrpcClient,
  type GrpcMessage,
  StreamReader,
  subscribe,
  takeMessages,
} from "./grpc_helpers.ts";
import { RawClient, startTestBroker, waitFor } from "./helpers.ts";
import { parseExposition, value } from "./prometheus.ts";
import { createHandler } from "../src/http/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function withBroker(
  args: string[],
  fn: (b: Running & { port: number }, c: GrpcClient) => Promise<void>,
): Promise<void> {
  const b = await startTestBroker(["--grpc-port", "0", ...args]);
  const c = new GrpcClient(b.grpc!.port);
  try {
    await fn(b, c);
  } finally {
    c.close();
    await b.stop();
  }
}

Deno.test("grpc: Publish answers the id; a queue consumer on a Subscribe stream gets it, acks it", async () => {
  await withBroker([], async (_b, c) => {
    const r = await c.unary<{ msg_id: string }>("Publish", {
      destination: "queue:jobs",
      body: encoder.encode("hello"),
    });
    assert.match(r.msg_id, /^\d+$/);
    const s = await subscribe(c, { destination: "queue:jobs", prefetch: 10 });
    assert.match(s.subId, /^g\d+$/);
    const [m] = await takeMessages(s.r, 1);
    assert.equal(m.msg_id, r.msg_id);
    assert.equal(m.destination, "queue:jobs");
    assert.equal(decoder.decode(m.body), "hello");
    assert.equal(m.delivery, 1);
    s.call.write({ settle: { ack: [m.msg_id], nack: [] } });
    s.call.end();
    await s.r.done();
    assert.equal(s.r.error, undefined);
  });
});

Deno.test("grpc: the compiled descriptor is docs/relayr.proto (run scripts/gen_grpc_descriptor.ts after editing it)", async () => {
  const { default: protobuf } = await import("protobufjs");
  const { RELAYR_V1_DESCRIPTOR } = await import("../src/grpc/mod.ts");
  const fromProto = new protobuf.Root().loadSync("docs/relayr.proto", { keepCase: true })
    .toJSON({ keepComments: false });
  assert.deepEqual(JSON.parse(JSON.stringify(fromProto)), RELAYR_V1_DESCRIPTOR);
});

Deno.test("grpc: a gRPC publish reaches a TCP subscriber with every field", async () => {
  await withBroker([], async (b, c) => {
    const tcp = await RawClient.connect(b.port);
    try {
      await tcp.send("SUB topic:orders.eu sub_id:s1\r\n");
      assert.equal(await tcp.line(), "OK");
      const r = await c.unary<{ msg_id: string }>("Publish", {
        destination: "topic:orders.eu",
        body: encoder.encode("body bytes"),
        headers: { "Trace-Id": "abc", "x-n": "1" },
        priority: 7,
        ttl_ms: 60_000,
        correlation_id: "c-1",
        reply_to: "queue:answers",
        content_type: "application/json",
      });
      const [f] = await tcp.msgs(1);
      assert.equal(f.fields!.dest, "topic:orders.eu");
      assert.equal(f.fields!.msg_id, r.msg_id);
      assert.equal(f.fields!.priority, "7");
      assert.equal(f.fields!.ttl, "60000");
      assert.equal(f.fields!.correlation_id, "c-1");
      assert.equal(f.fields!.reply_to, "queue:answers");
      assert.equal(f.fields!.content_type, "application/json");
      const hdr = Number(f.fields!.hdr);
      assert.equal(decoder.decode(f.payload!.subarray(0, hdr)), "Trace-Id: abc\r\nx-n: 1\r\n\r\n");
      assert.equal(decoder.decode(f.payload!.subarray(hdr)), "body bytes");
    } finally {
      await tcp.close();
    }
  });
});

Deno.test("grpc: a TCP publish reaches a gRPC subscriber with every field; a NACK redelivers with delivery 2", async () => {
  await withBroker([], async (b, c) => {
    const s = await subscribe(c, { destination: "queue:work", ack: "ACK_MODE_EXPLICIT" });
    const tcp = await RawClient.connect(b.port);
    try {
      const block = "Trace-Id: abc\r\nTrace-Id: def\r\n\r\n";
      await tcp.pub(
        "queue:work",
        block + "payload",
        `priority:3 ttl:5000 correlation_id:k9 reply_to:topic:back content_type:text/plain hdr:${block.length}`,
      );
      const ok = await tcp.line();
      const [m] = await takeMessages(s.r, 1);
      const want: Partial<GrpcMessage> = {
        destination: "queue:work",
        msg_id: ok.slice("OK msg_id:".length),
        priority: 3,
        ttl_ms: 5000,
        correlation_id: "k9",
        reply_to: "topic:back",
        content_type: "text/plain",
        delivery: 1,
        headers: { "Trace-Id": "abc, def" },
      };
      for (const [k, v] of Object.entries(want)) assert.deepEqual(m[k as keyof GrpcMessage], v, k);
      assert.equal(decoder.decode(m.body), "payload");
      s.call.write({ settle: { ack: [], nack: [{ msg_id: m.msg_id, delay_ms: 0 }] } });
      const [again] = await takeMessages(s.r, 1);
      assert.equal(again.msg_id, m.msg_id);
      assert.equal(again.delivery, 2);
      s.call.cancel();
    } finally {
      await tcp.close();
    }
  });
});

Deno.test("grpc: PublishStream acks every message of every batch in order, a refused one with its error", async () => {
  await withBroker([], async (_b, c) => {
    const s = await subscribe(c, { destination: "queue:bulk", prefetch: 1000 });
    const call = c.raw.PublishStream();
    const r = new StreamReader<{ acks: { msg_id: string; error: { code: string } | null }[] }>(
      call,
    );
    const msg = (d: string, i: number) => ({ destination: d, body: encoder.encode(`m${i}`) });
    call.write({ messages: [msg("queue:bulk", 0), msg("nope", 1), msg("queue:bulk", 2)] });
    call.write({ messages: [msg("queue:bulk", 3)] });
    const first = await r.next();
    assert.equal(first.acks.length, 3);
    assert.match(first.acks[0].msg_id, /^\d+$/);
    assert.equal(first.acks[1].msg_id, "");
    assert.equal(first.acks[1].error?.code, "BAD_DESTINATION");
    assert.match(first.acks[2].msg_id, /^\d+$/);
    const second = await r.next();
    assert.equal(second.acks.length, 1);
    call.end();
    await r.done();
    assert.equal(r.error, undefined);
    const got = await takeMessages(s.r, 3);
    assert.deepEqual(got.map((m) => decoder.decode(m.body)), ["m0", "m2", "m3"]);
    assert.deepEqual(got.map((m) => m.msg_id), [
      first.acks[0].msg_id,
      first.acks[2].msg_id,
      second.acks[0].msg_id,
    ]);
    s.call.cancel();
  });
});

Deno.test("grpc: errors map to status codes with the broker's code in the trailers", async () => {
  await withBroker(["--queue-max-messages", "1"], async (_b, c) => {
    const fails = async (method: string, req: unknown, status: grpc.status, code: string) => {
      const e = await c.unary(method, req).then(() => undefined, (e) => e);
      assert.ok(e !== undefined, `${method} should fail`);
      assert.equal(e.code, status, `${method}: ${e.details}`);
      assert.equal(errorCode(e), code);
    };
    const body = encoder.encode("x");
    await fails(
      "Publish",
      { destination: "queue:", body },
      grpc.status.INVALID_ARGUMENT,
      "BAD_DESTINATION",
    );
    await fails(
      "Publish",
      { destination: "queue:a", body, priority: 12 },
      grpc.status.INVALID_ARGUMENT,
      "BAD_ARGUMENT",
    );
    await fails(
      "Publish",
      { destination: "queue:a", body, headers: { "bad key": "v" } },
      grpc.status.INVALID_ARGUMENT,
      "BAD_HEADERS",
    );
    await c.unary("Publish", { destination: "queue:full", body });
    await fails(
      "Publish",
      { destination: "queue:full", body },
      grpc.status.RESOURCE_EXHAUSTED,
      "QUEUE_FULL",
    );
    await fails("Unsubscribe", { sub_id: "g999" }, grpc.status.NOT_FOUND, "UNKNOWN_SUB_ID");
    await fails(
      "Declare",
      { destination: "topic:d" },
      grpc.status.INVALID_ARGUMENT,
      "BAD_ARGUMENT",
    );
    // A Subscribe refused at open ends its stream with the status.
    const call = c.raw.Subscribe();
    const r = new StreamReader(call);
    call.write({ open: { destination: "topic:undeclared", durable: "d1" } });
    await r.done();
    assert.equal(r.error?.code, grpc.status.NOT_FOUND);
    assert.equal(errorCode(r.error), "NOT_DECLARED");
    // An unknown id in a settle is reported on the stream, which goes on.
    const s = await subscribe(c, { destination: "queue:full" });
    const [m] = await takeMessages(s.r, 1);
    s.call.write({ settle: { ack: [m.msg_id, "12345"], nack: [] } });
    const res = await s.r.next();
    assert.equal(res.error?.code, "UNKNOWN_MSG_ID");
    assert.match(res.error!.message, /msg_id:12345 /);
    // A malformed settle, and a forget on a subscription that is not durable: told, the stream goes on.
    s.call.write({ settle: { ack: ["not-an-id"], nack: [] } });
    assert.equal((await s.r.next()).error?.code, "BAD_ARGUMENT");
    s.call.write({ unsubscribe: { forget: true } });
    assert.equal((await s.r.next()).error?.code, "BAD_ARGUMENT");
    s.call.write({ settle: { ack: [m.msg_id], nack: [] } }); // already acked above: unknown now
    assert.equal((await s.r.next()).error?.code, "UNKNOWN_MSG_ID");
    s.call.cancel();
  });
});

Deno.test("grpc: a cancelled Subscribe gives its unacked messages back (redelivered, delivery 2)", async () => {
  await withBroker([], async (b, c) => {
    const a = await subscribe(c, { destination: "queue:q", prefetch: 10 });
    for (let i = 0; i < 3; i++) {
      await c.unary("Publish", { destination: "queue:q", body: encoder.encode(`m${i}`) });
    }
    const got = await takeMessages(a.r, 3);
    a.call.write({ settle: { ack: [got[0].msg_id], nack: [] } });
    // A settle has no reply: wait until the broker has it before cancelling.
    const acked = () => b.broker.queueStats({ offset: 0, limit: 10 }).list[0]?.acked;
    await waitFor(() => acked() === 1, 2000, "the ack");
    a.call.cancel();
    const bSub = await subscribe(c, { destination: "queue:q", prefetch: 10 });
    const again = await takeMessages(bSub.r, 2);
    assert.deepEqual(again.map((m) => decoder.decode(m.body)).sort(), ["m1", "m2"]);
    assert.deepEqual(again.map((m) => m.delivery), [2, 2]);
    bSub.call.cancel();
  });
});

Deno.test("grpc: deadlines: a Subscribe past its deadline ends and redelivers; a Request times out", async () => {
  await withBroker([], async (b, c) => {
    await c.unary("Publish", { destination: "queue:dl", body: encoder.encode("x") });
    const call = c.raw.Subscribe(new grpc.Metadata(), { deadline: Date.now() + 300 });
    const r = new StreamReader<{ messages: GrpcMessage[] }>(call);
    call.write({ open: { destination: "queue:dl" } });
    await r.next();
    const [m] = await takeMessages(r as never, 1);
    await r.done();
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => b.grpc!.stats().subscribe_streams === 0, 2000, "the stream to close");
    const again = await subscribe(c, { destination: "queue:dl" });
    const [m2] = await takeMessages(again.r, 1);
    assert.equal(m2.msg_id, m.msg_id);
    assert.equal(m2.delivery, 2);
    again.call.cancel();
    const e = await c.unary("Request", {
      message: { destination: "queue:nobody", body: encoder.encode("?") },
    }, { deadline: Date.now() + 200 }).then(() => undefined, (e) => e);
    assert.equal(e?.code, grpc.status.DEADLINE_EXCEEDED);
    const e2 = await c.unary("Request", {
      message: { destination: "queue:nobody", body: encoder.encode("?") },
      timeout_ms: 100,
    }).then(() => undefined, (e) => e);
    assert.equal(e2?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(errorCode(e2), "TIMEOUT");
    await waitFor(() => b.grpc!.stats().requests_waiting === 0, 2000, "the waits to end");
  });
});

Deno.test("grpc: Request gets the reply a TCP responder publishes to its reply_to", async () => {
  await withBroker([], async (b, c) => {
    const tcp = await RawClient.connect(b.port);
    try {
      await tcp.send("SUB queue:svc sub_id:r\r\n");
      assert.equal(await tcp.line(), "OK");
      const reply = c.unary<{ reply: GrpcMessage }>("Request", {
        message: { destination: "queue:svc", body: encoder.encode("ping") },
        timeout_ms: 3000,
      });
      const [f] = await tcp.msgs(1);
      assert.equal(decoder.decode(f.payload!), "ping");
      await tcp.send(`ACK msg_id:${f.fields!.msg_id}\r\n`);
      await tcp.pub(f.fields!.reply_to, "pong", `correlation_id:${f.fields!.correlation_id}`);
      const { reply: m } = await reply;
      assert.equal(decoder.decode(m.body), "pong");
      assert.equal(m.correlation_id, f.fields!.correlation_id);
      assert.equal(m.destination, f.fields!.reply_to);
    } finally {
      await tcp.close();
    }
  });
});

Deno.test("grpc: Declare, a durable Subscribe, Unsubscribe with forget, Stats", async () => {
  await withBroker([], async (b, c) => {
    await c.unary("Declare", { destination: "topic:log", retain_messages: 100 });
    await c.unary("Publish", { destination: "topic:log", body: encoder.encode("old") });
    const s = await subscribe(c, {
      destination: "topic:log",
      durable: "d1",
      start: { first: true },
    });
    const [m] = await takeMessages(s.r, 1);
    assert.equal(decoder.decode(m.body), "old");
    const e = await c.unary("Unsubscribe", { sub_id: "nope", forget: true }).then(
      () => 0,
      (e) => e,
    );
    assert.equal(errorCode(e), "UNKNOWN_SUB_ID");
    await c.unary("Unsubscribe", { sub_id: s.subId, forget: true });
    await s.r.done();
    assert.equal(s.r.error, undefined); // ended with OK
    // Forgotten: the same name starts afresh at `first`, so the message comes again as a first delivery.
    const s2 = await subscribe(c, {
      destination: "topic:log",
      durable: "d1",
      start: { first: true },
    });
    const [m2] = await takeMessages(s2.r, 1);
    assert.equal(m2.msg_id, m.msg_id);
    assert.equal(m2.delivery, 1);
    const st = await c.unary<{ grpc_streams: number; json: string; published_msgs: number }>(
      "Stats",
      {},
    );
    assert.equal(st.grpc_streams, 1);
    assert.equal(st.published_msgs, 1);
    assert.equal(JSON.parse(st.json).grpc.calls.Declare, 1);
    s2.call.cancel();
    await waitFor(() => b.grpc!.stats().subscribe_streams === 0, 2000, "the stream to close");
  });
});

Deno.test("grpc: a gRPC subscriber that stops reading is cut off as a slow consumer; others go on", async () => {
  await withBroker(["--sub-pending-messages", "200"], async (b, c) => {
    const slow = await subscribe(c, { destination: "topic:fast" });
    slow.call.pause(); // stops reading: HTTP/2 flow control reaches the server
    const ok = await subscribe(c, { destination: "topic:fast" });
    const tcp = await RawClient.connect(b.port);
    try {
      await tcp.send('CONNECT {"verbose":false}\r\n');
      const body = "x".repeat(1000);
      let sent = 0;
      let received = 0;
      ok.r.call.on("data", (d: { messages: unknown[] }) => received += d.messages.length);
      for (
        let round = 0;
        round < 200 && b.grpc!.stats().closed_by_reason.SLOW_CONSUMER === undefined;
        round++
      ) {
        for (let i = 0; i < 100; i++) await tcp.pub("topic:fast", body);
        sent += 100;
        // Paced by the reading subscriber, so that only the stalled one falls
        // behind the 200-message limit, however loaded the machine.
        await waitFor(() => received === sent, 5000, "the reading subscriber to keep up");
      }
      assert.equal(b.grpc!.stats().closed_by_reason.SLOW_CONSUMER, 1);
      assert.equal(b.grpc!.stats().subscribe_streams, 1);
      // The status comes after the batches already written: the client sees it once it reads again.
      slow.call.resume();
      await slow.r.done(10_000);
      assert.equal(slow.r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(errorCode(slow.r.error), "SLOW_CONSUMER");
      await waitFor(() => received === sent, 5000, "the reading subscriber to get every message");
      ok.call.cancel();
    } finally {
      await tcp.close();
    }
  });
});

Deno.test("grpc: /metrics has relayr_grpc_* and /api/stats a grpc part, from the listener's own counters", async () => {
  await withBroker([], async (b, c) => {
    const handler = createHandler(b.server, () => b.grpc!.stats());
    await c.unary("Publish", { destination: "queue:m", body: encoder.encode("abc") });
    await c.unary("Publish", { destination: "bad", body: encoder.encode("x") }).catch(() => {});
    const s = await subscribe(c, { destination: "queue:m" });
    await takeMessages(s.r, 1);
    const text = await (await handler(new Request("http://x/metrics"))).text();
    const families = parseExposition(text);
    assert.equal(value(families, "relayr_grpc_calls_total", { method: "Publish" }), 2);
    assert.equal(value(families, "relayr_grpc_calls_total", { method: "Subscribe" }), 1);
    assert.equal(value(families, "relayr_grpc_errors_total", { code: "BAD_DESTINATION" }), 1);
    assert.equal(value(families, "relayr_grpc_streams", { kind: "subscribe" }), 1);
    assert.equal(value(families, "relayr_grpc_messages_in_total"), 1);
    assert.equal(value(families, "relayr_grpc_bytes_in_total"), 3);
    assert.equal(value(families, "relayr_grpc_messages_out_total"), 1);
    s.call.cancel();
    await waitFor(() => b.grpc!.stats().subscribe_streams === 0, 2000, "the stream to close");
    const stats = await (await handler(new Request("http://x/api/stats"))).json();
    assert.equal(stats.grpc.closed_by_reason.CLIENT_CLOSED, 1);
    assert.equal(stats.grpc.out_msgs, 1);
  });
});

Deno.test("grpc: unsubscribe inside the stream ends it with OK; its unacked messages go back", async () => {
  await withBroker([], async (_b, c) => {
    await c.unary("Publish", { destination: "queue:u", body: encoder.encode("one") });
    const s = await subscribe(c, { destination: "queue:u" });
    const [m] = await takeMessages(s.r, 1);
    s.call.write({ unsubscribe: { forget: false } });
    await s.r.done();
    assert.equal(s.r.error, undefined);
    const again = await subscribe(c, { destination: "queue:u" });
    const [m2] = await takeMessages(again.r, 1);
    assert.deepEqual([m2.msg_id, m2.delivery], [m.msg_id, 2]);
    again.call.cancel();
  });
});

Deno.test("grpc: PublishStream under --fsync always acks in order once stored", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "relayr-grpc-" });
  try {
    await withBroker(["--data-dir", dir, "--fsync", "always"], async (_b, c) => {
      const call = c.raw.PublishStream();
      const r = new StreamReader<{ acks: { msg_id: string }[] }>(call);
      for (let k = 0; k < 5; k++) {
        call.write({
          messages: Array.from({ length: 20 }, (_, i) => ({
            destination: "queue:durable",
            body: encoder.encode(`${k}.${i}`),
          })),
        });
      }
      const ids: string[] = [];
      for (let k = 0; k < 5; k++) ids.push(...(await r.next()).acks.map((a) => a.msg_id));
      call.end();
      await r.done();
      assert.equal(ids.length, 100);
      assert.deepEqual([...ids].sort(), ids, "acks in publish order (ids grow)");
      const s = await subscribe(c, { destination: "queue:durable", prefetch: 100 });
      const got = await takeMessages(s.r, 100);
      assert.deepEqual(got.map((m) => m.msg_id), ids);
      s.call.cancel();
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("grpc: a Subscribe filter selects by headers; a bad one is INVALID_ARGUMENT / BAD_FILTER", async () => {
  await withBroker([], async (_b, c) => {
    const s = await subscribe(c, {
      destination: "topic:logs.>",
      filter: "level IN ('error', 'fatal')",
    });
    for (const level of ["info", "error", "debug", "fatal"]) {
      await c.unary("Publish", {
        destination: "topic:logs.app",
        body: encoder.encode(level),
        headers: { level },
      });
    }
    const got = await takeMessages(s.r, 2);
    assert.deepEqual(got.map((m) => decoder.decode(m.body)), ["error", "fatal"]);
    s.call.cancel();
    const call = c.raw.Subscribe();
    const r = new StreamReader(call);
    call.write({ open: { destination: "topic:logs.>", filter: "level =" } });
    await r.done();
    assert.equal(r.error?.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(errorCode(r.error), "BAD_FILTER");
  });
});

Deno.test("grpc: delay_ms holds a message back; a repeated dedup_id is stored once", async () => {
  await withBroker([], async (_b, c) => {
    const s = await subscribe(c, { destination: "queue:sched", prefetch: 10 });
    await c.unary("Publish", {
      destination: "queue:sched",
      body: encoder.encode("later"),
      delay_ms: 300,
    });
    await c.unary("Publish", { destination: "queue:sched", body: encoder.encode("now") });
    for (let i = 0; i < 2; i++) {
      await c.unary("Publish", {
        destination: "queue:sched",
        body: encoder.encode("once"),
        dedup_id: "d-1",
      });
    }
    const got = await takeMessages(s.r, 3);
    assert.deepEqual(got.map((m) => decoder.decode(m.body)), ["now", "once", "later"]);
    const e = await c.unary("Publish", {
      destination: "queue:sched",
      body: encoder.encode("x"),
      delay_ms: 1,
      deliver_at_ms: Date.now() + 1000,
    }).then(() => undefined, (e) => e);
    assert.equal(errorCode(e), "BAD_ARGUMENT");
    s.call.cancel();
  });
});

Deno.test("grpc: served by default on Bun (the binary), on Deno only when --grpc-port is given", async () => {
  const { grpcPortOf } = await import("../src/app.ts");
  const { loadConfig } = await import("../src/config/mod.ts");
  const config = (args: string[]) =>
    loadConfig({ args, env: () => undefined, readFile: () => "" }).config;
  assert.equal(grpcPortOf(config([]), { name: "bun" }), 9093);
  assert.equal(grpcPortOf(config([]), { name: "deno" }), undefined, "Deno: off by default");
  assert.equal(grpcPortOf(config(["--grpc-port", "7000"]), { name: "deno" }), 7000);
  assert.equal(
    grpcPortOf(config(["--grpc-port", "7000", "--no-grpc"]), { name: "bun" }),
    undefined,
  );
  assert.equal(grpcPortOf(config(["--no-grpc"]), { name: "bun" }), undefined);
  // A broker on Deno without the flag opens no gRPC port.
  const b = await startTestBroker(["--grpc-port", "0"]);
  try {
    assert.ok(b.grpc !== undefined);
  } finally {
    await b.stop();
  }
  const { startBroker } = await import("../src/app.ts");
  const { denoRuntime } = await import("../src/runtime/deno.ts");
  const plain = await startBroker(
    denoRuntime,
    config(["--host", "127.0.0.1", "--port", "0", "--no-http", "--memory"]),
  );
  try {
    assert.equal(plain.grpc, undefined);
  } finally {
    await plain.stop();
  }
});
