/**
 * Authentication pieces without sockets: the users file's validation (a
 * table of mistakes, each one line naming the user and field, never the
 * secret), the PHC password hash, the failed-login delay and its bounded map
 * on a fake clock, the certificate-subject match, and the settings (the
 * users inline in `--config`).
 */
import assert from "node:assert/strict";
import {
  addressKey,
  authConfigFrom,
  Authenticator,
  delayFor,
  FailedAttempts,
  generateKeyPair,
  hashPassword,
  hostOf,
  parsePasswordHash,
  parseUsers,
  SCRYPT_DEFAULT,
  standInFor,
  TOKEN_USER,
  verifyPassword,
} from "../../src/auth/mod.ts";
import { loadConfig } from "../../src/config/config.ts";
import { jsonErrorText } from "../../src/config/mod.ts";
import { type Frame, Parser } from "../../src/protocol/mod.ts";
import {
  AUTH_FAIL_BACKLOG_MS_MAX,
  AUTH_FAIL_DELAY_MS_MAX,
  AUTH_FAIL_DELAY_MS_MIN,
} from "../../src/config/limits.ts";
import { FakeClock } from "../fake_clock.ts";
import { CHEAP, makeUsers } from "./fixtures.ts";

const GOOD_HASH = await hashPassword("pw-secret-1", CHEAP);
const KEY = "A".repeat(43); // 32 zero bytes, base64url

