/**
 * The WebSocket transport under Bun: runs tests/ws_bun_check.ts with `bun`
 * (a broker on the Bun adapter, Bun's WebSocket and the client SDK over
 * ws://) and asserts each of its checks. Skipped, saying so, without `bun`.
 */
import assert from "node:assert/strict";
import { bunVersion } from "./child.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("ws_bun_test: skipped, bun is not on PATH");

Deno.test({
  name: "ws under Bun: framing, limits, origin, kept bytes and the client SDK",
  ignore: bun === undefined,
  async fn() {
    const child = new Deno.Command("bun", {
      args: ["tests/ws_bun_check.ts"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const out = await child.output();
    clearTimeout(timer);
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `bun exited ${out.code}: ${stderr}`);
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.at(-1), { done: true }, "the check script ran to its end");
    const checks = lines.slice(0, -1) as { name: string; ok: boolean; detail: string }[];
    assert.equal(checks.length, 6, `${checks.length} checks ran`);
    for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
  },
});
