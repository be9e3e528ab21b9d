/**
 * The console's back end over real sockets: the admin API on the HTTP port
 * (purge, peek, DLQ replay, queue delete, connection close, durable delete,
 * refusals), the paged lists, the live stats stream and its client limit, and
 * the admin CLI commands (`runCli` in-process, over the same port).
 */
import assert from "node:assert/strict";
import { type CliIo, runCli } from "../src/cli/mod.ts";
import { STREAM_CLIENTS_MAX } from "../src/config/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import type { StatsDelta } from "../src/http/mod.ts";
import { hashPassword } from "../src/auth/mod.ts";
import { CHEAP, SECRETS, writeUsers } from "./auth/fixtures.ts";
import { brokerWithHttp, connected } from "./console_helpers.ts";
import { RawClient } from "./helpers.ts";

async function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method, headers });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

Deno.test("console API: peek, purge with a delivery in flight, delete; refusals", async () => {
  const b = await brokerWithHttp();
  const c = await connected(b.server.port, "worker");
  try {
    await c.send("PUB queue:work hdr:12 17\r\nTrace: 1\r\n\r\nhello\r\n");
    assert.match(await c.line(), /^OK msg_id:/);
    for (let i = 0; i < 4; i++) {
      await c.pub("queue:work", `m${i}`);
      assert.match(await c.line(), /^OK msg_id:/);
    }
    let r = await call(b.base, "GET", "/api/queues/queue:work/peek?n=2");
    assert.equal(r.status, 200);
    const peek = r.body.messages as { headers: string[][]; body_preview: string }[];
    assert.deepEqual(peek.map((m) => m.body_preview), ["hello", "m0"]);
    assert.deepEqual(peek[0].headers, [["Trace", "1"]]);
    await c.send("SUB queue:work sub_id:s ack:explicit prefetch:1\r\n");
    assert.match(await c.line(), /^OK/);
    const [first] = await c.msgs(1);
    assert.equal(
      new TextDecoder().decode(first.payload).endsWith("hello"),
      true,
      "peek took nothing",
    );
    r = await call(b.base, "POST", "/api/queues/work/purge");
    assert.deepEqual([r.status, r.body.purged], [200, 4]);
    r = await call(b.base, "GET", "/api/queues?q=work");
    const row = (r.body.list as Record<string, number>[])[0];
    assert.deepEqual([row.depth, row.inflight, row.purged], [0, 1, 4]);
    const metrics = await (await fetch(`${b.base}/metrics`)).text();
    assert.match(metrics, /^relayr_queue_purged_total\{queue="work"\} 4$/m);
    await c.send(`ACK msg_id:${first.fields!.msg_id}\r\n`);
    assert.equal(await c.line(), "OK", "the in-flight message is still acked normally");
    r = await call(b.base, "DELETE", "/api/queues/queue:work");
    assert.equal(r.status, 409, "it has a consumer");
    assert.match(String(r.body.error), /1 consumers/);
    await c.send("UNSUB s\r\n");
    assert.match(await c.line(), /^OK/);
    r = await call(b.base, "DELETE", "/api/queues/queue:work");
    assert.deepEqual([r.status, r.body.deleted], [200, true]);
    // Refusals: a clear status and one-line error each, and the broker goes on.
    const cases: [string, string, number, Record<string, string>?][] = [
      ["POST", "/api/queues/queue:nope/purge", 404],
      ["GET", "/api/queues/queue:work/purge", 405],
      ["GET", "/api/queues/queue:x/peek?n=0", 400],
      ["GET", "/api/queues/queue:x/peek?n=abc", 400],
      ["POST", "/api/connections/abc/close", 400],
      ["POST", "/api/connections/999999/close", 404],
      ["DELETE", "/api/topics/topic:none/durables/d", 404],
      ["GET", "/api/queues?sort=nope", 200], // no queues left: nothing to sort
      ["GET", "/api/queues?order=sideways", 400],
      ["POST", "/api/queues/%zz/purge", 400],
      ["POST", "/api/queues/queue:x/purge", 403, { origin: "http://evil.example" }],
      ["POST", "/api/queues/queue:x/purge", 403, { "sec-fetch-site": "cross-site" }],
    ];
    for (const [method, path, status, headers] of cases) {
      const res = await call(b.base, method, path, headers);
      assert.equal(res.status, status, `${method} ${path}`);
      if (status !== 200 && status !== 405) assert.equal(typeof res.body.error, "string", path);
    }
    await c.pub("queue:still", "alive");
    assert.match(await c.line(), /^OK msg_id:/);
  } finally {
    await c.close();
    await b.stop();
  }
});

