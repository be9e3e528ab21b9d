/**
 * WebSockets with TLS on: `wss://` on an HTTPS monitoring port (`--http-tls`)
 * and on `--ws-port` (the listener takes the protocol port's certificate),
 * while a plain-HTTP `/ws` is refused (403), since with TLS on no plain
 * connection carries the protocol. Certificates are made with openssl per run.
 */
import assert from "node:assert/strict";
import { makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";
import { startBroker } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { clientFrame, rawHandshake, readServerFrame, text, writeAll } from "./ws_helpers.ts";

const certs = await makeCerts();
globalThis.addEventListener("unload", () => certs.remove());
const CA = Deno.readTextFileSync(certs.ca);

function start(args: string[]) {
  const { config } = loadConfig({
    args: [
      ...["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--memory", "--no-grpc"],
      ...serverTlsArgs(certs),
      ...args,
    ],
    env: () => undefined,
    readFile: (p) => Deno.readTextFileSync(p),
  });
  return startBroker(denoRuntime, config);
}

/** A wss:// handshake on `port`, then PING -> PONG over it. */
async function pingOverWss(port: number, path: string): Promise<void> {
  const raw = await rawHandshake(port, path, {}, CA);
  try {
    assert.equal(raw.status, 101, raw.head);
    await writeAll(raw.conn, clientFrame(2, "PING\r\n"));
    assert.equal(text((await readServerFrame(raw.conn)).payload), "PONG\r\n");
  } finally {
    raw.conn.close();
  }
}

Deno.test("wss: /ws over --http-tls and --ws-port with the certificate; a plain-HTTP /ws is refused", async () => {
  const https = await start(["--http-tls", "--ws-port", "0"]);
  const plain = await start([]);
  try {
    await pingOverWss(https.http!.port, "/ws");
    await pingOverWss(https.ws!.port, "/");
    const raw = await rawHandshake(plain.http!.port);
    try {
      assert.equal(raw.status, 403, raw.head);
      const body = new Uint8Array(256);
      const n = await raw.conn.read(body) ?? 0;
      assert.match(
        new TextDecoder().decode(body.subarray(0, n)),
        /TLS is on: WebSockets go over wss/,
      );
    } finally {
      raw.conn.close();
    }
    assert.equal(plain.server.totalConnections, 0, "no plain WebSocket got through");
  } finally {
    await https.stop();
    await plain.stop();
  }
});
