/**
 * The gRPC port under `--tls-cert` (the TCP port's certificate) and with
 * `--tls-ca` (mTLS), on Bun child processes (a Deno broker refuses gRPC over
 * TLS, checked here too): a grpc-js client over TLS, a plaintext one
 * refused, and a `cert_subject` user authenticated by its certificate alone.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";
import { ConfigError } from "../src/config/mod.ts";
import { bunVersion, startServerProcess } from "./child.ts";
import { GrpcClient } from "./grpc_helpers.ts";
import { tlsDial } from "./tls_helpers.ts";
import { startTestBroker } from "./helpers.ts";
import { writeUsers } from "./auth/fixtures.ts";

const bun = await bunVersion();
if (bun === undefined) {
  console.log("grpc_tls_test: skipped (but the Deno refusal), bun is not on PATH");
}
const certs = await makeCerts();
globalThis.addEventListener("unload", () => certs.remove());

const encoder = new TextEncoder();
const read = (p: string) => Buffer.from(Deno.readFileSync(p));
const body = encoder.encode("x");

function tlsClient(port: number, withClientCert: boolean): GrpcClient {
  const creds = grpc.credentials.createSsl(
    read(certs.ca),
    withClientCert ? read(certs.clientKey) : null,
    withClientCert ? read(certs.clientCert) : null,
  );
  return new GrpcClient(port, {}, creds);
}

Deno.test("grpc tls: a Deno broker refuses gRPC over TLS at start (its node:http2 would serve it in plaintext)", async () => {
  await assert.rejects(
    startTestBroker(["--grpc-port", "0", ...serverTlsArgs(certs)]),
    (e) => e instanceof ConfigError && /gRPC over TLS needs the Bun runtime/.test(e.message),
  );
});

Deno.test({
  name:
    "grpc tls: under Bun the gRPC port serves the TLS certificate; a plaintext client gets nowhere",
  ignore: bun === undefined,
  async fn() {
    const s = await startServerProcess("bun", [
      "run",
      "main.ts",
      "serve",
      "--grpc-port",
      "0",
      ...serverTlsArgs(certs),
    ]);
    const c = tlsClient(s.grpcPort!, false);
    try {
      const r = await c.unary<{ msg_id: string }>("Publish", { destination: "queue:t", body });
      assert.match(r.msg_id, /^\d+$/);
      assert.equal(await answersPlainHttp2(s.grpcPort!), false, "no HTTP/2 in the clear");
    } finally {
      c.close();
      await s.stop();
    }
  },
});

/**
 * Whether the port answers a plaintext HTTP/2 preface with an HTTP/2 frame
 * (a raw socket, not a grpc-js client: a refused grpc-js channel leaves its
 * reconnect timer behind).
 */
async function answersPlainHttp2(port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const settings = new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    await conn.write(
      new Uint8Array([...encoder.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), ...settings]),
    );
    const buf = new Uint8Array(64);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<null>((r) => timer = setTimeout(() => r(null), 2000)),
    ]);
    clearTimeout(timer);
    return n !== null && n >= 9 && buf[3] === 4; // a SETTINGS frame back
  } finally {
    conn.close();
  }
}

Deno.test({
  name:
    "grpc tls: under Bun with --tls-ca a client certificate is required, and its subject authenticates a cert_subject user",
  ignore: bun === undefined,
  async fn() {
    const path = await writeUsers([{ user: "alice", cert_subject: "CN=alice,O=Acme" }]);
    const s = await startServerProcess("bun", [
      ...["run", "main.ts", "serve", "--grpc-port", "0"],
      ...["--auth-token", "tok-x-1", "--users", path, ...serverTlsArgs(certs, true)],
    ]);
    const withCert = tlsClient(s.grpcPort!, true);
    try {
      // No metadata credential: the certificate's subject is the user.
      await withCert.unary("Publish", { destination: "queue:m", body });
      const bare = await tlsDial(s.grpcPort!, { ca: certs.ca });
      try {
        bare.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert.equal(await bare.line(3000), null, "no client certificate: the server hangs up");
      } finally {
        bare.close();
      }
    } finally {
      withCert.close();
      await s.stop();
      await Deno.remove(path);
    }
  },
});
