import assert from "node:assert/strict";
import { Outbound } from "../../src/server/outbound.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import type { Conn } from "../../src/runtime/mod.ts";

/** A real TCP pair on 127.0.0.1: the server side for the writer, the client side drained. */
async function pair(): Promise<
  { server: Conn; received: () => number; text: () => string; close: () => Promise<void> }
> {
  const listener = denoRuntime.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    denoRuntime.connect({ hostname: "127.0.0.1", port: listener.port }),
    listener.accept(),
  ]);
  listener.close();
  let bytes = 0;
  let text = "";
  const dec = new TextDecoder();
  const drained = (async () => {
    for (;;) {
      const chunk = await client.read!();
      if (chunk === null) return;
      bytes += chunk.length;
      if (text.length < 64 * 1024) text += dec.decode(chunk, { stream: true });
    }
  })();
  return {
    server: server!,
    received: () => bytes,
    text: () => text,
    close: async () => {
      server!.close();
      await drained;
      client.close();
    },
  };
}

const events = {
  onDrain() {},
  onOverflow() {
    throw new Error("no overflow expected");
  },
  onWriteError(err: unknown) {
    throw err;
  },
  beforeWrite() {},
};

Deno.test("outbound: buffers grown by a burst are given back once traffic is light again", async () => {
  const p = await pair();
  const out = new Outbound(p.server, events);
  try {
    assert.equal(out.capacity, 0, "an idle writer holds no buffer");
    const frame = new Uint8Array(16 * 1024).fill(65);
    for (let i = 0; i < 32; i++) out.append(frame); // 512 KiB in one tick: one write
    await out.idle();
    for (let i = 0; i < 32; i++) out.append(frame); // a second burst fills the other buffer
    await out.idle();
    assert.ok(out.capacity >= 1024 * 1024, `after two bursts: ${out.capacity}`);
    // Light traffic: each write fills a sliver of a big buffer, which is then dropped.
    for (let i = 0; i < 4; i++) {
      out.appendAscii("PONG\r\n");
      await out.idle();
    }
    assert.ok(out.capacity <= 2 * 512, `after light writes: ${out.capacity}`);
    out.trim();
    assert.equal(out.capacity, 0, "trimmed when nothing is pending");
    out.appendAscii("PING\r\n");
    out.trim(); // pending: kept
    assert.ok(out.capacity > 0);
    await out.idle();
  } finally {
    out.kill();
    assert.equal(out.capacity, 0, "a killed writer holds no buffer");
    await p.close();
  }
  assert.equal(p.received(), 2 * 32 * 16 * 1024 + 4 * 6 + 6);
});

Deno.test("outbound: a steady stream keeps its buffers (no re-growing per write)", async () => {
  const p = await pair();
  const out = new Outbound(p.server, events);
  try {
    const frame = new Uint8Array(8 * 1024);
    const seen = new Set<number>();
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 16; i++) out.append(frame); // 128 KiB per write
      await out.idle();
      seen.add(out.capacity);
    }
    // Two 128 KiB buffers, reused: the capacity settles and stays.
    assert.equal(out.capacity, 2 * 128 * 1024);
    assert.ok(seen.size <= 3, `capacities seen: ${[...seen]}`);
  } finally {
    out.kill();
    await p.close();
  }
});

Deno.test("outbound: a quiet writer holds no buffer; small buffers pass between writers intact", async () => {
  const a = await pair();
  const b = await pair();
  const outA = new Outbound(a.server, events);
  const outB = new Outbound(b.server, events);
  try {
    let wantA = "";
    let wantB = "";
    for (let i = 0; i < 50; i++) {
      const lineA = `OK a ${i}\r\n`;
      const lineB = `MSG topic:b.${i} sub_id:s ${i}\r\n`;
      outA.appendAscii(lineA);
      wantA += lineA;
      await outA.idle();
      assert.equal(outA.capacity, 0, "written, nothing pending: its buffer went back");
      outB.appendAscii(lineB); // may take the buffer A just gave back
      wantB += lineB;
      if (i % 2 === 0) {
        outA.appendAscii(lineA); // A writes while B's write is in flight
        wantA += lineA;
      }
      await Promise.all([outA.idle(), outB.idle()]);
      assert.equal(outA.capacity + outB.capacity, 0, "both quiet: no buffer held");
    }
    // Each client got exactly its own bytes: a pooled buffer is never shared while written.
    for (let i = 0; i < 100 && (a.text() !== wantA || b.text() !== wantB); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(a.text(), wantA);
    assert.equal(b.text(), wantB);
  } finally {
    outA.kill();
    outB.kill();
    await a.close();
    await b.close();
  }
});
