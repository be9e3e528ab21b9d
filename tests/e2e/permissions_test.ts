/**
 * Permissions and per-user limits over real TCP, through authentication as
 * deployed: a users file with password hashes, `CONNECT {"user","pass"}`, the
 * token holder, and a reload of the users file (`Running.reload`, what SIGHUP
 * calls) that changes a user's entry under its open connections.
 */
import assert from "node:assert/strict";
import { Authenticator, hashPassword, parseUsers, type UserEntry } from "../../src/auth/mod.ts";
import { connect, PermissionError } from "../../src/client/mod.ts";
import * as L from "../../src/config/mod.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { renderMetrics } from "../../src/http/mod.ts";
import { Server } from "../../src/server/mod.ts";
import { CHEAP, SECRETS, writeUsers } from "../auth/fixtures.ts";
import { USERS } from "../auth/users.ts";
import { testBroker } from "../broker/harness.ts";
import type { FakeClock } from "../fake_clock.ts";
import { RawClient, rng, startTestBroker, testConfig, waitFor } from "../helpers.ts";

const text = (f: { payload?: Uint8Array }) => new TextDecoder().decode(f.payload);

/** Each test user's password; the users file holds its hash. */
const passOf = (user: string) => `pw-of-${user}`;
/** One hash per user name, so that a rewritten users file keeps the credential (no revocation). */
const hashes = new Map<string, Promise<string>>();

/** The users file entries of `entries`, each with the hash of its password. */
function withPasswords(entries: UserEntry[]): Promise<UserEntry[]> {
  return Promise.all(entries.map(async (e) => {
    if (!hashes.has(e.user)) hashes.set(e.user, hashPassword(passOf(e.user), CHEAP));
    return { ...e, password: await hashes.get(e.user)! };
  }));
}

/** What the tests need of a broker: its port and server. */
interface Host {
  readonly port: number;
  readonly server: Server;
}

/** A broker with `entries` as its users file and the test token; `update` rewrites the file and reloads. */
async function authBroker(entries: UserEntry[]) {
  const path = await writeUsers(await withPasswords(entries));
  const args = () => ["--users", path, "--auth-token", SECRETS.token];
  const b = await startTestBroker(args());
  return Object.assign(b, {
    async update(next: UserEntry[]): Promise<void> {
      await writeUsers(await withPasswords(next), path);
      b.reload(testConfig(args()));
    },
    async close(): Promise<void> {
      await b.stop();
      await Deno.remove(path);
    },
  });
}

