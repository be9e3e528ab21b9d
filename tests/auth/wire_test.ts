/**
 * Authentication over real TCP: the INFO greeting and its nonce, each
 * credential kind accepted and refused (a table), commands before CONNECT,
 * the auth timeout, frames pipelined behind a CONNECT, stats that name the
 * user and hold no secret, and a reload that revokes or updates connections.
 */
import assert from "node:assert/strict";
import { testConfig } from "../helpers.ts";
import { RawClient, waitFor } from "../helpers.ts";
import { type KeyPair, makeUsers, SECRETS, sign, startAuthBroker, writeUsers } from "./fixtures.ts";

/** Connects and reads the greeting; returns the client and the nonce. */
async function greeted(port: number): Promise<{ c: RawClient; nonce: string }> {
  const c = await RawClient.connect(port);
  const line = await c.line();
  const m = /^INFO (\{.*\})$/.exec(line);
  assert.ok(m, line);
  const info = JSON.parse(m[1]);
  assert.equal(info.auth_required, true);
  assert.match(info.nonce, /^[A-Za-z0-9_-]{32}$/); // 24 bytes, base64url
  return { c, nonce: info.nonce };
}

type Case = [
  name: string,
  creds: (nonce: string, k: { bob: KeyPair; mallory: KeyPair }) => Promise<object> | object,
  ok: boolean,
];

const CASES: Case[] = [
  ["token", () => ({ auth_token: SECRETS.token }), true],
  ["wrong token", () => ({ auth_token: "nope" }), false],
  ["password", () => ({ user: "alice", pass: SECRETS.alicePass }), true],
  ["wrong password", () => ({ user: "alice", pass: "guess" }), false],
  ["unknown user", () => ({ user: "eve", pass: SECRETS.alicePass }), false],
  ["password of a key user", () => ({ user: "bob", pass: "x" }), false],
  ["key", async (n, k) => ({ public_key: k.bob.public_key, sig: await sign(k.bob, n) }), true],
  [
    "key with its user",
    async (n, k) => ({ user: "bob", public_key: k.bob.public_key, sig: await sign(k.bob, n) }),
    true,
  ],
  [
    "key with another user",
    async (n, k) => ({ user: "alice", public_key: k.bob.public_key, sig: await sign(k.bob, n) }),
    false,
  ],
  [
    "key signing another nonce",
    async (_n, k) => ({ public_key: k.bob.public_key, sig: await sign(k.bob, "old-nonce") }),
    false,
  ],
  [
    "another key's signature",
    async (n, k) => ({ public_key: k.bob.public_key, sig: await sign(k.mallory, n) }),
    false,
  ],
  [
    "unknown key",
    async (n, k) => ({ public_key: k.mallory.public_key, sig: await sign(k.mallory, n) }),
    false,
  ],
  ["key without sig", (_n, k) => ({ public_key: k.bob.public_key }), false],
  ["no credentials", () => ({}), false],
  ["certificate user without a certificate", () => ({ user: "svc" }), false],
];

