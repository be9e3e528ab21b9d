/**
 * The client SDK under Bun: runs tests/client_bun_check.ts with `bun`
 * against a broker child process. Skipped, with the reason printed, when
 * `bun` is not on PATH.
 */
import assert from "node:assert/strict";
import { BrokerProcess } from "./client_helpers.ts";

async function hasBun(): Promise<boolean> {
  try {
    return (await new Deno.Command("bun", { args: ["--version"], stdout: "null", stderr: "null" })
      .output())
      .success;
  } catch {
    return false;
  }
}

const bun = await hasBun();
if (!bun) console.log("client_bun_test: skipped, bun is not on PATH");

Deno.test({
  name:
    "client SDK under Bun: pub/sub, queue acks, request/reply, codecs, scheduled and deduplicated publishes, drain",
  ignore: !bun,
  async fn() {
    const broker = await BrokerProcess.start();
    try {
      const child = new Deno.Command("bun", {
        args: [new URL("./client_bun_check.ts", import.meta.url).pathname, broker.address],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const out = await child.output();
      clearTimeout(timer);
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, `bun exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
      const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(lines.at(-1), { done: true });
      const checks = lines.slice(0, -1) as { name: string; ok: boolean; detail: string }[];
      assert.equal(checks.length, 8);
      for (const c of checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);
    } finally {
      await broker.stop();
    }
  },
});