/** Logs in over TCP; `admitted` is whether the CONNECT was answered OK (else `reply` is the ERR). */
async function login(
  host: Host,
  creds: { user: string } | { token: string },
): Promise<{ c: RawClient; admitted: boolean; reply: string }> {
  const c = await RawClient.connect(host.port);
  assert.match(await c.line(), /^INFO \{/);
  const body = "token" in creds
    ? { auth_token: creds.token }
    : { user: creds.user, pass: passOf(creds.user) };
  await c.send(`CONNECT ${JSON.stringify(body)}\r\n`);
  const reply = await c.line(5000);
  return { c, admitted: reply === "OK", reply };
}

/** `login` as `user`, which must be admitted. */
async function as(host: Host, user: string): Promise<RawClient> {
  const { c, admitted, reply } = await login(host, { user });
  assert.ok(admitted, `${user}: ${reply}`);
  return c;
}

/** The token holder: no entry, so every permission. */
async function operator(host: Host): Promise<RawClient> {
  const { c, admitted, reply } = await login(host, { token: SECRETS.token });
  assert.ok(admitted, reply);
  return c;
}

Deno.test("permissions: the matrix over sockets; a denied command leaves the connection up", async () => {
  const broker = await authBroker([USERS.alice, USERS.dave]);
  const alice = await as(broker, "alice");
  const dave = await as(broker, "dave");
  try {
    const rows: [RawClient, string, string][] = [
      [alice, "PUB topic:public.news 1\r\nx\r\n", "OK msg_id:"],
      [alice, "PUB topic:public.secret 1\r\nx\r\n", "ERR PERMISSION_DENIED topic:public.secret"],
      [alice, "PUB queue:orders.eu 1\r\nx\r\n", "OK msg_id:"],
      [alice, "PUB queue:payments 1\r\nx\r\n", "ERR PERMISSION_DENIED queue:payments"],
      [alice, "SUB topic:public.* sub_id:a\r\n", "OK"],
      [alice, "SUB topic:private.> sub_id:b\r\n", "ERR PERMISSION_DENIED topic:private.>"],
      [
        alice,
        "SUB topic:public.secret.> sub_id:b\r\n",
        "ERR PERMISSION_DENIED topic:public.secret.>",
      ],
      [alice, "SUB queue:orders.us sub_id:q\r\n", "OK"],
      [alice, "SUB queue:payments sub_id:p\r\n", "ERR PERMISSION_DENIED queue:payments"],
      [alice, "DECLARE topic:public.log retain_messages:10\r\n", "OK"],
      [
        alice,
        "DECLARE topic:private.log retain_messages:10\r\n",
        "ERR PERMISSION_DENIED topic:private.log",
      ],
      [alice, "PING\r\n", "PONG"],
      [dave, "PUB topic:x 1\r\nx\r\n", "ERR PERMISSION_DENIED topic:x"],
      [dave, "SUB topic:> sub_id:all\r\n", "ERR PERMISSION_DENIED topic:>"],
      [dave, "SUB queue:x sub_id:q\r\n", "OK"],
      [dave, "PING\r\n", "PONG"],
    ];
    for (const [c, cmd, want] of rows) {
      await c.send(cmd);
      const got = await c.line();
      assert.ok(got.startsWith(want), `${cmd.split("\r\n")[0]}: got ${got}, want ${want}`);
    }
    // Every refusal is counted, in /api/stats and /metrics.
    const denied = rows.filter(([, , want]) => want.startsWith("ERR PERMISSION_DENIED")).length;
    assert.equal(broker.server.serverStats().authorization?.permission_denied, denied);
    assert.match(
      renderMetrics(broker.server),
      new RegExp(`^relayr_permission_denied_total ${denied}$`, "m"),
    );
  } finally {
    await alice.close();
    await dave.close();
    await broker.close();
  }
});

Deno.test("permissions: the --auth-token holder (no users-file entry) may do everything", async () => {
  const broker = await authBroker([USERS.alice]);
  const op = await operator(broker);
  try {
    await op.send("SUB topic:> sub_id:all\r\nDECLARE topic:private.log retain_messages:1\r\n");
    assert.equal(await op.line(), "OK");
    assert.equal(await op.line(), "OK");
    await op.pub("topic:private.x", "mine");
    const seen = await op.until((f) => f.line.startsWith("MSG "), 2);
    assert.equal(text(seen.at(-1)!), "mine");
    assert.equal(broker.server.userConnections.count("$token"), 1);
  } finally {
    await op.close();
    await broker.close();
  }
});

Deno.test("permissions: the client library raises PermissionError and goes on", async () => {
  const broker = await authBroker([USERS.alice]);
  const c = await connect(`127.0.0.1:${broker.port}`, {
    reconnect: false,
    user: "alice",
    pass: passOf("alice"),
  });
  try {
    const err = await c.publish("topic:private.x", "no").catch((e) => e);
    assert.ok(err instanceof PermissionError, String(err));
    assert.equal(err.code, "PERMISSION_DENIED");
    assert.match(err.message, /topic:private\.x/);
    const denied = await c.subscribe("queue:payments").catch((e) => e);
    assert.ok(denied instanceof PermissionError, String(denied));
    const sub = await c.subscribe("topic:public.*", { ack: "none" });
    assert.ok(typeof await c.publish("topic:public.news", "yes") === "string");
    const first = await sub.next();
    assert.equal(new TextDecoder().decode(first.value!.body), "yes");
  } finally {
    await c.close();
    await broker.close();
  }
});

Deno.test("permissions: a wildcard subscription never receives a topic its user may not read", async () => {
  const broker = await authBroker([USERS.alice]);
  const pub = await operator(broker);
  // Some topics exist before the subscription (bound at SUB), the rest appear after.
  const early = await operator(broker);
  await early.send("SUB topic:public.early sub_id:e\r\nSUB topic:private.early sub_id:p\r\n");
  assert.equal(await early.line(), "OK");
  assert.equal(await early.line(), "OK");
  const alice = await as(broker, "alice");
  try {
    await alice.send("SUB topic:> sub_id:all\r\n");
    assert.equal(await alice.line(), "OK");
    const topics = [
      "public.early",
      "private.early",
      "public.a",
      "public.b.c",
      "public.secret",
      "public.secret.x",
      "public.secret.x.y",
      "private.a",
      "other",
      "publicx.a",
    ];
    const may = (t: string) => t.startsWith("public.") && !t.startsWith("public.secret.");
    const next = rng(14);
    const want: string[] = [];
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < 2000; i++) {
      const t = topics[Math.floor(next() * topics.length)];
      const body = `${t}#${i}`;
      if (may(t)) want.push(body);
      batch += `PUB topic:${t} ${body.length}\r\n${body}\r\n`;
    }
    await pub.send(batch);
    await pub.send("PING\r\n");
    assert.equal(await pub.line(), "PONG");
    const got = (await alice.msgs(want.length)).map(text);
    assert.deepEqual(got, want);
    await alice.quiet(100);
    const conn = [...broker.server.connections.values()].find((c) =>
      c.principal?.user === "alice"
    )!;
    const bound = conn.subs.get("all")!.stats();
    assert.equal(bound.delivered, want.length);
  } finally {
    await pub.close();
    await early.close();
    await alice.close();
    await broker.close();
  }
});