Deno.test("auth: each credential kind accepted and refused", async () => {
  const { users, bob, mallory } = await makeUsers();
  const path = await writeUsers(users);
  const b = await startAuthBroker(path);
  try {
    for (const [name, creds, ok] of CASES) {
      b.server.auth!.attempts.forget("127.0.0.1"); // each case pays the first failure's delay only
      const { c, nonce } = await greeted(b.port);
      try {
        await c.send(`CONNECT ${JSON.stringify(await creds(nonce, { bob, mallory }))}\r\n`);
        if (ok) {
          assert.equal(await c.line(5000), "OK", name);
          await c.pub("queue:q", "x");
          assert.match(await c.line(), /^OK msg_id:\d+$/, name);
        } else {
          assert.match(await c.line(5000), /^ERR AUTH_FAILED /, name);
          assert.ok(await c.closedByServer(), name);
        }
      } finally {
        await c.close();
      }
    }
    const s = b.server.serverStats();
    assert.equal(s.auth?.successes, CASES.filter((c) => c[2]).length);
    assert.equal(s.auth?.failures, CASES.filter((c) => !c[2]).length);
    assert.equal(s.closed_by_reason.AUTH_FAILED, CASES.filter((c) => !c[2]).length);
  } finally {
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("auth: before CONNECT only CONNECT, PING, PONG and INFO; the rest gets AUTH_REQUIRED", async () => {
  const path = await writeUsers((await makeUsers()).users);
  const b = await startAuthBroker(path);
  const { c, nonce } = await greeted(b.port);
  try {
    await c.pub("queue:q", "x");
    assert.match(await c.line(), /^ERR AUTH_REQUIRED /);
    for (
      const cmd of [
        "SUB queue:q",
        "ACK msg_id:1",
        "NACK msg_id:1",
        "UNSUB s",
        "DECLARE topic:t retain_messages:1",
      ]
    ) {
      await c.send(`${cmd}\r\n`);
      assert.match(await c.line(), /^ERR AUTH_REQUIRED /, cmd);
    }
    await c.send("PING\r\nPONG\r\nINFO\r\n");
    assert.equal(await c.line(), "PONG");
    const info = JSON.parse((await c.line()).slice(5));
    assert.equal(info.nonce, nonce, "INFO before CONNECT repeats the nonce");
    assert.equal(b.broker.queueStats({ offset: 0, limit: 10 }).total, 0, "nothing was published");
    // Pipelined: the PUB after the CONNECT waits for the verdict, then is handled.
    await c.send(
      `CONNECT {"user":"alice","pass":"${SECRETS.alicePass}"}\r\nPUB queue:q 1\r\ny\r\n`,
    );
    assert.equal(await c.line(5000), "OK");
    assert.match(await c.line(), /^OK msg_id:\d+$/);
    const conn = b.server.connectionStats({ offset: 0, limit: 10, subs: false }).list[0];
    assert.equal(conn.user, "alice");
    const all = JSON.stringify(b.server.stats({ offset: 0, limit: 10, subs: true, closed: 10 }));
    for (const secret of Object.values(SECRETS)) assert.ok(!all.includes(secret));
  } finally {
    await c.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("auth: a connection that does not authenticate in time is closed with AUTH_TIMEOUT", async () => {
  const path = await writeUsers((await makeUsers()).users);
  const b = await startAuthBroker(path, ["--auth-timeout", "150"]);
  const { c } = await greeted(b.port);
  try {
    await c.send("PING\r\n");
    assert.equal(await c.line(), "PONG");
    assert.match(await c.line(3000), /^ERR AUTH_TIMEOUT /);
    assert.ok(await c.closedByServer());
    await waitFor(() => b.server.closedByReason.AUTH_TIMEOUT === 1, 2000, "AUTH_TIMEOUT counted");
  } finally {
    await c.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("auth: with auth off nothing changes: no greeting, commands without CONNECT", async () => {
  const { startTestBroker } = await import("../helpers.ts");
  const b = await startTestBroker();
  const c = await RawClient.connect(b.port);
  try {
    await c.pub("queue:q", "x");
    assert.match(await c.line(), /^OK msg_id:\d+$/, "the first line is the PUB's reply");
    await c.send("INFO\r\n");
    const info = JSON.parse((await c.line()).slice(5));
    assert.equal(info.auth_required, undefined);
    assert.equal(info.nonce, undefined);
    assert.equal(b.server.serverStats().auth, null);
  } finally {
    await c.close();
    await b.stop();
  }
});

Deno.test("auth: a reload revokes removed users and changed credentials, updates changed entries, keeps the rest", async () => {
  const { users, bob } = await makeUsers();
  const path = await writeUsers(users);
  const b = await startAuthBroker(path);
  const login = async (creds: (nonce: string) => Promise<object> | object) => {
    const { c, nonce } = await greeted(b.port);
    await c.send(`CONNECT ${JSON.stringify(await creds(nonce))}\r\n`);
    assert.equal(await c.line(5000), "OK");
    return c;
  };
  const alice = await login(() => ({ user: "alice", pass: SECRETS.alicePass }));
  const mon = await login(() => ({ user: "mon", pass: SECRETS.monitorPass }));
  const bobC = await login(async (n) => ({ public_key: bob.public_key, sig: await sign(bob, n) }));
  const tok = await login(() => ({ auth_token: SECRETS.token }));
  try {
    // alice removed; mon gets permissions (same password); bob unchanged; the token unchanged.
    const next = users.filter((u) => u.user !== "alice").map((u) =>
      u.user === "mon" ? { ...u, permissions: { publish: { deny: ["queue:secret"] } } } : u
    );
    await writeUsers(next, path);
    b.reload(testConfig(["--users", path, "--auth-token", SECRETS.token]));
    assert.match(await alice.line(), /^ERR AUTH_REVOKED /);
    assert.ok(await alice.closedByServer());
    await waitFor(() => b.server.closedByReason.AUTH_REVOKED === 1, 2000, "revoked counted");
    const monConn = [...b.server.connections.values()].find((c) => c.principal?.user === "mon");
    assert.deepEqual(monConn?.principal?.entry?.permissions, {
      publish: { deny: ["queue:secret"] },
    });
    for (const c of [mon, bobC, tok]) {
      await c.send("PING\r\n");
      assert.equal(await c.line(), "PONG", "still connected");
    }
    // A new token revokes the token holder; bob's key gone revokes bob.
    await writeUsers(next.filter((u) => u.user !== "bob"), path);
    b.reload(testConfig(["--users", path, "--auth-token", "another-token"]));
    for (const c of [bobC, tok]) assert.match(await c.line(), /^ERR AUTH_REVOKED /);
    await mon.send("PING\r\n");
    assert.equal(await mon.line(), "PONG");
    assert.equal(b.server.serverStats().auth?.revoked, 3);
    // A bad file changes nothing.
    await Deno.writeTextFile(path, '{"users":[{"user":"x","password":"plain"}]}');
    assert.throws(
      () => b.reload(testConfig(["--users", path, "--auth-token", "another-token"])),
      /user "x": password must be a PHC string/,
    );
    await mon.send("PING\r\n");
    assert.equal(await mon.line(), "PONG");
  } finally {
    for (const c of [alice, mon, bobC, tok]) await c.close();
    await b.stop();
    await Deno.remove(path);
  }
});
