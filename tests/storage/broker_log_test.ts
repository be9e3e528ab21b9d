/**
 * The broker on the log store, over real TCP: a full disk gets the publisher
 * `ERR STORE_FAILED` while consumers keep reading; a restarted in-process
 * broker (`--data-dir`) redelivers unacked messages with their count and
 * forgets acked ones; a seeded random workload reopens to exactly the state
 * it left (a model check of the store against its own memory).
 */
import assert from "node:assert/strict";
import { Broker } from "../../src/broker/mod.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { Server } from "../../src/server/mod.ts";
import { LogStore, type Message } from "../../src/storage/mod.ts";
import { FakeClock } from "../fake_clock.ts";
import { RawClient, rng, startTestBroker, testConfig } from "../helpers.ts";
import { msg } from "./conformance.ts";
import { TestFs } from "./test_fs.ts";

const text = (p: Uint8Array | undefined) => new TextDecoder().decode(p);

/** A broker and a started TCP server on `store`. */
function serve(store: LogStore): Server {
  const c = testConfig();
  const broker = new Broker({
    store,
    maxDeliveries: c["max-deliveries"],
    queueMessagesMax: c["queue-max-messages"],
    queueBytesMax: c["queue-max-bytes"],
    queueOverflow: "reject",
    slowConsumer: "disconnect",
    subPendingMessagesMax: c["sub-pending-messages"],
    subPendingBytesMax: c["sub-pending-bytes"],
    ackTimeoutMs: c["ack-timeout"],
    prefetch: c.prefetch,
  });
  const server = new Server(denoRuntime, broker, {
    hostname: "127.0.0.1",
    port: 0,
    payloadBytesMax: c["max-payload"],
    pingIntervalMs: c["ping-interval"],
    version: "test",
  });
  void server.start(); // a plain listener binds before start() first awaits
  return server;
}