Deno.test("permissions: allow_responses lets a service answer the reply-to it received, once", async () => {
  const broker = await authBroker([USERS.carol, USERS.bob]);
  const requester = await as(broker, "bob");
  const carol = await as(broker, "carol");
  try {
    await requester.send("SUB topic:_inbox.r1 sub_id:in\r\n");
    assert.equal(await requester.line(), "OK");
    await carol.send("SUB topic:requests.* sub_id:req\r\n");
    assert.equal(await carol.line(), "OK");
    await carol.send("PUB topic:_inbox.r1 5\r\nearly\r\n");
    assert.equal(
      await carol.line(),
      "ERR PERMISSION_DENIED topic:_inbox.r1",
      "nothing received yet",
    );
    await requester.pub("topic:requests.add", "1+1", "reply_to:topic:_inbox.r1");
    assert.ok((await requester.line()).startsWith("OK msg_id:"));
    const [req] = await carol.msgs(1);
    assert.equal(req.fields!.reply_to, "topic:_inbox.r1");
    await carol.pub("topic:_inbox.r1", "2");
    assert.ok((await carol.line()).startsWith("OK msg_id:"));
    await carol.pub("topic:_inbox.r1", "3");
    assert.equal(await carol.line(), "ERR PERMISSION_DENIED topic:_inbox.r1", "one response");
    await carol.pub("topic:_inbox.r2", "2");
    assert.equal(await carol.line(), "ERR PERMISSION_DENIED topic:_inbox.r2");
    assert.deepEqual((await requester.msgs(1)).map(text), ["2"]);
    await requester.quiet(100);
  } finally {
    await requester.close();
    await carol.close();
    await broker.close();
  }
});

Deno.test("permissions: a reload of the users file applies at once, to subscriptions already open", async () => {
  const broker = await authBroker([USERS.alice]);
  const pub = await operator(broker);
  const alice = await as(broker, "alice");
  try {
    await alice.send(
      "SUB topic:> sub_id:all\r\nSUB topic:public.b sub_id:b\r\n" +
        "DECLARE topic:public.log retain_messages:10\r\nSUB topic:public.log sub_id:d durable:d\r\n",
    );
    for (let i = 0; i < 4; i++) assert.equal(await alice.line(), "OK");
    const narrower: UserEntry = {
      user: "alice",
      permissions: {
        publish: { allow: ["topic:public.a.>"] },
        subscribe: { allow: ["topic:public.a.>", "topic:public.log"] },
      },
    };
    // Its own topic:> gets this one: the MSG and the OK, in either order.
    await alice.pub("topic:public.zz", "x");
    const two = [await alice.frame(), await alice.frame()].map((f) => f.line.split(" ")[0]);
    assert.deepEqual(two.sort(), ["MSG", "OK"]);
    await broker.update([narrower]);
    await alice.pub("topic:public.zz", "x");
    assert.equal(
      await alice.line(),
      "ERR PERMISSION_DENIED topic:public.zz",
      "the same destination as before, checked anew",
    );
    const conn = [...broker.server.connections.values()].find((c) =>
      c.principal?.user === "alice"
    )!;
    assert.equal(conn.subs.has("b"), false, "the exact subscription now denied is ended");
    for (const t of ["public.a.x", "public.b", "public.a.y", "private.z"]) {
      await pub.pub(`topic:${t}`, t);
      assert.ok((await pub.line()).startsWith("OK"));
    }
    assert.deepEqual((await alice.msgs(2)).map(text), ["public.a.x", "public.a.y"]);
    await alice.quiet(100);
    await alice.send("UNSUB d forget:true\r\n");
    assert.equal(await alice.line(), "OK", "no admin rules: allowed");
    // Widen again: topics it may now read are bound from now on.
    await alice.send("SUB topic:public.log sub_id:d2 durable:d2\r\n");
    assert.equal(await alice.line(), "OK");
    const noAdmin: UserEntry = {
      user: "alice",
      permissions: { admin: { allow: ["topic:other.>"] } },
    };
    await broker.update([noAdmin]);
    await alice.send("UNSUB d2 forget:true\r\n");
    assert.equal(await alice.line(), "ERR PERMISSION_DENIED topic:public.log");
    await pub.pub("topic:public.b", "again");
    assert.ok((await pub.line()).startsWith("OK"));
    assert.deepEqual((await alice.msgs(1)).map(text), ["again"]);
  } finally {
    await pub.close();
    await alice.close();
    await broker.close();
  }
});

