/**
 * The broker as a real child process: `deno task start`-style startup with
 * flags and env vars, and graceful shutdown on SIGTERM (stop accepting,
 * flush, close, exit 0).
 */
import assert from "node:assert/strict";
import { freePort } from "../client_helpers.ts";
import { ownStderr, RawClient } from "../helpers.ts";

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listening on ${port}`);
}

Deno.test("process: SIGTERM flushes clients, closes them with SHUTTING_DOWN and exits 0", async () => {
  const port = freePort();
  // Never the default ./data or ports: the README's `deno task start` may be running beside the tests.
  const dir = Deno.makeTempDirSync({ prefix: "relayr-sigterm-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "serve",
      "--host",
      "127.0.0.1",
      "--no-http",
      "--no-grpc",
      "--data-dir",
      dir,
    ],
    env: { RELAYR_PORT: String(port) },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await waitForPort(port);
    const sub = await RawClient.connect(port);
    await sub.send("SUB topic:bye sub_id:s\r\n");
    assert.equal(await sub.line(), "OK");
    const pub = await RawClient.connect(port);
    let batch = 'CONNECT {"verbose":false}\r\n';
    for (let i = 0; i < 1000; i++) batch += `PUB topic:bye 4\r\n${String(i).padStart(4, "0")}\r\n`;
    await pub.send(batch + "PING\r\n");
    assert.equal(await pub.line(), "PONG");
    child.kill("SIGTERM");
    assert.equal(
      (await sub.msgs(1000)).length,
      1000,
      "everything published before SIGTERM was flushed",
    );
    assert.match(await sub.line(), /^ERR SHUTTING_DOWN /);
    assert.ok(await sub.closedByServer());
    await sub.close();
    await pub.close();
    const status = await child.status;
    assert.equal(status.code, 0);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }), "no longer accepting");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    const out = await child.output().catch(() => undefined);
    void out;
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("process: a port in use is one line on stderr and exit code 2, on Deno and Bun", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = String((taken.addr as Deno.NetAddr).port);
  try {
    const runtimes: [string, string[]][] = [
      [Deno.execPath(), ["run", "-A", "main.ts"]],
      ["bun", ["main.ts"]],
    ];
    const cases: [string[], string][] = [
      [["--port", busy, "--no-http", "--no-grpc"], "--port"],
      [["--port", "0", "--http-port", busy, "--no-grpc"], "--http-port"],
      [["--port", "0", "--no-http", "--grpc-port", busy], "--grpc-port"],
    ];
    for (const [exe, pre] of runtimes) {
      for (const [flags, named] of cases) {
        const out = await new Deno.Command(exe, {
          args: [...pre, "serve", "--host", "127.0.0.1", "--memory", ...flags],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const err = ownStderr(new TextDecoder().decode(out.stderr));
        const what = `${exe} ${flags.join(" ")}`;
        assert.equal(out.code, 2, `${what}: ${err}`);
        assert.equal(err.split("\n").length, 1, `${what}: one line, no stack trace: ${err}`);
        assert.equal(
          err,
          `relayr: cannot listen on 127.0.0.1:${busy} (${named}): the address is in use ` +
            "(is another broker running? choose another port)",
        );
      }
    }
  } finally {
    taken.close();
  }
});

Deno.test("process: bad flags are one clear line and exit code 2; --help lists every setting", async () => {
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "serve", "--port", "99999"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(bad.code, 2);
  const err = ownStderr(new TextDecoder().decode(bad.stderr));
  assert.equal(err.split("\n").length, 1, err);
  assert.match(err, /--port must be an integer from 0 to 65535/);
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "serve", "--help"],
    stdout: "piped",
  }).output();
  assert.equal(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  for (
    const flag of ["--port", "--max-payload", "--queue-overflow", "--slow-consumer", "--log-format"]
  ) {
    assert.ok(text.includes(flag), flag);
  }
});

/** Runs a command that should exit by itself; one still running after `ms` is killed and fails. */
async function exitsWithin(
  cmd: Deno.Command,
  ms: number,
): Promise<{ code: number; stderr: string }> {
  const child = cmd.spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), ms));
  const first = await Promise.race([child.status, late]);
  clearTimeout(timer);
  if (first === "late") child.kill("SIGKILL");
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  return {
    code: first === "late" ? -1 : out.code,
    stderr: first === "late" ? "still running" : stderr,
  };
}

/** `deno task start`'s permissions (no --allow-run: the lock cannot probe other pids there). */
const START_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];

Deno.test("process: one broker per data dir under every runtime and permission set; kill -9 frees it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "relayr-lock-" });
  const runtimes: [string, string[]][] = [
    [Deno.execPath(), ["run", ...START_PERMISSIONS, "main.ts"]],
    [Deno.execPath(), ["run", "-A", "main.ts"]],
    ["bun", ["main.ts"]],
  ];
  const command = ([exe, pre]: [string, string[]], port: number) =>
    new Deno.Command(exe, {
      args: [...pre, "serve", "--host", "127.0.0.1", "--port", String(port)]
        .concat(["--no-http", "--no-grpc", "--data-dir", dir]),
      stdout: "piped",
      stderr: "piped",
    });
  const children: Deno.ChildProcess[] = [];
  try {
    for (const holder of runtimes) {
      const port = freePort();
      const first = command(holder, port).spawn();
      children.push(first);
      await waitForPort(port);
      for (const other of runtimes) {
        const second = await exitsWithin(command(other, freePort()), 10_000);
        const what = `${other.join(" ")} beside ${holder.join(" ")}: ${second.stderr}`;
        assert.equal(second.code, 2, what);
        assert.match(second.stderr, /held by the running process \d+: one broker per data dir/);
      }
      // A refused broker must not have removed the holder's lock on its way out.
      const again = await exitsWithin(command(runtimes[0], freePort()), 10_000);
      assert.equal(again.code, 2, "the lock still holds after refused starts");
      first.kill("SIGKILL");
      await first.status;
      await first.output().catch(() => {});
    }
    const port = freePort();
    const last = command(runtimes[0], port).spawn();
    children.push(last);
    await waitForPort(port);
    last.kill("SIGTERM");
    assert.equal((await last.status).code, 0, "taken over after kill -9");
    await last.output().catch(() => {});
  } finally {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* exited */ }
      await c.output().catch(() => {});
    }
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("process: the restart log says what was recovered, queues and declared topics apart", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "relayr-recovered-" });
  const serve = (port: number) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "serve", "--host", "127.0.0.1", "--port", String(port)]
        .concat(["--no-http", "--no-grpc", "--data-dir", dir, "--log-format", "text"]),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  try {
    const port = freePort();
    const first = serve(port);
    await waitForPort(port);
    const c = await RawClient.connect(port);
    await c.send(
      'CONNECT {"verbose":false}\r\nDECLARE topic:ev retain_messages:100\r\n' +
        "PUB topic:ev 2\r\nhi\r\nPUB topic:ev 2\r\nho\r\nPUB queue:a 1\r\nx\r\n" +
        "PUB queue:b 1\r\ny\r\nPUB queue:b 1\r\nz\r\nPING\r\n",
    );
    assert.equal(await c.line(), "PONG");
    await c.close();
    first.kill("SIGTERM");
    assert.equal((await first.output()).code, 0);
    const port2 = freePort();
    const second = serve(port2);
    await waitForPort(port2);
    second.kill("SIGTERM");
    const out = await second.output();
    assert.equal(out.code, 0);
    const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.match(
      log,
      /recovered 3 messages in 2 queues and 2 retained messages in 1 declared topics, from \d+ records/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("process: an unusable data dir or config file is one line on stderr and exit code 2", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "relayr-startup-" });
  try {
    const file = `${dir}/not-a-dir`;
    Deno.writeTextFileSync(file, "x");
    Deno.writeTextFileSync(`${dir}/bad.json`, "{bad");
    const cases: [string[], RegExp][] = [
      [["--data-dir", file], /^relayr: cannot open --data-dir ".*not-a-dir": ENOTDIR/],
      [
        ["--memory", "--config", `${dir}/bad.json`],
        /^relayr: config file ".*bad\.json" is not JSON/,
      ],
      [["--memory", "--config", `${dir}/none.json`], /^relayr: cannot read config file/],
    ];
    for (const [flags, expected] of cases) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "main.ts",
          "serve",
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--no-http",
          "--no-grpc",
        ]
          .concat(flags),
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = ownStderr(new TextDecoder().decode(out.stderr));
      assert.equal(out.code, 2, `${flags.join(" ")}: ${err}`);
      assert.equal(err.split("\n").length, 1, `one line: ${err}`);
      assert.match(err, expected);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