Deno.test("broker on a failing disk: PUB gets ERR STORE_FAILED, consumers keep reading", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-broker-log-" });
  const fs = new TestFs();
  // The store's retry timer runs on a fake clock: the test says when it fires.
  const clock = new FakeClock();
  const store = LogStore.open({ dir, fs, fsync: "always", retryMs: 10, clock });
  const server = serve(store);
  const pub = await RawClient.connect(server.port);
  const sub = await RawClient.connect(server.port);
  try {
    for (const body of ["a", "b"]) {
      await pub.pub("queue:disk", body);
      assert.match(await pub.line(), /^OK msg_id:\d+$/);
    }
    fs.failWrites = true;
    await pub.pub("queue:disk", "c");
    assert.match(await pub.line(), /^ERR STORE_FAILED message not stored: write failed: ENOSPC/);
    await pub.pub("queue:disk", "d");
    assert.match(await pub.line(), /^ERR STORE_FAILED .*failing/, "refused while the log fails");
    await pub.send("PING\r\n");
    assert.equal(await pub.line(), "PONG", "the connection goes on");
    // Reads are served: what was accepted is delivered and can be acked.
    await sub.send("SUB queue:disk sub_id:s\r\n");
    assert.equal(await sub.line(), "OK");
    const got = await sub.msgs(3);
    assert.deepEqual(got.map((f) => text(f.payload)), ["a", "b", "c"]);
    // The ACK holds in memory and its records are retried, but under `always`
    // an OK would claim they are on the device.
    await sub.send(`ACK ${got.map((f) => `msg_id:${f.fields!.msg_id}`).join(" ")}\r\n`);
    assert.match(
      await sub.line(),
      /^ERR STORE_FAILED not stored: the log of queue:disk is failing/,
    );
    fs.failWrites = false;
    clock.advance(10); // the retry: the kept records are written
    await pub.pub("queue:disk", "e");
    assert.match(await pub.line(), /^OK msg_id:/, "publishing works again once the disk does");
  } finally {
    await pub.close();
    await sub.close();
    await server.shutdown();
    await store.close();
  }
  // Everything acked stayed acked; only "e" is left.
  const again = LogStore.open({ dir, fs: new TestFs(), fsync: "always" });
  const q = again.openQueue("queue:disk");
  const left = [];
  for (let m = q.take(Date.now()); m !== undefined; m = q.take(Date.now())) {
    left.push(text(m.payload));
  }
  assert.deepEqual(left, ["e"]);
  await again.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("power cut, fsync always: no message whose ACK got OK comes back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-broker-log-" });
  const fs = new TestFs();
  const store = LogStore.open({ dir, fs, fsync: "always", clock: new FakeClock() });
  const server = serve(store);
  const c = await RawClient.connect(server.port);
  const okd = new Set<string>();
  let ids: string[] = [];
  let early: string | undefined;
  try {
    for (let i = 0; i < 20; i++) {
      await c.pub("queue:cut", `m${i}`);
      assert.match(await c.line(), /^OK msg_id:/);
    }
    await c.send("SUB queue:cut sub_id:s prefetch:100\r\n");
    assert.equal(await c.line(), "OK");
    ids = (await c.msgs(20)).map((f) => f.fields!.msg_id);
    const ack = (some: string[]) => c.send(`ACK ${some.map((id) => `msg_id:${id}`).join(" ")}\r\n`);
    // Fsyncs running: the OK comes once the REMOVE records are on the device.
    await ack(ids.slice(0, 5));
    assert.equal(await c.line(), "OK");
    for (const id of ids.slice(0, 5)) okd.add(id);
    // Fsyncs stuck (a slow disk): the REMOVEs reach the page cache, the OK must wait.
    fs.hold();
    await ack(ids.slice(5, 10));
    try {
      early = await c.line(300);
      if (early === "OK") { for (const id of ids.slice(5, 10)) okd.add(id); }
    } catch { /* no reply: what the fix does */ }
    await fs.powerCut(); // the held fsync never completes
  } finally {
    await c.close();
    await server.shutdown();
    await store.close();
  }
  const again = LogStore.open({ dir, fs: new TestFs(), fsync: "always" });
  const q = again.openQueue("queue:cut");
  const back = new Set<string>();
  for (let m = q.take(Date.now()); m !== undefined; m = q.take(Date.now())) back.add(String(m.id));
  await again.close();
  await Deno.remove(dir, { recursive: true });
  for (const id of okd) assert.ok(!back.has(id), `message ${id} came back after its ACK got OK`);
  assert.equal(early, undefined, "no OK before the fdatasync of the ACK's records");
  // The cut did lose something: the unconfirmed ACKs' messages are back (at least once).
  assert.deepEqual([...back].sort(), ids.slice(5).sort());
});

