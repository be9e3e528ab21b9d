/**
 * The Bun adapter (src/runtime/bun.ts) under Bun itself: runs
 * tests/bun_adapter_check.ts with `bun` and asserts each of its checks.
 * Skipped, with the reason printed, when `bun` is not on PATH.
 */
import assert from "node:assert/strict";
import { bunVersion, runBunChecks } from "./child.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("bun_test: skipped, bun is not on PATH");

Deno.test({
  name: "bun adapter: sockets, backpressure, close, HTTP and process facts under Bun",
  ignore: bun === undefined,
  async fn() {
    const checks = await runBunChecks("./bun_adapter_check.ts", ["one", "two"]);
    assert.ok(checks.length >= 8, `${checks.length} checks ran`);
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
    const facts = checks.find((c) => c.name.startsWith("name, version"))!;
    assert.ok(facts.detail.includes('args=["one","two"]'), facts.detail);
  },
});
