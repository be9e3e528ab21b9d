/**
 * HTTP monitoring: the pure handler called with `Request`s (no socket) over a
 * broker that real TCP clients drive, then the same endpoints through the
 * real HTTP port. Every `/metrics` scrape goes through a strict exposition
 * parser.
 */
import assert from "node:assert/strict";
import { type Running, startBroker } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { createHandler, Exposition, type Handler } from "../src/http/mod.ts";
import type { Stats } from "../src/server/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { VERSION } from "../src/version.ts";
import { expectLine, publishAll, RawClient, startTestBroker, waitFor } from "./helpers.ts";
import { type Family, parseExposition, value } from "./prometheus.ts";

function handlerFor(b: Running): Handler {
  return createHandler(b.server);
}

async function get(h: Handler, path: string, method = "GET"): Promise<Response> {
  return await h(new Request(`http://relayr.test${path}`, { method }));
}

async function scrape(h: Handler): Promise<Map<string, Family>> {
  const res = await get(h, "/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

async function stats(h: Handler, query = ""): Promise<Stats> {
  const res = await get(h, `/api/stats${query}`);
  assert.equal(res.status, 200);
  return await res.json();
}

function num(f: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const v = value(f, name, labels);
  assert.ok(v !== undefined, `${name}${JSON.stringify(labels)} is exported`);
  return v;
}

Deno.test("exposition: escapes HELP and label values, refuses bad names and repeats", () => {
  const e = new Exposition();
  e.family("t_weird", "gauge", 'help with \\ and\nnewline and "quotes"', [
    [{ v: 'a"b\\c\nd' }, 1],
    [{ v: "" }, Infinity],
    [{ v: "x" }, NaN],
  ]);
  e.histogram("t_h", "h", {
    buckets: [{ le: 0.5, count: 1 }, { le: 1, count: 2 }],
    sum: 1.2,
    count: 3,
  });
  const text = e.text();
  assert.ok(text.includes('# HELP t_weird help with \\\\ and\\nnewline and "quotes"\n'));
  assert.ok(text.includes('t_weird{v="a\\"b\\\\c\\nd"} 1\n'));
  assert.ok(text.includes('t_h_bucket{le="+Inf"} 3\n'));
  const f = parseExposition(text);
  assert.equal(f.get("t_weird")!.help, 'help with \\ and\nnewline and "quotes"');
  assert.equal(value(f, "t_weird", { v: 'a"b\\c\nd' }), 1);
  assert.equal(value(f, "t_weird", { v: "" }), Infinity);
  assert.ok(Number.isNaN(value(f, "t_weird", { v: "x" })));
  assert.throws(() => e.single("t_weird", "gauge", "again", 1), /written twice/);
  assert.throws(() => e.single("bad-name", "gauge", "x", 1), /Invalid metric name/);
  assert.throws(() => e.family("t_l", "gauge", "x", [[{ "bad-label": "v" }, 1]]), /label name/);
  // The parser itself is strict: these are all rejected.
  for (
    const bad of [
      "a 1",
      'a{b="c"} 1\nb 2\na 3\n',
      "# TYPE a counter\na -1\n",
      'a{b="\\t"} 1\n',
      "a 1x\n",
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n',
    ]
  ) assert.throws(() => parseExposition(bad), SyntaxError, JSON.stringify(bad));
});

Deno.test("http handler: metrics move by N as N messages flow over TCP", async () => {
  const broker = await startTestBroker();
  const h = handlerFor(broker);
  const consumer = await RawClient.connect(broker.port);
  const producer = await RawClient.connect(broker.port);
  try {
    await consumer.send('CONNECT {"client_id":"watcher"}\r\nSUB queue:work sub_id:w\r\n');
    await consumer.send("SUB topic:news sub_id:n\r\nPING\r\n");
    await consumer.until((f) => f.line === "PONG", 10);
    const before = await scrape(h);
    const N = 50;
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < N; i++) batch += "PUB queue:work 5\r\nhello\r\nPUB topic:news 3\r\nabc\r\n";
    await producer.send(batch + "PING\r\n");
    assert.equal(await producer.line(), "PONG");
    const got = await consumer.msgs(2 * N);
    const after = await scrape(h);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      num(after, name, labels) - (value(before, name, labels) ?? 0);
    assert.equal(delta("relayr_messages_in_total"), 2 * N);
    assert.equal(delta("relayr_bytes_in_total"), 8 * N);
    assert.equal(delta("relayr_messages_published_total"), 2 * N);
    assert.equal(delta("relayr_messages_out_total"), 2 * N);
    assert.equal(delta("relayr_bytes_out_total"), 8 * N);
    assert.equal(delta("relayr_delivery_latency_seconds_count"), 2 * N);
    assert.equal(delta("relayr_queue_published_total", { queue: "work" }), N);
    assert.equal(delta("relayr_queue_delivered_total", { queue: "work" }), N);
    assert.equal(num(after, "relayr_queue_inflight", { queue: "work" }), N);
    assert.equal(num(after, "relayr_queue_depth", { queue: "work" }), 0);
    assert.equal(num(after, "relayr_queue_consumers", { queue: "work" }), 1);
    assert.equal(delta("relayr_topic_delivered_total", { topic: "news" }), N);
    assert.equal(num(after, "relayr_topic_subscribers", { topic: "news" }), 1);
    assert.equal(num(after, "relayr_topic_lag_messages", { topic: "news" }), 0);
    assert.equal(num(after, "relayr_connections"), 2);
    assert.equal(num(after, "relayr_ready"), 1);
    assert.equal(num(after, "relayr_metrics_destinations_omitted", { kind: "queue" }), 0);
    assert.ok(num(after, "process_resident_memory_bytes") > 0);
    // The heap's reservation and the memory outside it (ArrayBuffers) are there to tell a JS leak
    // from a buffer leak from allocator retention; Deno has no separate ArrayBuffer figure.
    assert.ok(num(after, "relayr_heap_total_bytes") >= num(after, "relayr_heap_used_bytes"));
    assert.ok(num(after, "relayr_external_memory_bytes") > 0);
    assert.equal(value(after, "relayr_array_buffers_bytes"), undefined);

    const ids = got.filter((f) => f.fields!.dest === "queue:work").map((f) => f.fields!.msg_id);
    for (let i = 0; i < ids.length; i += 25) {
      await consumer.send(`ACK ${ids.slice(i, i + 25).map((id) => `msg_id:${id}`).join(" ")}\r\n`);
      assert.equal(await consumer.line(), "OK");
    }
    const acked = await scrape(h);
    assert.equal(num(acked, "relayr_queue_acked_total", { queue: "work" }), N);
    assert.equal(num(acked, "relayr_queue_inflight", { queue: "work" }), 0);
    // A topic message that nobody listens to is counted as unrouted.
    await producer.send("PUB topic:nobody 1\r\nx\r\nPING\r\n");
    assert.equal(await producer.line(), "PONG");
    assert.equal(num(await scrape(h), "relayr_messages_unrouted_total"), 1);
  } finally {
    await consumer.close();
    await producer.close();
    await broker.stop();
  }
});

Deno.test("http handler: stats list live connections, subscriptions, lists, and close reasons", async () => {
  const broker = await startTestBroker();
  const h = handlerFor(broker);
  const c = await RawClient.connect(broker.port);
  try {
    await c.send('CONNECT {"client_id":"stats-client","name":"dashboard"}\r\n');
    await c.send("SUB queue:jobs sub_id:j prefetch:7\r\nSUB topic:logs.* sub_id:l\r\n");
    await c.send("PUB queue:jobs 2\r\nhi\r\nPUB topic:logs.app 2\r\nyo\r\nPING\r\n");
    await c.until((f) => f.line === "PONG", 20);
    const s = await stats(h);
    assert.equal(s.server.version, VERSION);
    assert.equal(s.server.runtime, "deno");
    assert.equal(s.server.ready, true);
    assert.equal(s.server.connections, 1);
    assert.equal(s.connections.total, 1);
    const conn = s.connections.list[0];
    assert.equal(conn.client_id, "stats-client");
    assert.equal(conn.name, "dashboard");
    assert.match(conn.remote_addr, /^127\.0\.0\.1:\d+$/);
    assert.equal(conn.in_msgs, 2);
    assert.equal(conn.out_msgs, 2);
    assert.equal(typeof conn.pending_bytes, "number");
    const subs = Object.fromEntries(conn.subscriptions.map((x) => [x.sid, x]));
    assert.equal(subs.j.destination, "queue:jobs");
    assert.equal(subs.j.ack, "explicit");
    assert.equal(subs.j.prefetch, 7);
    assert.equal(subs.j.inflight, 1);
    assert.equal(subs.l.destination, "topic:logs.*");
    assert.equal(subs.l.ack, "none");
    assert.equal(subs.l.lag_msgs, 0);
    assert.deepEqual(s.queues.list.map((q) => q.name), ["queue:jobs"]);
    assert.equal(s.queues.list[0].inflight, 1);
    assert.deepEqual(s.topics.list.map((t) => [t.name, t.subscribers]), [["topic:logs.app", 1]]);
    assert.equal((await stats(h, "?subs=false")).connections.list[0].subscriptions.length, 0);
    assert.equal((await stats(h, "?limit=1&offset=1")).connections.list.length, 0);

    await c.close();
    await waitFor(() => broker.server.connections.size === 0, 2000, "the close");
    const after = await stats(h);
    assert.equal(after.connections.total, 0);
    const closed = after.closed_connections[0];
    assert.equal(closed.client_id, "stats-client");
    assert.equal(closed.reason, "CLIENT_CLOSED");
    assert.equal(closed.out_msgs, 2);
    // Totals never go down when a connection goes.
    assert.equal(after.server.out_msgs, 2);
    assert.equal(after.server.in_msgs, 2);
    const m = await scrape(h);
    assert.equal(num(m, "relayr_connections_closed_total", { reason: "CLIENT_CLOSED" }), 1);
    assert.equal(num(m, "relayr_messages_out_total"), 2);
    // The unacked job went back to its queue.
    assert.equal(num(m, "relayr_queue_depth", { queue: "jobs" }), 1);
    assert.equal(num(m, "relayr_queue_redelivered_total", { queue: "jobs" }), 1);
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("http handler: health and readiness, bad methods, paths and parameters", async () => {
  const broker = await startTestBroker();
  const h = handlerFor(broker);
  try {
    assert.equal((await get(h, "/healthz")).status, 200);
    assert.equal((await get(h, "/healthz", "HEAD")).status, 200);
    assert.equal((await get(h, "/readyz")).status, 200);
    assert.match(await (await get(h, "/")).text(), /\/metrics/);
    assert.equal((await get(h, "/nope")).status, 404);
    const post = await get(h, "/metrics", "POST");
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    for (const q of ["?limit=0", "?limit=abc", "?offset=-1", "?closed=101", "?subs=maybe"]) {
      const res = await get(h, `/api/stats${q}`);
      assert.equal(res.status, 400, q);
      assert.match((await res.json()).error, /must be/);
    }
  } finally {
    await broker.stop();
  }
  // Stopping: not ready any more, but alive.
  assert.equal((await get(h, "/readyz")).status, 503);
  assert.equal((await get(h, "/healthz")).status, 200);
  assert.equal(num(await scrape(h), "relayr_ready"), 0);
});

Deno.test("http: the real port serves the endpoints, and closes with the broker", async () => {
  const { config } = loadConfig({
    args: [
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--http-host",
      "127.0.0.1",
      "--http-port",
      "0",
      "--no-grpc",
    ],
    env: () => undefined,
    readFile: () => {
      throw new Error("no config file in tests");
    },
  });
  const broker = await startBroker(denoRuntime, config);
  const base = `http://127.0.0.1:${broker.http!.port}`;
  const c = await RawClient.connect(broker.server.port);
  try {
    await c.send('CONNECT {"client_id":"over-http"}\r\nPUB queue:h 1\r\nx\r\n');
    assert.match(await c.line(), /^OK/);
    assert.match(await c.line(), /^OK msg_id:/);
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), "ok\n");
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    const m = parseExposition(await metrics.text());
    assert.equal(num(m, "relayr_messages_in_total"), 1);
    assert.equal(num(m, "relayr_queue_depth", { queue: "h" }), 1);
    assert.equal(m.get("relayr_delivery_latency_seconds")!.type, "histogram");
    assert.ok(num(m, "relayr_event_loop_lag_max_seconds") >= 0, "the lag probe runs");
    const s: Stats = await (await fetch(`${base}/api/stats`)).json();
    assert.equal(s.connections.list[0].client_id, "over-http");
  } finally {
    await c.close();
    await broker.stop();
  }
  await assert.rejects(fetch(`${base}/healthz`), "the HTTP port is closed");
});

Deno.test("http handler: declared topics show retention, drops and durables, exactly", async () => {
  const broker = await startTestBroker();
  const h = handlerFor(broker);
  const p = await RawClient.connect(broker.port);
  const plain = await RawClient.connect(broker.port);
  const a = await RawClient.connect(broker.port);
  const b = await RawClient.connect(broker.port);
  const topic = async (name: string) => {
    const s = await stats(h);
    const t = s.topics.list.find((x) => x.name === name);
    assert.ok(t, `${name} is listed`);
    return { s, t };
  };
  try {
    await expectLine(p, "DECLARE topic:ret retain_messages:3 retain_bytes:1000", "OK");
    await expectLine(plain, "SUB topic:plain sub_id:p", "OK");
    // Declared with no subscriber: listed, but not counted as a topic with a subscriber.
    let { s, t } = await topic("topic:ret");
    assert.equal(s.topics.total, 2);
    assert.equal(s.server.topics, 1);
    assert.equal(s.server.declared_topics, 1);
    assert.equal(s.server.durables, 0);
    assert.equal(t.declared, true);
    assert.deepEqual(t.retention, { messages: 3, bytes: 1000, age_ms: 0 });
    assert.equal(t.subscribers, 0);
    assert.deepEqual([t.retained, t.retained_bytes, t.retention_dropped], [0, 0, 0]);
    assert.deepEqual(t.durables, []);
    const other = s.topics.list.find((x) => x.name === "topic:plain")!;
    assert.equal(other.declared, false);
    assert.equal(other.retention, null);
    let m = await scrape(h);
    assert.equal(num(m, "relayr_topics"), 1);
    assert.equal(num(m, "relayr_topics_declared"), 1);
    assert.equal(num(m, "relayr_topic_retention_max_messages", { topic: "ret" }), 3);
    assert.equal(num(m, "relayr_topic_retention_max_bytes", { topic: "ret" }), 1000);
    assert.equal(num(m, "relayr_topic_retention_max_age_seconds", { topic: "ret" }), 0);
    assert.equal(num(m, "relayr_topic_subscribers", { topic: "ret" }), 0);
    // A topic that is not declared has no retention or durable series.
    assert.equal(value(m, "relayr_topic_retention_dropped_total", { topic: "plain" }), undefined);
    assert.equal(value(m, "relayr_topic_durables", { topic: "plain" }), undefined);
    assert.equal(num(m, "relayr_topic_retained_bytes", { topic: "plain" }), 0);

    // A durable attaches, gets 5 messages; retention keeps the last 3 (2-byte payloads).
    await expectLine(a, "SUB topic:ret sub_id:d durable:audit prefetch:10", "OK");
    ({ s, t } = await topic("topic:ret"));
    assert.equal(s.server.topics, 2);
    assert.equal(s.server.durables, 1);
    assert.deepEqual(t.durables, [{
      name: "audit",
      connected: true,
      sid: "d",
      position: 0,
      backlog_msgs: 0,
      skipped: 0,
    }]);
    const ids = await publishAll(p, "topic:ret", ["m0", "m1", "m2", "m3", "m4"]);
    const got = await a.msgs(5);
    ({ t } = await topic("topic:ret"));
    assert.deepEqual([t.retained, t.retained_bytes, t.retention_dropped], [3, 6, 2]);
    assert.equal(t.published, 5);
    // Nothing acked: the position is before m0; m2-m4 are held after it.
    assert.deepEqual(t.durables[0], {
      name: "audit",
      connected: true,
      sid: "d",
      position: ids[0] - 1,
      backlog_msgs: 3,
      skipped: 0,
    });
    const ack = got.slice(0, 4).map((f) => `msg_id:${f.fields!.msg_id}`).join(" ");
    await expectLine(a, `ACK ${ack}`, "OK");
    ({ t } = await topic("topic:ret"));
    // The position stops before m4, the oldest unacked (ids are not consecutive across ms).
    assert.equal(t.durables[0].position, ids[4] - 1);
    assert.equal(t.durables[0].backlog_msgs, 1);
    m = await scrape(h);
    assert.equal(num(m, "relayr_topic_retained", { topic: "ret" }), 3);
    assert.equal(num(m, "relayr_topic_retained_bytes", { topic: "ret" }), 6);
    assert.equal(num(m, "relayr_topic_retention_dropped_total", { topic: "ret" }), 2);
    assert.equal(num(m, "relayr_topic_durables", { topic: "ret" }), 1);
    assert.equal(num(m, "relayr_topic_durables_connected", { topic: "ret" }), 1);
    assert.equal(num(m, "relayr_topic_durables_backlog_messages", { topic: "ret" }), 1);
    assert.equal(num(m, "relayr_durables"), 1);
    assert.equal(num(m, "relayr_topics"), 2);

    // Detached: the position is kept; retention drops m4 (after it) while it is away: skipped.
    await a.close();
    await waitFor(() => broker.broker.topics.get("topic:ret")!.bindings.length === 0);
    await publishAll(p, "topic:ret", ["m5", "m6", "m7"]);
    ({ s, t } = await topic("topic:ret"));
    assert.equal(s.server.topics, 1);
    assert.equal(s.server.durables, 1);
    assert.deepEqual([t.subscribers, t.retained, t.retained_bytes, t.retention_dropped], [
      0,
      3,
      6,
      5,
    ]);
    assert.deepEqual(t.durables, [{
      name: "audit",
      connected: false,
      sid: null,
      position: ids[4] - 1,
      backlog_msgs: 3,
      skipped: 1,
    }]);
    m = await scrape(h);
    assert.equal(num(m, "relayr_topics"), 1);
    assert.equal(num(m, "relayr_topic_retention_dropped_total", { topic: "ret" }), 5);
    assert.equal(num(m, "relayr_topic_durables", { topic: "ret" }), 1);
    assert.equal(num(m, "relayr_topic_durables_connected", { topic: "ret" }), 0);
    assert.equal(num(m, "relayr_topic_durables_backlog_messages", { topic: "ret" }), 3);

    // Reattached on another connection it gets m5-m7; forgotten, it is gone from both.
    await expectLine(b, "SUB topic:ret sub_id:e durable:audit", "OK");
    assert.equal((await b.msgs(3)).length, 3);
    ({ t } = await topic("topic:ret"));
    assert.equal(t.durables[0].connected, true);
    assert.equal(t.durables[0].sid, "e");
    await expectLine(b, "UNSUB e forget:true", "OK");
    ({ s, t } = await topic("topic:ret"));
    assert.deepEqual(t.durables, []);
    assert.equal(s.server.durables, 0);
    m = await scrape(h);
    assert.equal(num(m, "relayr_topic_durables", { topic: "ret" }), 0);
    assert.equal(num(m, "relayr_durables"), 0);
    assert.equal(num(m, "relayr_metrics_destinations_omitted", { kind: "topic" }), 0);
  } finally {
    for (const c of [p, plain, a, b]) await c.close();
    await broker.stop();
  }
});

Deno.test("http handler: bindings and filters in stats and metrics", async () => {
  const broker = await startTestBroker();
  const h = handlerFor(broker);
  const c = await RawClient.connect(broker.port);
  try {
    await expectLine(c, "BIND topic:h.> queue:h.all", "OK");
    await expectLine(c, `BIND topic:h.* queue:h.hi filter:"priority > 4"`, "OK");
    await expectLine(c, `SUB topic:h.a sub_id:f filter:"priority = 9"`, "OK");
    await publishAll(c, "topic:h.a", ["a", "b"]);
    await c.pub("topic:h.a", "hi", "priority:9");
    // The subscription is on the publishing connection: its MSG is written before the OK.
    assert.equal((await c.msgs(1))[0].fields!.sub_id, "f");
    assert.match(await c.line(), /^OK msg_id:/);
    const s = await stats(h);
    assert.equal(s.server.bindings, 2);
    assert.equal(s.server.routed_msgs, 4);
    assert.deepEqual(s.bindings.list, [
      { pattern: "topic:h.*", queue: "queue:h.hi", filter: "priority > 4", routed: 1, rejected: 0 },
      { pattern: "topic:h.>", queue: "queue:h.all", routed: 3, rejected: 0 },
    ]);
    const sub = s.connections.list.flatMap((x) => x.subscriptions ?? []).find((x) => x.sid === "f");
    assert.equal(sub?.filter, "priority = 9");
    const m = await scrape(h);
    assert.equal(num(m, "relayr_bindings"), 2);
    assert.equal(num(m, "relayr_routed_total"), 4);
    assert.equal(num(m, "relayr_queue_published_total", { queue: "h.all" }), 3);
    assert.equal(num(m, "relayr_binding_routed_total", { pattern: "h.>", queue: "h.all" }), 3);
    assert.equal(num(m, "relayr_binding_rejected_total", { pattern: "h.*", queue: "h.hi" }), 0);
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("http handler: declared queues, scheduled messages and duplicates in stats and metrics", async () => {
  const broker = await startTestBroker();
  const h = handlerFor(broker);
  const p = await RawClient.connect(broker.port);
  try {
    await expectLine(
      p,
      "DECLARE queue:jobs max_messages:50 ttl:60000 dlq:none dedup_window:5000",
      "OK",
    );
    await p.pub("queue:jobs", "later", "delay:600000 dedup_id:a");
    const first = await p.line();
    await p.pub("queue:jobs", "later", "delay:600000 dedup_id:a");
    assert.equal(await p.line(), `${first} duplicate:true`);
    await p.pub("topic:news", "later", "delay:600000");
    assert.match(await p.line(), /^OK msg_id:\d+$/);
    await p.pub("queue:plain", "now");
    assert.match(await p.line(), /^OK msg_id:\d+$/);
    const s = await stats(h);
    assert.deepEqual([s.server.declared_queues, s.server.scheduled_msgs], [1, 2]);
    assert.equal(s.server.duplicate_msgs, 1);
    const q = s.queues.list.find((x) => x.name === "queue:jobs")!;
    assert.deepEqual([q.declared, q.scheduled, q.delayed, q.depth, q.duplicates, q.dedup_ids], [
      true,
      1,
      1,
      0,
      1,
      1,
    ]);
    assert.deepEqual(q.settings, {
      max_messages: 50,
      max_bytes: broker.broker.options.queueBytesMax,
      overflow: "reject",
      ttl_ms: 60000,
      max_deliveries: broker.broker.options.maxDeliveries,
      dlq: null,
      ack_timeout_ms: broker.broker.options.ackTimeoutMs,
      dedup_window_ms: 5000,
    });
    const m = await scrape(h);
    assert.equal(num(m, "relayr_queues_declared"), 1);
    assert.equal(num(m, "relayr_scheduled_messages"), 2);
    assert.equal(num(m, "relayr_duplicates_total"), 1);
    assert.equal(num(m, "relayr_queue_scheduled", { queue: "jobs" }), 1);
    assert.equal(num(m, "relayr_queue_duplicates_total", { queue: "jobs" }), 1);
    assert.equal(num(m, "relayr_queue_dedup_ids", { queue: "jobs" }), 1);
    assert.equal(num(m, "relayr_queue_max_messages", { queue: "jobs" }), 50);
    assert.equal(num(m, "relayr_queue_ttl_seconds", { queue: "jobs" }), 60);
    assert.equal(num(m, "relayr_queue_dedup_window_seconds", { queue: "jobs" }), 5);
    // Settings series only for declared queues.
    assert.equal(value(m, "relayr_queue_max_messages", { queue: "plain" }), undefined);
    assert.equal(num(m, "relayr_queue_scheduled", { queue: "plain" }), 0);
  } finally {
    await p.close();
    await broker.stop();
  }
});
