/**
 * The client SDK under Bun: run by tests/client_bun_test.ts as
 * `bun tests/client_bun_check.ts <host:port>` against a broker. Prints one
 * JSON line per check (`{name, ok, detail}`), then `{"done":true}`.
 */
import process from "node:process";
import { connect, type Message, QueueFullError, TimeoutError } from "../src/client/mod.ts";
import { keptMessages } from "./client_kept_reads.ts";

const address = process.argv[2];
const checks: { name: string; ok: boolean; detail: string }[] = [];

async function check(name: string, fn: () => Promise<string>): Promise<void> {
  try {
    checks.push({ name, ok: true, detail: await fn() });
  } catch (err) {
    checks.push({ name, ok: false, detail: String((err as Error)?.stack ?? err) });
  }
}

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

async function first(sub: AsyncIterable<Message>): Promise<Message> {
  for await (const m of sub) return m;
  throw new Error("subscription ended");
}

const client = await connect(address, { reconnect: false });
const other = await connect(address, { reconnect: false });

await check("runtime is bun", () => {
  expect(typeof (globalThis as { Bun?: unknown }).Bun !== "undefined", "not running on Bun");
  return Promise.resolve(String(client.info?.runtime));
});

await check("publish/subscribe with headers and options", async () => {
  const sub = await client.subscribe("topic:bun.*");
  const id = await other.publish("topic:bun.a", "hello", {
    headers: { "Trace-Id": "abc" },
    priority: 3,
    correlationId: "c1",
  });
  const m = await first(sub);
  expect(m.id === id && m.text() === "hello", `got ${m.id} ${m.text()}`);
  expect(
    m.headers["Trace-Id"] === "abc" && m.priority === 3 && m.correlationId === "c1",
    "options",
  );
  return id;
});

await check("queue ack and nack", async () => {
  await other.publish("queue:bun.q", "job");
  const sub = await client.subscribe("queue:bun.q");
  const it = sub[Symbol.asyncIterator]();
  const a = (await it.next()).value as Message;
  await a.nack({ confirm: true });
  const b = (await it.next()).value as Message;
  expect(b.deliveryCount === 2, `delivery ${b.deliveryCount}`);
  await b.ack({ confirm: true });
  await sub.unsubscribe();
  return "ok";
});

await check("request/reply and timeout", async () => {
  await other.subscribe("queue:bun.rpc", {
    callback: async (m) => {
      await m.respond(`echo:${m.text()}`);
      await m.ack();
    },
  });
  const r = await client.request("queue:bun.rpc", "x");
  expect(r.text() === "echo:x", r.text());
  const late = await client.request("topic:bun.none", "x", { timeoutMs: 50 }).catch((e) => e);
  expect(late instanceof TimeoutError, String(late));
  return "ok";
});

await check("1000 pipelined publishes, flush, error classes", async () => {
  const sub = await client.subscribe("topic:bun.many");
  for (let i = 0; i < 1000; i++) other.publishNoWait("topic:bun.many", `${i}`);
  await other.flush();
  let n = 0;
  for await (const m of sub) {
    expect(m.text() === `${n}`, `order: ${m.text()} at ${n}`);
    if (++n === 1000) break;
  }
  expect(QueueFullError.name === "QueueFullError", "error registry");
  return `${n}`;
});

await check("codecs: json and msgpack round trips, content types", async () => {
  const sub = await client.subscribe("topic:bun.codec");
  const value = { n: 1.5, s: "é", list: [1, null, true], nested: { bin: new Uint8Array([1, 2]) } };
  await other.publish("topic:bun.codec", value, { codec: "msgpack" });
  await other.publish("topic:bun.codec", { a: [1, 2] }, { codec: "json" });
  const it = sub[Symbol.asyncIterator]();
  const m = (await it.next()).value as Message;
  const j = (await it.next()).value as Message;
  const got = m.decode<typeof value>();
  expect(m.contentType === "application/msgpack", `content type ${m.contentType}`);
  expect(
    got.n === 1.5 && got.s === "é" && got.list[2] === true && got.nested.bin[1] === 2,
    `msgpack ${JSON.stringify(got)}`,
  );
  expect(JSON.stringify(j.decode()) === '{"a":[1,2]}', "json");
  return `${m.size} B`;
});

await check("declareQueue, delayMs and dedupId", async () => {
  await other.declareQueue("queue:bun.sched", { maxMessages: 10, dedupWindowMs: 60_000 });
  const sent = Date.now();
  const a = await other.publish("queue:bun.sched", "later", { delayMs: 150, dedupId: "d" });
  const b = await other.publish("queue:bun.sched", "later", { delayMs: 150, dedupId: "d" });
  expect(a === b, `duplicate answered ${b}, first ${a}`);
  const sub = await client.subscribe("queue:bun.sched", { ack: "none" });
  const m = await first(sub);
  expect(m.text() === "later" && Date.now() - sent >= 150, "never early");
  return `${Date.now() - sent} ms`;
});

await check("kept messages keep their bytes while 8 MiB more are read", async () => {
  const got = await keptMessages(address, 8);
  expect(got.problems.length === 0, got.problems.join("; "));
  expect(got.messages > 500, `${got.messages} messages`);
  return `${got.messages} messages`;
});

await check("drain and close", async () => {
  await other.drain();
  await client.close();
  expect(other.closed && client.closed, "closed");
  return "ok";
});

for (const c of checks) console.log(JSON.stringify(c));
console.log(JSON.stringify({ done: true }));
process.exit(0);