const BAD_USERS: [name: string, file: unknown, error: RegExp][] = [
  ["not an object", 5, /must be \{"users":\[\.\.\.\]\}/],
  ["entry not an object", { users: [1] }, /entry 1 must be an object/],
  ["no user name", { users: [{ password: GOOD_HASH }] }, /entry 1: "user" must be a string/],
  ["duplicate", {
    users: [{ user: "a", password: GOOD_HASH }, { user: "a", password: GOOD_HASH }],
  }, /user "a" appears twice/],
  [
    "plain password",
    { users: [{ user: "a", password: "hunter2-secret" }] },
    /user "a": password must be a PHC string/,
  ],
  [
    "argon2",
    { users: [{ user: "a", password: "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA" }] },
    /user "a": password has algorithm "argon2id"/,
  ],
  ["scrypt too costly", {
    users: [{
      user: "a",
      password: "$scrypt$ln=22,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A".repeat(43),
    }],
  }, /user "a": password asks scrypt for over 256 MiB/],
  [
    "two credentials",
    { users: [{ user: "a", password: GOOD_HASH, public_key: KEY }] },
    /user "a": needs exactly one of/,
  ],
  ["no credential", { users: [{ user: "a" }] }, /user "a": needs exactly one of/],
  [
    "bad key",
    { users: [{ user: "a", public_key: "abc" }] },
    /user "a": public_key must be 32 bytes/,
  ],
  ["shared key", {
    users: [{ user: "a", public_key: KEY }, { user: "b", public_key: KEY }],
  }, /user "b": public_key is another user's too/],
  [
    "unknown field",
    { users: [{ user: "a", cert_subject: "CN=a", pass: "x" }] },
    /user "a": unknown field "pass"/,
  ],
  [
    "bad role",
    { users: [{ user: "a", cert_subject: "CN=a", roles: ["root"] }] },
    /user "a": roles must be a list of "admin", "monitor"/,
  ],
  [
    "bad action",
    { users: [{ user: "a", cert_subject: "CN=a", permissions: { write: {} } }] },
    /user "a": unknown permission "write"/,
  ],
  ["bad pattern", {
    users: [{ user: "a", cert_subject: "CN=a", permissions: { publish: { allow: ["orders"] } } }],
  }, /user "a": permissions\.publish\.allow holds "orders"/],
  ["bad allow_responses", {
    users: [{ user: "a", cert_subject: "CN=a", permissions: { allow_responses: "yes" } }],
  }, /permissions\.allow_responses must be true or false/],
  [
    "bad limit",
    { users: [{ user: "a", cert_subject: "CN=a", limits: { publish_rate: -1 } }] },
    /user "a": limits\.publish_rate must be a whole number/,
  ],
  ["pattern that does not compile", {
    users: [{
      user: "a",
      cert_subject: "CN=a",
      permissions: { subscribe: { deny: ["topic:a.>.b"] } },
    }],
  }, /user "a": permissions\.subscribe\.deny: ">" must be the last token/],
  [
    "zero limit",
    { users: [{ user: "a", cert_subject: "CN=a", limits: { connections: 0 } }] },
    /user "a": limits\.connections must be a whole number of at least 1/,
  ],
  [
    "unknown limit",
    { users: [{ user: "a", cert_subject: "CN=a", limits: { rate: 1 } }] },
    /user "a": unknown limit "rate"/,
  ],
  // Before: accepted, and "$token" then shared the token holder's name in
  // stats, its connection count and its durables' namespace.
  [
    "the token holder's name",
    { users: [{ user: "$token", cert_subject: "CN=t" }] },
    /"\$token" is the --auth-token holder's name/,
  ],
];

Deno.test("users file: every mistake is one line naming the user and field, never the secret", () => {
  for (const [name, file, error] of BAD_USERS) {
    assert.throws(
      () => parseUsers(file, "users file"),
      (e: Error) => {
        assert.equal(e.name, "ConfigError", name);
        assert.match(e.message, error, name);
        assert.ok(!e.message.includes("\n"), name);
        assert.ok(!e.message.includes("hunter2-secret") && !e.message.includes(GOOD_HASH), name);
        return true;
      },
    );
  }
  const ok = parseUsers({ users: [{ user: "a", password: GOOD_HASH, roles: ["monitor"] }] }, "f");
  assert.equal(ok.byName.get("a")?.entry.roles?.[0], "monitor");
});

Deno.test("password: PHC scrypt at the default cost, verified in constant-length compare", async () => {
  const phc = await hashPassword("correct horse");
  assert.match(phc, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  const h = parsePasswordHash(phc);
  assert.ok(typeof h !== "string");
  assert.equal(await verifyPassword("correct horse", h), true);
  assert.equal(await verifyPassword("correct horsf", h), false);
  assert.notEqual(await hashPassword("correct horse"), phc, "a fresh salt each time");
});

Deno.test("failed logins: the delay doubles per failure of an address, capped, and the map is bounded", () => {
  const a = new FailedAttempts(3);
  let now = 0;
  const delays = Array.from({ length: 10 }, () => {
    const d = a.fail("10.0.0.1", now); // each attempt once the previous one was answered
    now += d;
    return d;
  });
  assert.deepEqual(delays.slice(0, 3), [
    AUTH_FAIL_DELAY_MS_MIN,
    2 * AUTH_FAIL_DELAY_MS_MIN,
    4 * AUTH_FAIL_DELAY_MS_MIN,
  ]);
  assert.equal(delays.at(-1), AUTH_FAIL_DELAY_MS_MAX);
  assert.equal(
    delayFor(1_000_000),
    AUTH_FAIL_DELAY_MS_MAX,
    "a million guesses: the cap, no overflow",
  );
  for (let i = 0; i < 1000; i++) a.fail(`10.1.${i >> 8}.${i & 255}`, now);
  assert.equal(a.size, 3, "at most the limit of addresses");
  assert.equal(a.evicted, 998);
  assert.equal(a.failuresOf("10.0.0.1", now), 0, "the oldest was forgotten first");
  assert.equal(a.failures, 1010);
  assert.equal(hostOf("[::1]:5555"), "0:0:0:0::/64");
  assert.equal(hostOf("127.0.0.1:80"), "127.0.0.1");
});

Deno.test("failed logins: parallel failures of one address are answered in turn; a full backlog is refused unchecked", async () => {
  const a = new FailedAttempts();
  assert.deepEqual([a.fail("h", 0), a.fail("h", 0), a.fail("h", 0)], [100, 300, 700]);
  let wait = 0;
  for (let i = 0; i < 100 && !a.blocked("h", 0); i++) wait = a.fail("h", 0);
  assert.ok(
    wait > AUTH_FAIL_BACKLOG_MS_MAX && wait <= AUTH_FAIL_BACKLOG_MS_MAX + AUTH_FAIL_DELAY_MS_MAX,
  );
  assert.equal(a.blocked("h", 0), true);
  assert.equal(a.blocked("h", wait - AUTH_FAIL_BACKLOG_MS_MAX), false, "drained enough");
  assert.equal(a.blocked("other", 0), false);
  // Blocked, even the right token is refused at once, unchecked, and counted.
  const clock = new FakeClock();
  const auth = new Authenticator({ token: "t0k", users: undefined }, clock);
  for (let i = 0; i < 30; i++) auth.attempts.fail("10.0.0.7", clock.now());
  assert.equal(
    await auth.authenticate({ auth_token: "t0k" }, { nonce: "n", remoteAddr: "10.0.0.7:9" }),
    undefined,
  );
  assert.equal(auth.stats().lockouts, 1);
  assert.equal(
    (await auth.authenticate({ auth_token: "t0k" }, { nonce: "n", remoteAddr: "10.0.0.8:9" }))
      ?.user,
    TOKEN_USER,
  );
});

Deno.test("failed logins: the answer waits for the delay on the (fake) clock; a success does not", async () => {
  const clock = new FakeClock();
  const auth = new Authenticator({ token: "t0k", users: undefined }, clock);
  const ctx = { nonce: "n", remoteAddr: "10.0.0.9:1234" };
  for (const want of [100, 200, 400]) {
    let done = false;
    const p = auth.authenticate({ auth_token: "wrong" }, ctx).then((r) => (done = true, r));
    await new Promise((r) => setTimeout(r, 0));
    clock.advance(want - 1);
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(done, false, `still waiting before ${want} ms`);
    clock.advance(1);
    assert.equal(await p, undefined);
  }
  const ok = await auth.authenticate({ auth_token: "t0k" }, ctx);
  assert.equal(ok?.user, TOKEN_USER);
  assert.equal(auth.stats().failures, 3);
  assert.equal(auth.stats().successes, 1);
});

Deno.test("failed logins: close() answers the waiting ones at once, and later ones do not wait", async () => {
  const clock = new FakeClock();
  const auth = new Authenticator({ token: "t0k", users: undefined }, clock);
  const ctx = { nonce: "n", remoteAddr: "10.0.0.9:1" };
  const waiting = auth.authenticate({ auth_token: "x" }, ctx);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(clock.pending, 1, "the failure waits on the clock");
  auth.close();
  assert.equal(await waiting, undefined);
  assert.equal(clock.pending, 0, "its timer was cancelled");
  assert.equal(await auth.authenticate({ auth_token: "y" }, ctx), undefined);
  assert.equal(clock.pending, 0);
});

Deno.test("certificate subject: a verified subject naming a user logs in as that user, nothing else does", async () => {
  const { users } = await makeUsers();
  const clock = new FakeClock();
  const auth = new Authenticator({ token: undefined, users: parseUsers(users, "f") }, clock);
  const ctx = { nonce: "n", remoteAddr: "1.2.3.4:5", peerCertSubject: "CN=svc,O=Acme" };
  assert.equal((await auth.authenticate({}, ctx))?.user, "svc");
  assert.equal((await auth.authenticate({ user: "svc" }, ctx))?.method, "cert");
  // Wrong user, other subject, or no certificate: refused (each after its delay).
  const refused = [
    auth.authenticate({ user: "alice" }, ctx),
    auth.authenticate({}, { ...ctx, peerCertSubject: "CN=svc,O=Evil" }),
    auth.authenticate({}, { ...ctx, peerCertSubject: undefined }),
  ];
  await new Promise((r) => setTimeout(r, 0));
  clock.advance(1000); // past their delays (100, 200 and 400 ms)
  assert.deepEqual(await Promise.all(refused), [undefined, undefined, undefined]);
});

Deno.test("settings: the users inline under `users` in --config, a token, and a bad file is one ConfigError", async () => {
  const { users } = await makeUsers();
  const dir = await Deno.makeTempDir();
  try {
    const cfg = `${dir}/relayr.json`;
    await Deno.writeTextFile(cfg, JSON.stringify({ "auth-token": "tok", users }));
    const read = (p: string) => Deno.readTextFileSync(p);
    const { config } = loadConfig({
      args: ["--config", cfg],
      env: () => undefined,
      readFile: read,
    });
    const a = authConfigFrom(config, read);
    assert.equal(a.token, "tok");
    assert.equal(a.users?.byName.size, 4);
    const flag = loadConfig({
      args: ["--users", `${dir}/none.json`],
      env: () => undefined,
      readFile: read,
    });
    assert.throws(() => authConfigFrom(flag.config, read), /cannot read users file ".*none\.json"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reload: a login judged across a reload is judged by the new users (removed: refused; changed: new entry)", async () => {
  // Before: the password check awaited scrypt with the old users, and the
  // server's reload reviewed only connections already in, so a user removed
  // while its CONNECT was being checked got in, with the old permissions.
  const clock = new FakeClock();
  const alice = { user: "alice", password: GOOD_HASH };
  const auth = new Authenticator({ token: undefined, users: parseUsers([alice], "f") }, clock);
  const ctx = { nonce: "n", remoteAddr: "10.0.0.7:1" };
  const removed = auth.authenticate({ user: "alice", pass: "pw-secret-1" }, ctx);
  auth.reload({ token: undefined, users: parseUsers([], "f") });
  assert.equal(await removed, undefined, "removed while its password was checked");
  auth.reload({ token: undefined, users: parseUsers([alice], "f") });
  const changed = auth.authenticate({ user: "alice", pass: "pw-secret-1" }, ctx);
  const roles = ["monitor"];
  auth.reload({ token: undefined, users: parseUsers([{ ...alice, roles }], "f") });
  assert.deepEqual((await changed)?.roles, roles, "its entry changed meanwhile: the new one");
  const http = auth.httpPrincipal(`Basic ${btoa("alice:pw-secret-1")}`, "10.0.0.7");
  auth.reload({ token: undefined, users: parseUsers([], "f") });
  assert.equal(await http, undefined, "over HTTP too");
  assert.equal(auth.stats().failures, 0, "not counted as guesses");
});

Deno.test("failed logins: IPv6 counts per /64, IPv4-mapped as IPv4: rotating through a /64 buys no fresh start", () => {
  // Before: each IPv6 address counted alone, so a host with a /64 started
  // every guess at the smallest delay and, with 10,000 addresses, flushed
  // the bounded map (and everyone's counts) at will.
  assert.equal(addressKey("2001:db8:0:7:a:b:c:d"), addressKey("2001:DB8::7:ffff:1:2:3"));
  assert.equal(hostOf("2001:db8:0:7::1:5555"), "2001:db8:0:7::/64");
  assert.notEqual(addressKey("2001:db8:0:7::1"), addressKey("2001:db8:0:8::1"));
  assert.equal(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(addressKey("[fe80::1%eth0]"), "fe80:0:0:0::/64");
  assert.equal(addressKey("10.0.0.1"), "10.0.0.1");
  const a = new FailedAttempts(3);
  const delays = Array.from({ length: 5 }, (_, i) => a.fail(hostOf(`2001:db8::${i + 1}:4000`), 0));
  assert.equal(delays.at(-1), 3100, "one count: 100 + 200 + 400 + 800 + 1600");
  assert.equal(a.size, 1);
});

Deno.test("failed logins over HTTP count per client address: one guesser does not lock out every monitor", async () => {
  // Before: every HTTP failure counted under one address ("http"), and a
  // request without credentials was a failure too, so anyone could fill its
  // backlog and every monitor, with the right token, got 401 unchecked.
  const clock = new FakeClock();
  const auth = new Authenticator({ token: "t0k", users: undefined }, clock);
  const guesses = Array.from({ length: 30 }, () => auth.httpPrincipal("Bearer wrong", "10.9.9.9"));
  assert.equal(
    await auth.httpPrincipal("Bearer t0k", "10.9.9.9"),
    undefined,
    "the guesser is blocked",
  );
  assert.equal((await auth.httpPrincipal("Bearer t0k", "10.0.0.1"))?.user, TOKEN_USER);
  const before = auth.stats().failures;
  assert.equal(await auth.httpPrincipal(null, "10.0.0.2"), undefined);
  assert.equal(auth.stats().failures, before, "no header: refused at once, not a guess");
  auth.close();
  assert.deepEqual(new Set(await Promise.all(guesses)), new Set([undefined]));
});

Deno.test("password: an unknown name is verified at the users' own scrypt cost (no enumeration by timing)", async () => {
  // Before: unknown names were verified against a fixed ln=15 hash, so with
  // users hashed at another cost (relayr passwd --cost) a wrong password of
  // a real user took another time than an unknown name.
  const cheap = parseUsers([{ user: "alice", password: GOOD_HASH }], "f");
  assert.deepEqual(
    standInFor(cheap).params,
    (parsePasswordHash(GOOD_HASH) as { params: unknown }).params,
  );
  const costly = await hashPassword("x", { N: 2 ** 11, r: 8, p: 2 });
  const mixed = parseUsers([{ user: "k", public_key: (await generateKeyPair()).public_key }, {
    user: "b",
    password: costly,
  }], "f");
  assert.deepEqual(standInFor(mixed).params, { N: 2 ** 11, r: 8, p: 2 }, "a key user has no cost");
  assert.deepEqual(standInFor(parseUsers([], "f")).params, SCRYPT_DEFAULT);
  assert.equal(await verifyPassword("", standInFor(cheap)), false);
});

Deno.test("a JSON mistake in a config file, a users file or a CONNECT is reported without the text around it (no secret)", () => {
  // Before: the runtime's JSON.parse message was passed on whole, and V8
  // quotes the text around the mistake: an unquoted token or hash went to
  // stderr, or on a SIGHUP into the log.
  const files: Record<string, string> = {
    "relayr.json": `{"auth-token": tok-s3cr3t-9d}`,
    "users.json": `{"users":[{"user":"a","password":$scrypt$ln=15-s3cr3t}]}`,
  };
  const read = (p: string) => files[p];
  const config = (args: string[]) => loadConfig({ args, env: () => undefined, readFile: read });
  for (
    const [what, run] of [
      ["config file", () => config(["--config", "relayr.json"])],
      ["users file", () => authConfigFrom(config(["--users", "users.json"]).config, read)],
    ] as const
  ) {
    assert.throws(run, (e: Error) => {
      assert.match(e.message, /is not JSON/, what);
      assert.ok(!/s3cr3t|scrypt/.test(e.message), `${what}: ${e.message}`);
      return true;
    });
  }
  const frames: Frame[] = [];
  new Parser().push(new TextEncoder().encode(`CONNECT {"pass":s3cr3t}\r\n`), frames);
  const err = frames[0] as { op: string; message: string };
  assert.equal(err.op, "ERR");
  assert.ok(!err.message.includes("s3cr3t"), err.message);
  assert.equal(
    jsonErrorText(`JSON Parse error: Unrecognized token 's'`),
    "JSON Parse error: Unrecognized token '?'",
  );
  assert.equal(
    jsonErrorText(`Expected ',' or '}' after property value`),
    `Expected ',' or '}' after property value`,
  );
});

for (const via of ["CONNECT", "HTTP Basic"] as const) {
  Deno.test(`failed logins: a burst of parallel logins from one address is checked a few at a time, so its failures count before the rest (${via})`, async () => {
    // Before: failures were recorded only when a check ended, so a burst of
    // parallel logins from one address all passed the backlog test and
    // were all checked (a scrypt each: CPU for the guesser, guesses at once).
    const clock = new FakeClock();
    const users = parseUsers([{ user: "alice", password: GOOD_HASH }], "f");
    const auth = new Authenticator({ token: undefined, users }, clock);
    const ctx = { nonce: "n", remoteAddr: "10.0.0.66:1" };
    const login = (pass: string, addr: string) =>
      via === "CONNECT"
        ? auth.authenticate({ user: "alice", pass }, { ...ctx, remoteAddr: `${addr}:1` })
        : auth.httpPrincipal(`Basic ${btoa(`alice:${pass}`)}`, addr);
    const burst = 60;
    const all = Array.from({ length: burst }, (_, i) => login(`guess-${i}`, "10.0.0.66"));
    for (let i = 0; i < 10_000 && auth.stats().failures < burst; i++) {
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(auth.stats().failures, burst, "every login answered or waiting out its delay");
    const checked = burst - auth.stats().lockouts;
    assert.ok(checked < 30, `only until the backlog filled: ${checked} checked`);
    auth.close();
    assert.deepEqual(new Set(await Promise.all(all)), new Set([undefined]));
    assert.equal((await login("pw-secret-1", "10.0.0.67"))?.user, "alice", "another address");
  });
}

Deno.test("users file: docs/SECURITY.md's example loads as written", () => {
  const doc = Deno.readTextFileSync(new URL("../../docs/SECURITY.md", import.meta.url));
  const from = doc.indexOf("```json", doc.indexOf("## An example users file")) + "```json".length;
  const table = parseUsers(JSON.parse(doc.slice(from, doc.indexOf("```", from))), "SECURITY.md");
  assert.deepEqual([...table.byName.keys()], [
    "orders-service",
    "billing",
    "edge-gateway",
    "prometheus",
  ]);
});
