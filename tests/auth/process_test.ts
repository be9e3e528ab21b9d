/**
 * Authentication end to end with the broker as a child process: the CLI
 * (token, password on stdin, key file, env vars, refused credentials), the
 * HTTP endpoints with and without credentials, SIGHUP reloading the users
 * (a removed user revoked, a bad file keeping the old users), start-up
 * refusing a bad users file, `relayr passwd` and `relayr keygen`, and last a
 * grep of everything the broker logged for every secret the run used.
 */
import assert from "node:assert/strict";
import { keyFileText, parsePasswordHash, verifyPassword } from "../../src/auth/mod.ts";
import { AuthRevokedError, connect, type StatusEvent } from "../../src/client/mod.ts";
import { startServerProcess } from "../child.ts";
import { waitFor } from "../helpers.ts";
import { MAIN, makeUsers, relayr, SECRETS, serveArgs, sign, writeUsers } from "./fixtures.ts";

Deno.test("auth end to end: CLI, HTTP, SIGHUP reload, and no secret in the logs", async (t) => {
  const { users, bob } = await makeUsers();
  const path = await writeUsers(users);
  const dir = await Deno.makeTempDir();
  const keyFile = `${dir}/bob.key`;
  await Deno.writeTextFile(keyFile, keyFileText(bob));
  const broker = await startServerProcess(Deno.execPath(), [
    "run",
    "-A",
    MAIN,
    "serve",
    ...serveArgs(path),
  ]);
  const s = ["-s", `127.0.0.1:${broker.port}`];
  const http = `http://127.0.0.1:${broker.httpPort}`;
  const sigs: string[] = [];
  try {
    await t.step("CLI: token, password on stdin, key file, env vars", async () => {
      let r = await relayr(["pub", "queue:cli", "one", ...s, "--token", SECRETS.token]);
      assert.equal(r.code, 0, r.stderr);
      r = await relayr(["pub", "queue:cli", "two", ...s, "--user", "alice", "--password-stdin"], {
        stdin: `${SECRETS.alicePass}\n`,
      });
      assert.equal(r.code, 0, r.stderr);
      r = await relayr(["sub", "queue:cli", "-n", "2", "--raw", ...s, "--key", keyFile]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split("\n"), ["one", "two"]);
      r = await relayr(["pub", "queue:cli", "three", ...s], {
        env: { RELAYR_USER: "alice", RELAYR_PASSWORD: SECRETS.alicePass },
      });
      assert.equal(r.code, 0, r.stderr);
      r = await relayr(["stats", "--http", `127.0.0.1:${broker.httpPort}`, "--compact"], {
        env: { RELAYR_TOKEN: SECRETS.token },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).server.auth.users, 4);
    });

    await t.step(
      "CLI: refused credentials are one line and exit 5; a password is never a flag",
      async () => {
        for (const args of [["--token", "wrong"], ["--user", "alice"]]) {
          const r = await relayr(["pub", "queue:cli", "x", ...s, ...args]);
          assert.equal(r.code, 5, r.stderr);
          assert.match(r.stderr.trim(), /^relayr pub: .*AUTH_FAILED|authentication failed/);
          assert.equal(r.stderr.trim().split("\n").length, 1);
        }
        const r = await relayr(["pub", "queue:cli", "x", ...s, "--password", "x"]);
        assert.equal(r.code, 2);
      },
    );

    await t.step(
      "HTTP: probes open, the rest needs the token or a monitor's password",
      async () => {
        const get = async (p: string, auth?: string) => {
          const res = await fetch(`${http}${p}`, auth ? { headers: { authorization: auth } } : {});
          await res.body?.cancel();
          return res.status;
        };
        const basic = (u: string, p: string) =>
          `Basic ${new TextEncoder().encode(`${u}:${p}`).toBase64()}`;
        assert.equal(await get("/healthz"), 200);
        assert.equal(await get("/readyz"), 200);
        assert.equal(await get("/metrics"), 401);
        assert.equal(await get("/api/stats"), 401);
        assert.equal(await get("/api/stats", "Bearer wrong"), 401);
        assert.equal(await get("/metrics", `Bearer ${SECRETS.token}`), 200);
        assert.equal(await get("/api/stats", basic("mon", SECRETS.monitorPass)), 200);
        assert.equal(await get("/api/stats", basic("alice", SECRETS.alicePass)), 403);
        const res = await fetch(`${http}/metrics`, {
          headers: { authorization: `Bearer ${SECRETS.token}` },
        });
        const text = await res.text();
        assert.match(text, /^relayr_auth_failures_total [1-9]/m);
        assert.match(text, /^relayr_auth_failed_addresses [1-9]/m);
      },
    );

    await t.step(
      "SIGHUP: a removed user is revoked, the others stay; a bad file keeps the old users",
      async () => {
        const events: StatusEvent[] = [];
        const alice = await connect(`127.0.0.1:${broker.port}`, {
          user: "alice",
          pass: SECRETS.alicePass,
          onStatus: (e) => events.push(e),
        });
        const bobC = await connect(`127.0.0.1:${broker.port}`, { keyFile });
        try {
          await writeUsers(users.filter((u) => u.user !== "alice"), path);
          Deno.kill(broker.pid, "SIGHUP");
          await waitFor(
            () => events.some((e) => e.type === "error" && e.error instanceof AuthRevokedError),
            5000,
            "alice revoked",
          );
          await waitFor(
            () => broker.output().includes("1 connections revoked"),
            5000,
            "reload log",
          );
          assert.match(await bobC.publish("queue:after", "x"), /^\d+$/);
          await Deno.writeTextFile(
            path,
            `{"users":[{"user":"x","password":"${SECRETS.alicePass}"}]}`,
          );
          Deno.kill(broker.pid, "SIGHUP");
          await waitFor(
            () => broker.output().includes("SIGHUP: nothing reloaded"),
            5000,
            "bad reload logged",
          );
          assert.match(await bobC.publish("queue:after", "y"), /^\d+$/);
          sigs.push(await sign(bob, "unused")); // a signature shape to grep for, too
        } finally {
          await alice.close();
          await bobC.close();
        }
      },
    );
  } finally {
    await broker.stop();
    await Deno.remove(path);
    await Deno.remove(dir, { recursive: true });
  }
  await t.step("the logs hold no credential", () => {
    const log = broker.output();
    assert.match(log, /AUTH_FAILED/, "failures were logged (without secrets)");
    const secrets = [
      ...Object.values(SECRETS),
      ...users.map((u) => u.password).filter((p) => p !== undefined) as string[],
      bob.private_key,
      ...sigs,
    ];
    for (const secret of secrets) {
      assert.ok(!log.includes(secret), `a secret in the log: ${secret.slice(0, 4)}…`);
    }
  });
});

