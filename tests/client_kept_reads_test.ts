/**
 * Messages the SDK delivered keep their bytes while it reads on (Deno; the
 * same check runs under Bun in tests/client_bun_check.ts): a subscriber keeps
 * every one of ~8 MiB of mixed-size messages, each checked as it came and
 * all again at the end, through a real broker process and real sockets.
 */
import assert from "node:assert/strict";
import { BrokerProcess } from "./client_helpers.ts";
import { keptMessages } from "./client_kept_reads.ts";

Deno.test("client reads: every kept message keeps its bytes while 8 MiB more are read", async () => {
  const broker = await BrokerProcess.start();
  try {
    const got = await keptMessages(broker.address, 8);
    assert.deepEqual(got.problems, []);
    assert.ok(got.messages > 500, `${got.messages} messages`);
  } finally {
    await broker.stop();
  }
});
