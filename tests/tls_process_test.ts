/**
 * TLS with the broker as a child process on Deno and on Bun: every start-up
 * mistake with the TLS files is one line naming the flag and exit code 2;
 * SIGHUP reloads the certificate for new connections while open ones stay;
 * mTLS on Bun's native listener; the CLI against a TLS and an mTLS broker.
 */
import assert from "node:assert/strict";
import { bunVersion, startServerProcess } from "./child.ts";
import { clientTlsArgs, makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";
import { ownStderr } from "./helpers.ts";
import { tlsDial } from "./tls_helpers.ts";

const certs = await makeCerts();
globalThis.addEventListener("unload", () => certs.remove());
const hasBun = (await bunVersion()) !== undefined;
const decoder = new TextDecoder();

const DENO: [string, string[]] = [Deno.execPath(), ["run", "-A", "main.ts"]];
const BUN: [string, string[]] = ["bun", ["main.ts"]];
const RUNTIMES = hasBun ? [DENO, BUN] : [DENO];

async function run(exe: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(exe, { args, env, stdout: "piped", stderr: "piped" }).output();
  return {
    code: out.code,
    out: decoder.decode(out.stdout),
    err: ownStderr(decoder.decode(out.stderr)),
  };
}

Deno.test("tls process: bad TLS files, a taken port: one line naming the flag, exit 2 (Deno and Bun)", async () => {
  const notPem = `${certs.dir}/not-pem.txt`;
  Deno.writeTextFileSync(notPem, "hello\n");
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = String((taken.addr as Deno.NetAddr).port);
  const cases: [string[], RegExp][] = [
    [
      [...serverTlsArgs(certs, true), "--port", busy],
      /^relayr: cannot listen on 127\.0\.0\.1:\d+ \(--port\): the address is in use/,
    ],
    [
      ["--tls-cert", `${certs.dir}/missing.pem`, "--tls-key", certs.serverKey],
      /^relayr: cannot read --tls-cert ".*missing.pem": .*give a PEM file/,
    ],
    [
      ["--tls-cert", certs.serverCert, "--tls-key", certs.clientKey],
      /^relayr: --tls-key ".*" does not belong to the certificate of --tls-cert/,
    ],
    [
      ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-ca", notPem],
      /^relayr: --tls-ca ".*not-pem.txt" holds no PEM certificate/,
    ],
    [
      ["--tls-cert", certs.selfSignedCa, "--tls-key", certs.selfSignedCaKey],
      /^relayr: --tls-cert ".*" is a CA certificate \(CA:TRUE\).*CaUsedAsEndEntity.*Sign a leaf/,
    ],
    [["--tls-cert", certs.serverCert], /^relayr: --tls-cert needs --tls-key/],
    [
      ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-required", "false"],
      /^relayr: --tls-required false is not offered/,
    ],
  ];
  try {
    for (const [exe, pre] of RUNTIMES) {
      for (const [flags, want] of cases) {
        const r = await run(exe, [
          ...pre,
          "serve",
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--memory",
          "--no-http",
          "--no-grpc",
          ...flags,
        ]);
        const what = `${exe} ${flags.join(" ")}`;
        assert.equal(r.code, 2, `${what}: ${r.err}`);
        assert.equal(r.err.split("\n").length, 1, `${what}: one line: ${r.err}`);
        assert.match(r.err, want, what);
        assert.doesNotMatch(r.err, /PRIVATE KEY/, "no key material in the error");
      }
    }
  } finally {
    taken.close();
  }
});

for (const [exe, pre] of RUNTIMES) {
  const rt = exe === "bun" ? "Bun" : "Deno";
  Deno.test(`tls process: SIGHUP reloads the certificate for new connections, open ones stay, HTTPS too (${rt}, TLS and mTLS)`, async () => {
    for (const mtls of [false, true]) {
      const dir = await Deno.makeTempDir({ prefix: "relayr-hup-" });
      const cert = `${dir}/cert.pem`;
      const key = `${dir}/key.pem`;
      Deno.copyFileSync(certs.serverCert, cert);
      Deno.copyFileSync(certs.serverKey, key);
      const ca = mtls ? ["--tls-ca", certs.ca] : [];
      const server = await startServerProcess(exe, [
        ...pre,
        "serve",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        ...ca,
        "--http-tls",
      ]);
      const files = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };
      try {
        const before = await tlsDial(server.port, files);
        assert.equal(before.serverCn, "relayr-1");
        const httpBefore = await tlsDial(server.httpPort, { ca: certs.ca });
        assert.equal(httpBefore.serverCn, "relayr-1", "the HTTPS port");
        httpBefore.close();
        Deno.copyFileSync(certs.serverCert2, cert);
        Deno.copyFileSync(certs.serverKey2, key);
        Deno.kill(server.pid, "SIGHUP");
        const deadline = Date.now() + 10_000;
        while (!/TLS certificate reloaded/.test(server.output())) {
          assert.ok(Date.now() < deadline, `no reload logged:\n${server.output()}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        const after = await tlsDial(server.port, files);
        assert.equal(after.serverCn, "relayr-2", `mtls=${mtls}`);
        const httpAfter = await tlsDial(server.httpPort, { ca: certs.ca });
        assert.equal(httpAfter.serverCn, "relayr-2", "the HTTPS port, restarted on its port");
        httpAfter.close();
        for (const [i, c] of [before, after].entries()) {
          c.send("PING\r\n");
          assert.equal(
            await c.line(),
            "PONG",
            `${i === 0 ? "before" : "after"} mtls=${mtls} ${server.output()}`,
          );
          c.close();
        }
        if (mtls) {
          const wrong = await tlsDial(server.port, { ...files, cert: certs.wrongClientCert });
          wrong.send("PING\r\n");
          assert.equal(
            await wrong.line().catch(() => null),
            null,
            "the CA still applies after reload",
          );
          wrong.close();
        }
      } finally {
        const status = await server.stop();
        Deno.removeSync(dir, { recursive: true });
        assert.equal(status.code, 0, server.output());
        assert.doesNotMatch(server.output(), /PRIVATE KEY/);
      }
    }
  });
}

/** The CLI (`deno run -A main.ts <args>`) as a child process. */
function relayr(args: string[], env: Record<string, string> = {}) {
  return run(Deno.execPath(), ["run", "-A", "main.ts", ...args], env);
}

for (const [exe, pre] of RUNTIMES) {
  const rt = exe === "bun" ? "Bun" : "Deno";
  Deno.test(`tls process: the CLI against an mTLS broker with HTTPS monitoring, flags and env vars (${rt} broker)`, async () => {
    const server = await startServerProcess(exe, [
      ...pre,
      "serve",
      ...serverTlsArgs(certs, true),
      "--http-tls",
    ]);
    const s = `127.0.0.1:${server.port}`;
    try {
      const pub = await relayr(["pub", "-s", s, ...clientTlsArgs(certs), "queue:tls.cli", "hello"]);
      assert.equal(pub.code, 0, pub.err);
      const sub = await relayr(
        ["sub", "-s", `tls://${s}`, "queue:tls.cli", "-n", "1", "--timeout", "5000"],
        {
          RELAYR_TLS_CA: certs.ca,
          RELAYR_TLS_CERT: certs.clientCert,
          RELAYR_TLS_KEY: certs.clientKey,
        },
      );
      assert.equal(sub.code, 0, sub.err);
      assert.match(sub.out, /hello/);
      const noCert = await relayr(["pub", "-s", s, "--tls-ca", certs.ca, "queue:tls.cli", "x"]);
      assert.notEqual(noCert.code, 0, "no client certificate: refused");
      const plain = await relayr(["pub", "-s", s, "queue:tls.cli", "x"]);
      assert.notEqual(plain.code, 0, "plain text: refused");
      // The monitoring port is HTTPS (--http-tls): `relayr stats` with https:// and the CA.
      const https = `https://127.0.0.1:${server.httpPort}`;
      const stats = await relayr(["stats", "--http", https, "--tls-ca", certs.ca, "--compact"]);
      assert.equal(stats.code, 0, stats.err);
      const failures = JSON.parse(stats.out).server.tls_handshake_failures;
      assert.ok(failures >= 2, `the two refused clients were counted: ${failures}`);
      const untrusted = await relayr(["stats", "--http", https]);
      assert.equal(untrusted.code, 3, "without the CA the certificate is not trusted");
    } finally {
      assert.equal((await server.stop()).code, 0, server.output());
    }
  });
}

Deno.test({
  name:
    "tls process: the Bun adapter's TLS under Bun (mTLS, refused certificates, silent sockets, broker and SDK)",
  ignore: !hasBun,
  async fn() {
    const out = await run("bun", ["tests/bun_tls_check.ts", certs.dir]);
    assert.equal(out.code, 0, out.err);
    const lines = out.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.at(-1), { done: true }, out.out);
    const checks = lines.slice(0, -1) as { name: string; ok: boolean; detail: string }[];
    assert.equal(checks.length, 4);
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
  },
});
