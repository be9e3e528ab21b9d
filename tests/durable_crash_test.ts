/**
 * Declared topics and durable subscriptions across kill -9, with real
 * processes: a broker child (`main.ts serve --data-dir D --fsync always`)
 * gets a declaration, messages and a durable that acks part of them, is
 * killed with SIGKILL and restarted on the same data dir. The durable must
 * resume exactly after its acked position, the retained messages must be
 * replayable with start:first, and the retention limit must still hold.
 */
import assert from "node:assert/strict";
import { withCrashSession } from "./child.ts";
import type { RawClient, ServerFrame } from "./helpers.ts";

const dec = new TextDecoder();
const text = (f: ServerFrame) => dec.decode(f.payload);

async function expect(c: RawClient, line: string, reply: string): Promise<void> {
  await c.send(`${line}\r\n`);
  assert.equal(await c.line(5000), reply, line);
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `m${from + i}`);

Deno.test("durable topic: kill -9 keeps the declaration, the retained messages and the acked position", () =>
  withCrashSession("relayr-durable-", async (s) => {
    const c = await s.connect();
    await expect(c, "DECLARE topic:events retain_messages:8", "OK");
    await expect(c, "SUB topic:events sub_id:d durable:worker start:first prefetch:100", "OK");
    const p = await s.connect();
    const ids: number[] = [];
    for (const body of range(0, 10)) {
      await p.pub("topic:events", body);
      ids.push(Number(/^OK msg_id:(\d+)$/.exec(await p.line(5000))![1]));
    }
    const got = await c.msgs(10);
    assert.deepEqual(got.map(text), range(0, 10));
    // Acks m0-m3 (m2 and m3 out of order); the OK comes once the position is on disk.
    await expect(
      c,
      `ACK msg_id:${ids[0]} msg_id:${ids[1]} msg_id:${ids[3]} msg_id:${ids[2]}`,
      "OK",
    );
    await s.restart();
    const d = await s.connect();
    await expect(d, "SUB topic:events sub_id:d durable:worker", "OK");
    const again = await d.msgs(6, 5000);
    assert.deepEqual(again.map(text), range(4, 10), "exactly after the acked position");
    assert.deepEqual(again.map((f) => Number(f.fields!.msg_id)), ids.slice(4), "same ids");
    await d.quiet(100);

    const r = await s.connect();
    await expect(r, "SUB topic:events sub_id:r start:first", "OK");
    assert.deepEqual((await r.msgs(8, 5000)).map(text), range(2, 10), "retain_messages:8 holds");

    // New ids go on after the recovered ones; both subscriptions get the new message.
    const p2 = await s.connect();
    await p2.pub("topic:events", "after");
    const id = Number(/^OK msg_id:(\d+)$/.exec(await p2.line(5000))![1]);
    assert.ok(id > ids[9]);
    assert.equal(text((await d.msgs(1))[0]), "after");
    assert.equal(text((await r.msgs(1))[0]), "after");
  }));
