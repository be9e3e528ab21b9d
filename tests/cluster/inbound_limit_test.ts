/**
 * The cluster port under connections that never speak: at most
 * `CLUSTER_INBOUND_PENDING_MAX` wait for their first line at once; more are
 * closed on arrival and counted, and a peer's link works again once they go.
 */
import assert from "node:assert/strict";
import { CLUSTER_INBOUND_PENDING_MAX } from "../../src/config/mod.ts";
import { linkOnFreePort } from "./cluster_helpers.ts";
import { waitFor } from "../helpers.ts";

Deno.test("cluster port: connections that never send a first line are bounded; more are closed and counted", async () => {
  const delivered: string[] = [];
  const { link, port } = linkOnFreePort(delivered);
  const silent: Deno.Conn[] = [];
  try {
    for (let i = 0; i < CLUSTER_INBOUND_PENDING_MAX; i++) {
      silent.push(await Deno.connect({ hostname: "127.0.0.1", port: port }));
    }
    // One more: closed at once (a read sees the end), and counted.
    const extra = await Deno.connect({ hostname: "127.0.0.1", port: port });
    // (Without the limit it would wait for a first line: our own timer then ends the read.)
    const give = setTimeout(() => extra.close(), 3_000);
    const n = await extra.read(new Uint8Array(16)).catch(() => "still open");
    clearTimeout(give);
    assert.equal(n, null, "the connection over the limit is closed on arrival");
    try {
      extra.close();
    } catch { /* closed by the timer */ }
    assert.equal(link.totals().inboundRefused, 1);
    // The silent ones go: a peer's link is served again.
    for (const c of silent.splice(0)) c.close();
    await waitFor(() => link.pendingInbound === 0, 5_000, "the silent connections to be gone");
    const peer = await Deno.connect({ hostname: "127.0.0.1", port: port });
    silent.push(peer);
    const frames = "HELLO b\r\nMSG topic:t 0 2\r\nhi\r\n";
    await peer.write(new TextEncoder().encode(frames));
    await waitFor(() => delivered.length === 1, 5_000, "the peer's message");
    assert.deepEqual(delivered, ["topic:t"]);
    assert.equal(link.totals().inboundRefused, 1);
  } finally {
    for (const c of silent) c.close();
    await link.close();
  }
});
