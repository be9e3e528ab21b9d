/**
 * A bulk publisher's reads on both runtimes' read paths: the broker reads a
 * bulk sender's socket into a buffer it reuses (Deno's `Conn.read`, Bun's own
 * reads of the socket, src/runtime/read_buffer.ts), so a message that still
 * points into a read (a queue delivery in flight) must keep its bytes while
 * megabytes more are read behind it. The broker runs in this process (Deno)
 * and as `bun main.ts` (skipped, with the reason printed, without `bun`).
 */
import assert from "node:assert/strict";
import { bunVersion, startServerProcess } from "../child.ts";
import { RawClient, startTestBroker } from "../helpers.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("bulk_reads_test: skipped on Bun, bun is not on PATH");

const enc = new TextEncoder();

/** `count` PUBs of `size` bytes of `fill` to `dest`, as one buffer. */
function pubs(dest: string, size: number, count: number, fill: number): Uint8Array {
  const frame = new Uint8Array([
    ...enc.encode(`PUB ${dest} ${size}\r\n`),
    ...new Uint8Array(size).fill(fill),
    13,
    10,
  ]);
  const out = new Uint8Array(frame.length * count);
  for (let i = 0; i < count; i++) out.set(frame, i * frame.length);
  return out;
}

/**
 * A queue message sent in the middle of 4 MiB of PUBs to a topic nobody reads,
 * in 64 KiB writes (reads of a bulk sender), then NACKed once all is read:
 * its redelivery must carry its own bytes, not the bytes read after it.
 */
async function inFlightAmidBulk(port: number): Promise<void> {
  const consumer = await RawClient.connect(port);
  const pub = await RawClient.connect(port);
  try {
    await consumer.send("SUB queue:held sub_id:s prefetch:10\r\n");
    assert.equal(await consumer.line(), "OK");
    await pub.send('CONNECT {"verbose":false}\r\n');
    const first = "in-flight-".repeat(400); // 4000 B
    const before = pubs("topic:nobody", 4000, 256, 0x61); // ~1 MiB of 'a'
    const held = enc.encode(`PUB queue:held ${first.length}\r\n${first}\r\n`);
    const after = pubs("topic:nobody", 4000, 768, 0x7a); // ~3 MiB of 'z'
    const all = new Uint8Array(before.length + held.length + after.length);
    all.set(before);
    all.set(held, before.length);
    all.set(after, before.length + held.length);
    for (let off = 0; off < all.length; off += 64 * 1024) {
      await pub.send(all.subarray(off, off + 64 * 1024));
    }
    await pub.send("PING\r\n");
    assert.equal(await pub.line(5000), "PONG"); // everything read and handled
    const [m] = await consumer.msgs(1);
    assert.equal(new TextDecoder().decode(m.payload), first);
    await consumer.send(`NACK msg_id:${m.fields!.msg_id}\r\n`);
    const [again] = (await consumer.until((f) => f.line.startsWith("MSG "))).slice(-1);
    assert.equal(again.fields!.msg_id, m.fields!.msg_id);
    assert.equal(new TextDecoder().decode(again.payload), first);
  } finally {
    await pub.close();
    await consumer.close();
  }
}

Deno.test("bulk reads (Deno): a delivery in flight keeps its bytes while 3 MiB more are read", async () => {
  const broker = await startTestBroker();
  try {
    await inFlightAmidBulk(broker.port);
  } finally {
    await broker.stop();
  }
});

Deno.test({
  name: "bulk reads (bun main.ts): a delivery in flight keeps its bytes while 3 MiB more are read",
  ignore: bun === undefined,
  async fn() {
    const server = await startServerProcess("bun", ["main.ts"]);
    try {
      await inFlightAmidBulk(server.port);
    } finally {
      await server.stop("SIGTERM");
    }
  },
});