Deno.test("console API: DLQ replay, connection close (ADMIN_CLOSED), durable delete", async () => {
  const b = await brokerWithHttp(["--max-deliveries", "1"]);
  const w = await connected(b.server.port, "worker");
  const victim = await connected(b.server.port, "victim");
  try {
    await w.send("SUB queue:jobs sub_id:s ack:explicit\r\n");
    assert.match(await w.line(), /^OK/);
    await victim.pub("queue:jobs", "poison");
    assert.match(await victim.line(), /^OK msg_id:/);
    const [m] = await w.msgs(1);
    await w.send(`NACK msg_id:${m.fields!.msg_id}\r\n`);
    assert.equal(await w.line(), "OK");
    await waitFor(async () => {
      const r = await call(b.base, "GET", "/api/queues?q=jobs");
      return (r.body.list as { name: string; dlq_depth: number }[])[0]?.dlq_depth === 1;
    }, "the message is dead-lettered");
    let r = await call(b.base, "POST", "/api/queues/queue:jobs/replay-dlq");
    assert.deepEqual([r.status, r.body.moved, r.body.left], [200, 1, 0]);
    const [again] = await w.msgs(1);
    assert.equal(new TextDecoder().decode(again.payload), "poison");
    assert.notEqual(again.fields!.msg_id, m.fields!.msg_id, "a new message");
    r = await call(b.base, "POST", "/api/queues/queue:other/replay-dlq");
    assert.equal(r.status, 404);

    // Close a connection by the id the list shows.
    r = await call(b.base, "GET", "/api/connections?q=victim");
    const id = (r.body.list as { id: number }[])[0].id;
    r = await call(b.base, "POST", `/api/connections/${id}/close`);
    assert.deepEqual([r.status, r.body.reason], [200, "ADMIN_CLOSED"]);
    assert.match(await victim.line(), /^ERR ADMIN_CLOSED /);
    assert.ok(await victim.closedByServer());
    r = await call(b.base, "GET", "/api/stats?limit=1");
    const closed = r.body.closed_connections as { client_id: string; reason: string }[];
    assert.deepEqual([closed[0].client_id, closed[0].reason], ["victim", "ADMIN_CLOSED"]);
    assert.equal((await call(b.base, "POST", `/api/connections/${id}/close`)).status, 404);

    // A durable: in use (409), then idle and deleted.
    await w.send("DECLARE topic:orders retain_messages:100\r\n");
    assert.match(await w.line(), /^OK/);
    await w.send("SUB topic:orders sub_id:d durable:billing\r\n");
    assert.match(await w.line(), /^OK/);
    const path = "/api/topics/topic:orders/durables/billing";
    assert.equal((await call(b.base, "DELETE", path)).status, 409);
    await w.send("UNSUB d\r\n");
    assert.match(await w.line(), /^OK/);
    r = await call(b.base, "DELETE", path);
    assert.deepEqual([r.status, r.body.deleted], [200, true]);
    r = await call(b.base, "GET", "/api/topics?q=orders");
    assert.deepEqual((r.body.list as { durables: unknown[] }[])[0].durables, []);
  } finally {
    await victim.close();
    await w.close();
    await b.stop();
  }
});

