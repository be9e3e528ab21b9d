/**
 * The publisher ceiling's server (bench/discard.ts) as a child process: it
 * drops what a publisher sends without reading it and still answers the PING
 * that ends it, whole or split across writes, Relayr/NATS and Redis alike.
 * Skipped where it cannot run (not Linux).
 */
import assert from "node:assert/strict";
import { freePort } from "../servers.ts";

const linux = Deno.build.os === "linux";
const enc = new TextEncoder();

/** Reads until the text so far ends with `want`; bounded by count and time. */
async function readUntil(conn: Deno.TcpConn, want: string): Promise<string> {
  const buf = new Uint8Array(256);
  let text = "";
  const deadline = Date.now() + 10_000;
  for (let reads = 0; reads < 1000 && !text.endsWith(want) && Date.now() < deadline; reads++) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

Deno.test({
  name: "discard: drops a publisher's bytes and answers the PING that ends them",
  ignore: !linux,
  async fn() {
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../discard.ts", import.meta.url).pathname, "--port", `${port}`],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const out = child.stdout.getReader();
    try {
      const first = await out.read();
      assert.match(new TextDecoder().decode(first.value), /listening on \d+/);
      // The handshake, then 8 MiB of frames in big writes, then the final PING.
      const a = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(a, enc.encode('CONNECT {"verbose":false}\r\nPING\r\n'));
      assert.equal(await readUntil(a, "PONG\r\n"), "PONG\r\n");
      const frame = enc.encode(`PUB topic:x 4090\r\n${"x".repeat(4090)}\r\n`);
      const batch = new Uint8Array(frame.length * 64);
      for (let i = 0; i < 64; i++) batch.set(frame, i * frame.length);
      for (let n = 0; n < 8 * 1024 * 1024; n += batch.length) await writeAll(a, batch);
      await writeAll(a, enc.encode("PING\r\n"));
      assert.equal(await readUntil(a, "PONG\r\n"), "PONG\r\n");
      // A PING split across two writes (one wake-up or two) is still one PING.
      await writeAll(a, enc.encode("PI"));
      await writeAll(a, enc.encode("NG\r\n"));
      assert.equal(await readUntil(a, "PONG\r\n"), "PONG\r\n");
      a.close();
      // Redis: its PING in RESP, answered +PONG (the next connection, served after the first).
      const b = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(b, enc.encode("*1\r\n$4\r\nPING\r\n"));
      assert.equal(await readUntil(b, "+PONG\r\n"), "+PONG\r\n");
      b.close();
    } finally {
      out.releaseLock();
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
  },
});
