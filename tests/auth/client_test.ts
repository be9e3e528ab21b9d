/**
 * The client SDK against an authenticated broker over real TCP: each
 * credential kind, refused credentials as `AuthFailedError` (never retried
 * for ever), the reconnect loop authenticating again (a key signs the new
 * connection's nonce), a revoked user's client giving up, and the no-auth
 * path untouched.
 */
import assert from "node:assert/strict";
import { keyFileText } from "../../src/auth/mod.ts";
import {
  AuthFailedError,
  AuthRevokedError,
  connect,
  type ConnectOptions,
  type StatusEvent,
} from "../../src/client/mod.ts";
import { CloseReason } from "../../src/server/mod.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { testConfig, waitFor } from "../helpers.ts";
import { makeUsers, SECRETS, startAuthBroker, writeUsers } from "./fixtures.ts";

async function setup() {
  const { users, bob, mallory } = await makeUsers();
  const path = await writeUsers(users);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bob.key`, keyFileText(bob));
  await Deno.writeTextFile(`${dir}/mallory.key`, keyFileText(mallory));
  const b = await startAuthBroker(path);
  return {
    b,
    path,
    users,
    dir,
    addr: `127.0.0.1:${b.port}`,
    async [Symbol.asyncDispose]() {
      await b.stop();
      await Deno.remove(path);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const base: ConnectOptions = { runtime: denoRuntime, reconnectDelayMs: 10, connectTimeoutMs: 5000 };

Deno.test("client: token, password and key file each connect and work", async () => {
  await using s = await setup();
  for (
    const [name, opts] of [
      ["token", { token: SECRETS.token }],
      ["password", { user: "alice", pass: SECRETS.alicePass }],
      ["key", { keyFile: `${s.dir}/bob.key` }],
      ["key and user", { user: "bob", keyFile: `${s.dir}/bob.key` }],
    ] as const
  ) {
    const c = await connect(s.addr, { ...base, ...opts });
    try {
      const sub = await c.subscribe("topic:t");
      await c.publish("topic:t", name);
      const it = sub[Symbol.asyncIterator]();
      const m = await it.next();
      assert.equal(new TextDecoder().decode(m.value!.body), name);
      assert.equal(c.info?.auth_required, true);
    } finally {
      await c.close();
    }
  }
});

Deno.test("client: refused credentials reject connect() with AuthFailedError", async () => {
  await using s = await setup();
  for (
    const opts of [
      {},
      { token: "wrong" },
      { user: "alice", pass: "wrong" },
      { keyFile: `${s.dir}/mallory.key` },
    ]
  ) {
    s.b.server.auth!.attempts.forget("127.0.0.1");
    await assert.rejects(
      connect(s.addr, { ...base, ...opts }),
      AuthFailedError,
      JSON.stringify(opts),
    );
  }
  await assert.rejects(
    connect(s.addr, { ...base, keyFile: `${s.dir}/none.key` }),
    /cannot read key file ".*none\.key"/,
  );
});

Deno.test("client: the reconnect loop authenticates again; a key signs the new nonce", async () => {
  await using s = await setup();
  for (
    const opts of [{ user: "alice", pass: SECRETS.alicePass }, { keyFile: `${s.dir}/bob.key` }]
  ) {
    const events: StatusEvent[] = [];
    const c = await connect(s.addr, { ...base, ...opts, onStatus: (e) => events.push(e) });
    try {
      for (const conn of s.b.server.connections.values()) {
        conn.close(CloseReason.ADMIN_CLOSED, "test");
      }
      await waitFor(() => events.some((e) => e.type === "reconnected"), 5000, "reconnected");
      assert.match(await c.publish("queue:after", "x"), /^\d+$/);
      assert.equal(s.b.server.connections.size, 1);
      assert.equal(s.b.server.serverStats().auth?.failures, 0);
    } finally {
      await c.close();
    }
  }
});

Deno.test("client: a revoked user's client stops reconnecting with an AuthError", async () => {
  await using s = await setup();
  const events: StatusEvent[] = [];
  const c = await connect(s.addr, {
    ...base,
    user: "alice",
    pass: SECRETS.alicePass,
    maxReconnectAttempts: Infinity,
    onStatus: (e) => events.push(e),
  });
  await writeUsers(s.users.filter((u) => u.user !== "alice"), s.path);
  s.b.reload(testConfig(["--users", s.path, "--auth-token", SECRETS.token]));
  await waitFor(() => c.closed, 10_000, "the client gave up");
  assert.ok(events.some((e) => e.type === "error" && e.error instanceof AuthRevokedError));
  const closed = events.find((e) => e.type === "closed") as { error?: Error } | undefined;
  assert.ok(closed?.error instanceof AuthFailedError, String(closed?.error));
  const attempts = events.filter((e) => e.type === "reconnecting").length;
  assert.equal(attempts, 1, "one refused attempt, not for ever");
});