Deno.test("fsync always: a NACK's OK waits for its record's fdatasync; an ACK that settles nothing does not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-broker-log-" });
  const fs = new TestFs();
  const store = LogStore.open({ dir, fs, fsync: "always", clock: new FakeClock() });
  const server = serve(store);
  const c = await RawClient.connect(server.port);
  try {
    await c.pub("queue:nack", "n");
    assert.match(await c.line(), /^OK msg_id:/);
    await c.send("SUB queue:nack sub_id:s\r\n");
    assert.equal(await c.line(), "OK");
    const [m] = await c.msgs(1);
    fs.hold();
    await c.send(`NACK msg_id:${m.fields!.msg_id} delay:60000\r\n`);
    await c.send("PING\r\n");
    await c.quiet(200); // the OK waits for the fsync, and the PONG for the OK
    fs.release();
    assert.equal(await c.line(), "OK");
    assert.equal(await c.line(), "PONG");
    // An ACK that settles nothing writes nothing: answered at once, even with fsyncs held.
    fs.hold();
    await c.send("ACK msg_id:1\r\n");
    assert.match(await c.line(), /^ERR UNKNOWN_MSG_ID msg_id:1 /);
    fs.release();
  } finally {
    await c.close();
    await server.shutdown();
    await store.close();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("in-process broker with --data-dir: after a restart, unacked messages come back as redeliveries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-broker-log-" });
  const args = ["--data-dir", dir, "--fsync", "always"];
  let broker = await startTestBroker(args);
  assert.equal(broker.store.kind, "log");
  let c = await RawClient.connect(broker.port);
  try {
    for (const body of ["one", "two", "three"]) await c.pub("queue:jobs", body, "priority:3");
    for (let i = 0; i < 3; i++) assert.match(await c.line(), /^OK msg_id:/);
    await c.send("SUB queue:jobs sub_id:w prefetch:10\r\n");
    assert.equal(await c.line(), "OK");
    const first = await c.msgs(3);
    await c.send(`ACK msg_id:${first[0].fields!.msg_id}\r\n`);
    assert.equal(await c.line(), "OK");
    await c.close();
    await broker.stop();
    broker = await startTestBroker(args);
    c = await RawClient.connect(broker.port);
    await c.send("SUB queue:jobs sub_id:w\r\n");
    assert.equal(await c.line(), "OK");
    const back = await c.msgs(2);
    assert.deepEqual(back.map((f) => text(f.payload)), ["two", "three"]);
    assert.deepEqual(back.map((f) => f.fields!.delivery), ["2", "2"]);
    assert.deepEqual(back.map((f) => f.fields!.priority), ["3", "3"]);
    await c.quiet(100);
    // New ids continue after the recovered ones.
    await c.pub("queue:other", "x");
    const id = Number(/msg_id:(\d+)/.exec(await c.line())![1]);
    assert.ok(id > Number(back[1].fields!.msg_id));
  } finally {
    await c.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log store model check: a seeded random workload reopens to the state it left", async () => {
  for (const [seed, fsync] of [[1, "always"], [2, "interval"], [3, "never"]] as const) {
    const dir = await Deno.makeTempDir({ prefix: "relayr-model-" });
    const rand = rng(seed);
    const open = () =>
      LogStore.open({ dir, fs: new TestFs(), fsync, fsyncIntervalMs: 3, segmentBytes: 2048 });
    let store = open();
    let q = store.openQueue("queue:model");
    const live = new Map<number, Message>();
    const inflight: Message[] = [];
    const T0 = 1_800_000_000_000;
    for (let step = 0; step < 2000; step++) {
      const x = rand();
      if (x < 0.4) {
        const m = msg(q.name, { priority: Math.floor(rand() * 3), body: "z".repeat(rand() * 200) });
        void q.push(m);
        live.set(m.id, m);
      } else if (x < 0.6) {
        const m = q.take(T0);
        if (m) inflight.push(m);
      } else if (x < 0.75 && inflight.length) {
        const m = inflight.splice(Math.floor(rand() * inflight.length), 1)[0];
        q.remove(m, "acked");
        live.delete(m.id);
      } else if (x < 0.8 && inflight.length) {
        const m = inflight.splice(Math.floor(rand() * inflight.length), 1)[0];
        q.requeue(m, rand() < 0.3 ? 3_600_000 : 0, Date.now());
      } else if (x < 0.82) {
        const m = q.dropOldest();
        if (m) live.delete(m.id);
      } else if (x < 0.9) {
        await new Promise((r) => setTimeout(r, rand() < 0.5 ? 0 : 4));
      }
    }
    const want = [...live.values()].map((m) => `${m.id}:${m.deliveries}`).sort();
    await store.close();
    store = open();
    q = store.openQueue("queue:model");
    q.sweep(Date.now() + 7_200_000);
    const got: string[] = [];
    for (let m = q.take(Date.now()); m !== undefined; m = q.take(Date.now())) {
      got.push(`${m.id}:${m.deliveries - 1}`);
    }
    assert.deepEqual(got.sort(), want, `seed ${seed}, fsync ${fsync}`);
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