Deno.test("console lists: sorted, filtered and paged on the server", async () => {
  const b = await brokerWithHttp();
  const c = await connected(b.server.port, "filler");
  try {
    let frames = "";
    for (let i = 0; i < 300; i++) {
      for (let k = 0; k < i % 7; k++) {
        frames += `PUB queue:q${String(i).padStart(3, "0")} 1\r\nx\r\n`;
      }
    }
    await c.send(frames);
    await waitFor(async () => {
      const r = await call(b.base, "GET", "/api/queues?limit=1");
      return r.body.total === 300 - 43; // i % 7 === 0 publishes nothing
    }, "every queue exists");
    let r = await call(b.base, "GET", "/api/queues?sort=depth&order=desc&limit=5");
    const list = r.body.list as { name: string; depth: number }[];
    assert.deepEqual(list.map((q) => q.depth), [6, 6, 6, 6, 6]);
    assert.equal(list[0].name, "queue:q006");
    r = await call(b.base, "GET", "/api/queues?q=Q29&offset=2&limit=3");
    assert.equal(r.body.matched, 9); // q290..q299 but q294 (294 % 7 === 0)
    assert.deepEqual((r.body.list as { name: string }[]).map((q) => q.name), [
      "queue:q292",
      "queue:q293",
      "queue:q295",
    ]);
    r = await call(b.base, "GET", "/api/queues?limit=1001");
    assert.equal(r.status, 400);
    r = await call(b.base, "GET", "/api/queues?sort=nope");
    assert.equal(r.status, 400);
    r = await call(b.base, "GET", "/api/connections?q=filler");
    assert.equal(r.body.matched, 1);
    const conn = (r.body.list as { tls: boolean; user: string | null }[])[0];
    assert.deepEqual([conn.tls, conn.user], [false, null], "plain TCP, auth off");
  } finally {
    await c.close();
    await b.stop();
  }
});

Deno.test("console stream: one delta a second that moves with traffic; a bounded client count", async () => {
  const b = await brokerWithHttp();
  const c = await connected(b.server.port, "load");
  const streams: Response[] = [];
  const res = await fetch(`${b.base}/api/stream`);
  const events = sse(res.body!);
  try {
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const seen: StatsDelta[] = [];
    // Publish until a delta reports the traffic (bounded: 15 deltas).
    for (let i = 0; i < 15; i++) {
      await c.pub("queue:load", "x".repeat(100));
      assert.match(await c.line(), /^OK msg_id:/);
      const d = await events.next();
      assert.equal(d.done, false);
      seen.push(d.value as StatsDelta);
      if ((d.value as StatsDelta).in_msgs_s > 0) break;
    }
    const last = seen[seen.length - 1];
    assert.ok(last.in_msgs_s > 0, "a delta shows the messages in");
    // Rates are per second over the interval, which a loaded machine stretches: 100 bytes a message.
    assert.ok(Math.abs(last.in_bytes_s - 100 * last.in_msgs_s) <= 100, JSON.stringify(last));
    assert.equal(last.connections, 1);
    assert.ok(last.rss > 0);
    assert.equal(last.fsync_ms, null, "the memory store syncs nothing");
    assert.ok(
      !("queues_list" in last) && JSON.stringify(last).length < 1000,
      "a delta, not the stats",
    );
    for (let i = 1; i < STREAM_CLIENTS_MAX; i++) streams.push(await fetch(`${b.base}/api/stream`));
    assert.ok(streams.every((s) => s.status === 200));
    const over = await fetch(`${b.base}/api/stream`);
    assert.equal(over.status, 503);
    assert.match((await over.json()).error, /clients already/);
  } finally {
    await c.close();
    // Stopping ends every open stream: their bodies finish.
    await b.stop();
    assert.equal((await events.next()).done, true);
    for (const s of streams) await s.body?.cancel();
  }
});

/** Polls `check` until true, at most 100 times 20 ms apart (a bounded wait for an event). */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** The `data:` events of an event stream, parsed. */
async function* sse(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = event.split("\n").find((l) => l.startsWith("data: "));
      if (data !== undefined) yield JSON.parse(data.slice(6));
    }
  }
}

/** Captures what a CLI command prints. */
function captured(): CliIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return {
    lines,
    errors,
    out: (l) => lines.push(l),
    err: (l) => errors.push(l),
    progress: () => {},
    isTty: false,
    stdin: () => (async function* () {})(),
  };
}

