/**
 * The client SDK under Bun: runs tests/client_bun_check.ts with `bun`
 * against a broker child process. Skipped, with the reason printed, when
 * `bun` is not on PATH.
 */
import assert from "node:assert/strict";
import { bunVersion, runBunChecks } from "./child.ts";
import { BrokerProcess } from "./client_helpers.ts";

const bun = await bunVersion() !== undefined;
if (!bun) console.log("client_bun_test: skipped, bun is not on PATH");

Deno.test({
  name:
    "client SDK under Bun: pub/sub, queue acks, request/reply, codecs, scheduled and deduplicated publishes, kept messages, drain",
  ignore: !bun,
  async fn() {
    const broker = await BrokerProcess.start();
    try {
      const checks = await runBunChecks("./client_bun_check.ts", [broker.address]);
      assert.equal(checks.length, 9);
      for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
    } finally {
      await broker.stop();
    }
  },
});