Deno.test("limits: connections per user, subscriptions, max payload", async () => {
  const erin: UserEntry = {
    user: "erin",
    limits: { connections: 1, subscriptions: 2, max_payload: 16 },
  };
  const broker = await authBroker([erin]);
  const first = await login(broker, erin);
  const second = await login(broker, erin);
  try {
    assert.equal(first.admitted, true);
    assert.equal(second.admitted, false);
    assert.match(second.reply, /^ERR TOO_MANY_CONNECTIONS user "erin" is at its limit of 1/);
    assert.equal(await second.c.closedByServer(), true);
    const c = first.c;
    await c.send("SUB topic:a sub_id:1\r\nSUB topic:b sub_id:2\r\nSUB topic:c sub_id:3\r\n");
    assert.equal(await c.line(), "OK");
    assert.equal(await c.line(), "OK");
    assert.equal(await c.line(), "ERR LIMIT at most 2 subscriptions per connection");
    await c.pub("topic:z", "x".repeat(16));
    assert.ok((await c.line()).startsWith("OK msg_id:"));
    await c.pub("topic:z", "x".repeat(17));
    assert.match(await c.line(), /^ERR PAYLOAD_TOO_LARGE payload of 17 bytes is over 16/);
    assert.equal(await c.closedByServer(), true);
    await waitFor(() => broker.server.userConnections.count("erin") === 0, 2000, "count released");
    const third = await login(broker, erin);
    assert.equal(third.admitted, true, "room again once the first closed");
    await third.c.close();
  } finally {
    await first.c.close();
    await second.c.close();
    await broker.close();
  }
});

Deno.test("limits: pending_bytes makes a user's non-reading subscriber a slow consumer early", async () => {
  const frank: UserEntry = { user: "frank", limits: { pending_bytes: 100_000 } };
  const broker = await authBroker([frank]);
  const sub = await as(broker, "frank");
  const pub = await operator(broker);
  try {
    await sub.send("SUB topic:big sub_id:s\r\n");
    assert.equal(await sub.line(), "OK");
    await pub.send('CONNECT {"verbose":false}\r\n');
    // The subscriber never reads: once the socket buffers are full, it falls
    // more than 100,000 bytes behind and is closed. At most 18 MB are sent:
    // under the server's own limits (64 MiB outbound, 64 MiB of lag) it
    // would still be connected.
    const body = "x".repeat(60_000);
    const slow = () => broker.server.closedByReason.SLOW_CONSUMER > 0;
    for (let i = 0; i < 300 && !slow(); i++) {
      await pub.pub("topic:big", body);
      if (i % 50 === 49) {
        await pub.send("PING\r\n");
        assert.equal(await pub.line(), "PONG");
      }
    }
    await waitFor(slow, 5000, "the subscriber closed as a slow consumer");
    const closed = broker.server.closedConnections.at(-1)!;
    assert.equal(closed.user, "frank");
    assert.match(closed.detail, /bytes\) behind on topic:big/);
  } finally {
    await sub.close();
    await pub.close();
    await broker.close();
  }
});

/** A server with `entries` as its users, on a fake clock: the publish rate is tested without waiting on real time. */
async function fakeClockServer(
  entries: UserEntry[],
): Promise<{ server: Server; clock: FakeClock }> {
  const { broker, clock } = testBroker();
  const users = parseUsers({ users: await withPasswords(entries) }, "test users");
  const server = new Server(denoRuntime, broker, {
    hostname: "127.0.0.1",
    port: 0,
    payloadBytesMax: L.PAYLOAD_BYTES_MAX,
    pingIntervalMs: L.PING_INTERVAL_MS,
    version: "test",
    auth: new Authenticator({ token: undefined, users }, clock),
  });
  server.start();
  return { server, clock };
}

