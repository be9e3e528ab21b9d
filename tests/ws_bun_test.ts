/**
 * The WebSocket transport under Bun: runs tests/ws_bun_check.ts with `bun`
 * (a broker on the Bun adapter, Bun's WebSocket and the client SDK over
 * ws://, and wss:// with openssl-made certificates) and asserts each of its checks. Skipped, saying so, without `bun`.
 */
import assert from "node:assert/strict";
import { makeCerts } from "../bench/tls_certs.ts";
import { bunVersion, runBunChecks } from "./child.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("ws_bun_test: skipped, bun is not on PATH");

Deno.test({
  name: "ws under Bun: framing, limits, origin, kept bytes and the client SDK",
  ignore: bun === undefined,
  async fn() {
    const certs = await makeCerts();
    let checks;
    try {
      checks = await runBunChecks(
        "./ws_bun_check.ts",
        [certs.serverCert, certs.serverKey, certs.ca],
        60_000,
      );
    } finally {
      certs.remove();
    }
    assert.equal(checks.length, 7, `${checks.length} checks ran`);
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
  },
});
