/**
 * A plain cluster port (no link TLS, no secret) dialled by what is not a
 * node of its kind: a node with link TLS (its ClientHello), an HTTP client.
 * Each such connection is refused at its first byte, counted, and logged at
 * most once a second per peer host, never with the bytes it sent; a peer's
 * link works beside them.
 */
import assert from "node:assert/strict";
import { NotClusterLineError } from "../../src/cluster/mod.ts";
import { CLUSTER_AUTH_LOG_INTERVAL_MS } from "../../src/config/mod.ts";
import { linkOnFreePort } from "./cluster_helpers.ts";
import { waitFor } from "../helpers.ts";

const enc = new TextEncoder();

/** A TLS client's handshake against the plain port: it fails (the port closes on its ClientHello). */
async function tlsDial(port: number): Promise<void> {
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port });
  try {
    await assert.rejects(conn.handshake(), "a plain port cannot complete a TLS handshake");
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

Deno.test("cluster port: TLS handshakes on a plain port are refused, counted, logged once a second without their bytes", async () => {
  const logs: string[] = [];
  const delivered: string[] = [];
  const { link, port } = linkOnFreePort(delivered, logs);
  const open: Deno.Conn[] = [];
  try {
    // A TLS node redials every 200 ms: here as fast as it can, until a second line is due.
    const t0 = Date.now();
    let dials = 0;
    while (logs.length < 2 && dials < 20_000 && Date.now() - t0 < 10_000) {
      await tlsDial(port);
      dials++;
      await waitFor(() => link.totals().firstLineRefused === dials, 5_000, `refusal ${dials}`);
    }
    const elapsed = Date.now() - t0;
    assert.equal(logs.length, 2, `two lines (${dials} dials in ${elapsed} ms)`);
    assert.ok(dials > 2, `more refusals (${dials}) than lines`);
    assert.ok(elapsed >= CLUSTER_AUTH_LOG_INTERVAL_MS, "the second line only a second later");
    for (const line of logs) {
      assert.match(line, /^cluster connection from 127\.0\.0\.1:\d+ refused: a TLS handshake/);
      assert.match(line, /^[\x20-\x7e]*$/, `no raw bytes in ${JSON.stringify(line)}`);
    }
    assert.match(logs[1], new RegExp(`\\((${dials - 1}) refusals from 127\\.0\\.0\\.1 since`));

    // Not TLS, not a cluster line either: refused by its first line, named by an escaped prefix.
    const http = await Deno.connect({ hostname: "127.0.0.1", port: port });
    open.push(http);
    await http.write(enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.equal(await http.read(new Uint8Array(16)), null, "closed");
    assert.equal(link.totals().firstLineRefused, dials + 1);

    // A peer's link beside them works.
    const peer = await Deno.connect({ hostname: "127.0.0.1", port: port });
    open.push(peer);
    await peer.write(enc.encode("HELLO b\r\nMSG topic:t 0 2\r\nhi\r\n"));
    await waitFor(() => delivered.length === 1, 5_000, "the peer's message");
    assert.equal(link.totals().firstLineRefused, dials + 1, "the peer is no refusal");
  } finally {
    for (const c of open) c.close();
    await link.close();
  }
});

Deno.test("NotClusterLineError names a TLS handshake, or at most a short escaped prefix", () => {
  const hello = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x0a]);
  assert.match(new NotClusterLineError(hello).message, /^a TLS handshake, not a cluster line/);
  const http = new NotClusterLineError(enc.encode("GET /index.html HTTP/1.1"));
  assert.equal(http.message, `not a cluster line (starts "GET /index.html "...)`);
  const bin = new NotClusterLineError(new Uint8Array([0x00, 0x41, 0x22, 0x5c, 0xff, 0x0a]));
  assert.equal(bin.message, 'not a cluster line (starts "\\x00A\\x22\\x5c\\xff\\x0a")');
  assert.ok(bin instanceof SyntaxError);
});
