/**
 * `ProxyConn`'s writes over a real TCP connection: what its owner gathers
 * while a write is on its way (an ACK line of a client connection's
 * `Upstream`) goes out in the same flush loop, not only when the next
 * command comes.
 */
import assert from "node:assert/strict";
import { ProxyConn } from "../../src/cluster/proxy_conn.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { waitFor } from "../helpers.ts";

Deno.test("ProxyConn: a line gathered while a write is on its way is written by the same flush", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let got = "";
  const serving = (async () => {
    const c = await listener.accept();
    const buf = new Uint8Array(1024);
    const dec = new TextDecoder();
    try {
      for (let n = await c.read(buf); n !== null; n = await c.read(buf)) {
        got += dec.decode(buf.subarray(0, n));
      }
    } finally {
      c.close();
    }
  })();
  // The owner gathers one line at a time and hands it over when a flush asks (as Upstream's ACKs).
  let gathered: string | undefined;
  const link: ProxyConn = new ProxyConn(
    "n9",
    () => denoRuntime.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    {
      leader: "the test's leader",
      received: () => undefined,
      flushing: () => {
        if (gathered !== undefined) link.out.text(gathered);
        gathered = undefined;
      },
      ended: () => {},
    },
  );
  try {
    await waitFor(() => got === "PROXY n9\r\n", 5000, "the first line");
    gathered = "ACK msg_id:1\r\n";
    link.flushSoon();
    await new Promise<void>((r) => queueMicrotask(r)); // the flush took the line, its write waits
    gathered = "ACK msg_id:2\r\n";
    link.flushSoon(); // finds the flush running
    await waitFor(() => got.endsWith("ACK msg_id:2\r\n"), 5000, "the second line");
    assert.equal(got, "PROXY n9\r\nACK msg_id:1\r\nACK msg_id:2\r\n");
  } finally {
    link.fail("the test ends");
    await link.done;
    listener.close();
    await serving;
  }
});