Deno.test("admin CLI: queue peek/purge/delete, dlq replay, conn close, durable delete", async () => {
  const b = await brokerWithHttp(["--max-deliveries", "1"]);
  const http = ["--http", b.base.slice("http://".length)];
  const c = await connected(b.server.port, "cli-target");
  const cli = async (...args: string[]) => {
    const io = captured();
    const code = await runCli([...args, ...http], denoRuntime, io);
    return { code, out: io.lines.join("\n"), err: io.errors.join("\n") };
  };
  try {
    for (const body of ["one", "two", "three"]) {
      await c.pub("queue:cli", body);
      assert.match(await c.line(), /^OK msg_id:/);
    }
    let r = await cli("queue", "peek", "queue:cli", "-n", "2");
    assert.equal(r.code, 0);
    assert.match(r.out, /^#1 msg_id:\d+ priority:0 deliveries:0 size:3 /);
    assert.match(r.out, /"one"[\s\S]*"two"/);
    assert.doesNotMatch(r.out, /three/);
    r = await cli("queue", "purge", "cli");
    assert.deepEqual([r.code, r.out], [0, "purged 3 messages from cli"]);
    r = await cli("queue", "delete", "queue:cli", "--json");
    assert.equal(r.code, 0);
    assert.equal(JSON.parse(r.out).deleted, true);
    r = await cli("queue", "purge", "queue:cli");
    assert.equal(r.code, 1);
    assert.equal(r.err, "relayr queue purge: no queue queue:cli");

    await c.send("SUB queue:d sub_id:s ack:explicit\r\n");
    assert.match(await c.line(), /^OK/);
    await c.pub("queue:d", "dead");
    // Its own delivery and the publish's OK: either may come first.
    const frames = [await c.frame(), await c.frame()];
    assert.ok(frames.some((f) => /^OK msg_id:/.test(f.line)));
    const m = frames.find((f) => f.line.startsWith("MSG "))!;
    await c.send(`NACK msg_id:${m.fields!.msg_id}\r\n`);
    assert.equal(await c.line(), "OK");
    r = await cli("dlq", "replay", "queue:d");
    assert.deepEqual([r.code, r.out], [0, "moved 1 messages back to queue:d"]);
    assert.equal(new TextDecoder().decode((await c.msgs(1))[0].payload), "dead");

    await c.send(
      "DECLARE topic:t retain_messages:10\r\nSUB topic:t sub_id:x durable:keep\r\nUNSUB x\r\n",
    );
    for (let i = 0; i < 3; i++) assert.match(await c.line(), /^OK/);
    r = await cli("durable", "delete", "topic:t", "keep");
    assert.deepEqual([r.code, r.out], [0, "deleted durable keep of topic:t"]);

    const list = await call(b.base, "GET", "/api/connections?q=cli-target");
    const id = (list.body.list as { id: number }[])[0].id;
    r = await cli("conn", "close", String(id));
    assert.deepEqual([r.code, r.out], [0, `closed connection ${id}`]);
    assert.match(await c.line(), /^ERR ADMIN_CLOSED/);

    assert.equal((await cli("conn", "close", "abc")).code, 2);
    assert.equal((await cli("queue", "bogus")).code, 2);
    assert.equal((await cli("queue", "purge")).code, 2, "missing queue");
    const io = captured();
    assert.equal(
      await runCli(["queue", "purge", "x", "--http", "127.0.0.1:1"], denoRuntime, io),
      3,
    );
    assert.match(io.errors[0], /^relayr queue purge: cannot reach monitoring at /);
  } finally {
    await c.close();
    await b.stop();
  }
});

Deno.test("console stream: the log store's fsync time is in the delta", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-stream-" });
  const b = await brokerWithHttp(["--data-dir", dir, "--fsync", "always"]);
  const c = await connected(b.server.port, "durable-load");
  const res = await fetch(`${b.base}/api/stream`);
  const events = sse(res.body!);
  try {
    let fsync: StatsDelta["fsync_ms"] = null;
    for (let i = 0; i < 15 && fsync === null; i++) {
      await c.pub("queue:disk", "x");
      assert.match(await c.line(), /^OK msg_id:/);
      fsync = ((await events.next()).value as StatsDelta).fsync_ms;
    }
    assert.ok(fsync !== null && fsync.count >= 1 && fsync.mean >= 0 && fsync.last >= 0);
  } finally {
    await c.close();
    await b.stop();
    await events.return(undefined);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("console API with auth: the page and its question open, reads need monitor, actions admin", async () => {
  const users = await writeUsers([
    { user: "mon", password: await hashPassword(SECRETS.monitorPass, CHEAP), roles: ["monitor"] },
    { user: "ops", password: await hashPassword(SECRETS.alicePass, CHEAP), roles: ["admin"] },
    {
      user: "team",
      password: await hashPassword(SECRETS.alicePass, CHEAP),
      roles: ["admin"],
      permissions: { admin: { allow: ["queue:team.>"] } },
    },
  ]);
  const b = await brokerWithHttp(["--users", users, "--auth-token", SECRETS.token]);
  const basic = (u: string, p: string) => ({
    authorization: `Basic ${new TextEncoder().encode(`${u}:${p}`).toBase64()}`,
  });
  const bearer = { authorization: `Bearer ${SECRETS.token}` };
  const c = await RawClient.connect(b.server.port);
  try {
    assert.match(await c.line(), /^INFO /, "with auth on, the greeting comes first");
    await c.send(`CONNECT {"auth_token":"${SECRETS.token}"}\r\nPUB queue:secure 2\r\nhi\r\n`);
    assert.match(await c.line(), /^OK/);
    assert.match(await c.line(), /^OK msg_id:/);
    for (const path of ["/", "/dashboard.js", "/dashboard.css", "/api"]) {
      const res = await fetch(`${b.base}${path}`);
      assert.equal(res.status, 200, path);
      await res.body?.cancel();
    }
    let r = await call(b.base, "GET", "/api/console");
    assert.deepEqual([r.status, r.body.auth, r.body.version], [200, "on", null]);
    assert.equal((await call(b.base, "GET", "/api/queues")).status, 401);
    assert.equal((await call(b.base, "POST", "/api/queues/secure/purge")).status, 401);
    const stream = await fetch(`${b.base}/api/stream`);
    assert.equal(stream.status, 401, "the stream needs a credential too");
    await stream.body?.cancel();
    const mon = basic("mon", SECRETS.monitorPass);
    assert.equal((await call(b.base, "GET", "/api/queues", mon)).status, 200);
    r = await call(b.base, "POST", "/api/queues/secure/purge", mon);
    assert.equal(r.status, 403, "a monitor may not act");
    assert.equal((await call(b.base, "GET", "/api/queues/secure/peek", mon)).status, 403);
    r = await call(b.base, "POST", "/api/queues/secure/purge", {
      ...bearer,
      origin: "http://evil.example",
    });
    assert.equal(r.status, 403, "a cross-site request, even with the token");
    r = await call(b.base, "GET", "/api/queues/secure/peek", basic("ops", SECRETS.alicePass));
    assert.equal((r.body.messages as unknown[]).length, 1, "an admin peeks");
    const team = basic("team", SECRETS.alicePass);
    r = await call(b.base, "POST", "/api/queues/secure/purge", team);
    assert.deepEqual([r.status, r.body.text], [403, 'user "team" may not act on queue:secure\n']);
    r = await call(b.base, "POST", "/api/queues/team.jobs/purge", team);
    assert.equal(r.status, 404, "allowed on its own queues (this one does not exist)");
    r = await call(b.base, "POST", "/api/queues/secure/purge", bearer);
    assert.deepEqual([r.status, r.body.purged], [200, 1], "the token holder acts");
    const io = captured();
    const code = await runCli(
      ["queue", "peek", "secure", "--http", b.base.slice(7), "--token", SECRETS.token],
      denoRuntime,
      io,
    );
    assert.deepEqual([code, io.lines], [0, ["no message is waiting"]], "the CLI sends the token");
  } finally {
    await c.close();
    await b.stop();
    await Deno.remove(users);
  }
});