Deno.test("auth start-up: a bad users file is one line and exit 2, naming the user and field", async () => {
  const path = await writeUsers([{ user: "carol", password: SECRETS.alicePass }]);
  try {
    const r = await relayr(["serve", "--memory", "--no-http", "--port", "0", "--users", path]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr.trim(),
      /^relayr: users file ".*": user "carol": password must be a PHC string/,
    );
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.ok(!r.stderr.includes(SECRETS.alicePass));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("relayr passwd and keygen", async () => {
  const r = await relayr(["passwd", "--cost", "10"], { stdin: "s3cret-pw\n" });
  assert.equal(r.code, 0, r.stderr);
  const h = parsePasswordHash(r.stdout.trim().split("\n").at(-1)!);
  assert.ok(typeof h !== "string", r.stdout);
  assert.equal(await verifyPassword("s3cret-pw", h), true);
  const dir = await Deno.makeTempDir();
  try {
    const k = await relayr(["keygen", `${dir}/me.key`]);
    assert.equal(k.code, 0, k.stderr);
    const file = JSON.parse(await Deno.readTextFile(`${dir}/me.key`));
    assert.equal(file.type, "ed25519");
    assert.equal(k.stdout.trim(), file.public_key);
    assert.equal((await Deno.stat(`${dir}/me.key`)).mode! & 0o777, 0o600);
    const again = await relayr(["keygen", `${dir}/me.key`]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /it exists/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relayr passwd from a terminal: asked twice, never echoed (a pty made by script(1))", async (t) => {
  const hasScript = await new Deno.Command("script", { args: ["--version"], stdout: "null" })
    .output().then((o) => o.success, () => false);
  if (!hasScript) return void console.log("skipped: script(1) is not installed");
  await t.step("a terminal session", async () => {
    const child = new Deno.Command("script", {
      args: ["-qec", `${Deno.execPath()} run -A ${MAIN} passwd --cost 10`, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const w = child.stdin.getWriter();
    const out = child.stdout.getReader();
    let text = "";
    const until = async (what: RegExp) => {
      for (let i = 0; i < 200 && !what.test(text); i++) {
        const r = await out.read();
        if (r.done) break;
        text += new TextDecoder().decode(r.value);
      }
      assert.match(text, what);
    };
    await until(/Password \(not shown\):/);
    await w.write(new TextEncoder().encode("tty-pw-1\r"));
    await until(/Again:/);
    await w.write(new TextEncoder().encode("tty-pw-1\r"));
    await until(/\$scrypt\$\S+/);
    await w.close();
    for (let r = await out.read(); !r.done; r = await out.read()) {
      text += new TextDecoder().decode(r.value);
    }
    await child.stderr.cancel();
    assert.equal((await child.status).code, 0);
    assert.ok(!text.includes("tty-pw-1"), "the password was echoed");
    const h = parsePasswordHash(text.match(/\$scrypt\$\S+/)![0]);
    assert.ok(typeof h !== "string");
    assert.equal(await verifyPassword("tty-pw-1", h), true);
  });
});