Deno.test("limits: over its publish rate a connection stops being read until the bucket refills", async () => {
  const grace: UserEntry = { user: "grace", limits: { publish_rate: 10, publish_burst: 3 } };
  const { server, clock } = await fakeClockServer([grace]);
  // The PUBs ride in the same write as the CONNECT: the rate holds from the first one.
  const c = await RawClient.connect(server.port);
  try {
    assert.match(await c.line(), /^INFO /);
    let batch = `CONNECT ${JSON.stringify({ user: "grace", pass: passOf("grace") })}\r\n`;
    for (let i = 0; i < 8; i++) batch += `PUB queue:rated 1\r\n${i}\r\n`;
    await c.send(batch + "PING\r\n");
    assert.equal(await c.line(5000), "OK", "the CONNECT");
    const oks = async (n: number) => {
      for (let i = 0; i < n; i++) assert.match(await c.line(), /^OK msg_id:/);
      await c.quiet(100);
    };
    await oks(3); // the burst, then reading stops: nothing is dropped, nothing answered
    assert.equal(server.broker.queues.get("queue:rated")?.store.size, 3);
    clock.advance(100); // one token
    await oks(1);
    clock.advance(1000); // a full bucket: three more
    await oks(3);
    clock.advance(100);
    assert.match(await c.line(), /^OK msg_id:/);
    assert.equal(await c.line(), "PONG", "the PING behind them is read too");
    assert.equal(server.broker.queues.get("queue:rated")?.store.size, 8);
    const a = server.serverStats().authorization!;
    assert.equal(a.publish_paused, 3, "paused before the 4th, the 5th and the 8th");
    assert.equal(a.publish_paused_ms, 1200, "100 + 1000 + 100 ms of the fake clock");
    assert.match(renderMetrics(server), /^relayr_publish_paused_seconds_total 1\.2$/m);
  } finally {
    await c.close();
    const stopped = server.shutdown();
    for (let i = 0; i < 100 && server.connections.size > 0; i++) {
      clock.advance(L.CLOSE_FLUSH_MS);
      await new Promise((r) => setTimeout(r, 1));
    }
    clock.advance(L.SHUTDOWN_FLUSH_MS);
    await stopped;
  }
});

Deno.test("permissions: BIND needs admin on the queue and subscribe on every topic it matches", async () => {
  const binder: UserEntry = {
    user: "binder",
    permissions: {
      admin: { allow: ["queue:work.*"] },
      subscribe: { allow: ["topic:events.>"], deny: ["topic:events.secret"] },
    },
  };
  const broker = await authBroker([binder]);
  const c = await as(broker, "binder");
  try {
    const reply = async (line: string) => {
      await c.send(`${line}\r\n`);
      return await c.line();
    };
    // Every topic of the pattern readable, admin on the queue: allowed.
    assert.equal(await reply("BIND topic:events.orders.* queue:work.a"), "OK");
    // Overlaps the denied topic: a copy would carry its messages into the queue.
    assert.equal(
      await reply("BIND topic:events.* queue:work.a"),
      "ERR PERMISSION_DENIED topic:events.*",
    );
    // Reaches past the allowed subtree.
    assert.equal(await reply("BIND topic:> queue:work.a"), "ERR PERMISSION_DENIED topic:>");
    // No admin on the queue.
    assert.equal(
      await reply("BIND topic:events.orders.* queue:other"),
      "ERR PERMISSION_DENIED queue:other",
    );
    assert.equal(
      await reply("UNBIND topic:events.orders.* queue:other"),
      "ERR PERMISSION_DENIED queue:other",
    );
    assert.equal(await reply("UNBIND topic:events.orders.* queue:work.a"), "OK");
  } finally {
    await c.close();
    await broker.close();
  }
});

Deno.test("permissions: a run of PUBs to a denied topic is refused one PUB at a time; an allowed run is delivered", async () => {
  const broker = await authBroker([USERS.alice]);
  const alice = await as(broker, "alice");
  const reader = await operator(broker);
  try {
    await reader.send("SUB topic:public.> sub_id:r\r\n");
    assert.equal(await reader.line(), "OK");
    // verbose off first (runs are made from then on), then the PUBs in one write.
    await alice.send('CONNECT {"verbose":false}\r\nPING\r\n');
    assert.equal(await alice.line(), "PONG");
    let batch = "";
    for (let i = 0; i < 50; i++) batch += `PUB topic:public.secret 2\r\ns${i % 10}\r\n`;
    for (let i = 0; i < 50; i++) batch += `PUB topic:public.news ${String(i).length}\r\n${i}\r\n`;
    await alice.send(batch + "PING\r\n");
    for (let i = 0; i < 50; i++) {
      assert.equal(await alice.line(), "ERR PERMISSION_DENIED topic:public.secret");
    }
    assert.equal(await alice.line(), "PONG");
    const got = (await reader.msgs(50)).map(text);
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => String(i)));
    await reader.quiet(100);
  } finally {
    await alice.close();
    await reader.close();
    await broker.close();
  }
});
