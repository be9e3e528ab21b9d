/**
 * The Bun adapter (src/runtime/bun.ts) under Bun itself: runs
 * tests/bun_adapter_check.ts with `bun` and asserts each of its checks.
 * Skipped, with the reason printed, when `bun` is not on PATH.
 */
import assert from "node:assert/strict";
import { bunVersion } from "./child.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("bun_test: skipped, bun is not on PATH");

Deno.test({
  name: "bun adapter: sockets, backpressure, close, HTTP and process facts under Bun",
  ignore: bun === undefined,
  async fn() {
    const child = new Deno.Command("bun", {
      args: ["tests/bun_adapter_check.ts", "one", "two"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const out = await child.output();
    clearTimeout(timer);
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `bun exited ${out.code}: ${stderr}`);
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.at(-1), { done: true }, "the check script ran to its end");
    const checks = lines.slice(0, -1) as { name: string; ok: boolean; detail: string }[];
    assert.ok(checks.length >= 8, `${checks.length} checks ran`);
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
    const facts = checks.find((c) => c.name.startsWith("name, version"))!;
    assert.ok(facts.detail.includes('args=["one","two"]'), facts.detail);
  },
});
