/**
 * The driver-ceiling server: measures how fast the bench's own drivers go
 * when the server costs nothing.
 *
 * - Sink (default): reads and discards everything, and answers a PING that
 *   ends what it has read (`PONG` for Relayr and NATS, `+PONG` for Redis), so
 *   a publisher's final PING/PONG works as against a real server.
 * - Source: a connection whose first line is
 *   `SOURCE <protocol> <kind> <name> <count> <size> <stampEvery>` gets
 *   `count` deliveries in that protocol's framing, as fast as it reads them
 *   (what it sends back, such as ACKs, is read and discarded).
 *
 * Run: `deno run -A bench/sink.ts --port 0` (prints `listening on <port>`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { drivers, type Kind, type Protocol } from "./drivers/mod.ts";
import { Batcher, clock } from "./payload.ts";

const READ_BYTES = 1024 * 1024;
const TAIL_BYTES = 16;
const PING = new TextEncoder().encode("PING\r\n");
const REDIS_PING = new TextEncoder().encode("$4\r\nPING\r\n");
const PONG = new TextEncoder().encode("PONG\r\n");
const REDIS_PONG = new TextEncoder().encode("+PONG\r\n");

function endsWith(tail: Uint8Array, len: number, suffix: Uint8Array): boolean {
  if (len < suffix.length) return false;
  for (let i = 0; i < suffix.length; i++) {
    if (tail[len - suffix.length + i] !== suffix[i]) return false;
  }
  return true;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

async function source(conn: Deno.TcpConn, line: string): Promise<void> {
  const [, protocol, kind, name, count, size, stampEvery] = line.trim().split(" ");
  const driver = drivers[protocol as Protocol];
  if (!driver) throw new TypeError(`unknown protocol ${JSON.stringify(protocol)}`);
  const total = Number(count);
  const bytes = Number(size);
  const every = Number(stampEvery);
  const batcher = new Batcher(driver.deliveryFrame(kind as Kind, name, bytes), bytes);
  let inflight: Promise<void> = Promise.resolve();
  for (let seq = 0; seq < total;) {
    const n = Math.min(batcher.framesMax, total - seq);
    const frames = batcher.next(seq, n, every, clock());
    await inflight;
    inflight = writeAll(conn, frames);
    seq += n;
  }
  await inflight;
}

async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buf = new Uint8Array(READ_BYTES);
  const tail = new Uint8Array(TAIL_BYTES * 2);
  let tailLen = 0;
  let first = true;
  const streams: Promise<void>[] = [];
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (first) {
        first = false;
        const nl = buf.indexOf(10);
        const line = new TextDecoder().decode(buf.subarray(0, nl < 0 || nl >= n ? n : nl));
        if (line.startsWith("SOURCE ")) {
          streams.push(source(conn, line).catch(() => {}));
          continue;
        }
      }
      // Keep the last bytes read, to see a PING that ends the stream so far.
      if (n >= TAIL_BYTES) {
        tail.set(buf.subarray(n - TAIL_BYTES, n));
        tailLen = TAIL_BYTES;
      } else {
        const keep = Math.min(tailLen, TAIL_BYTES - n);
        tail.copyWithin(0, tailLen - keep, tailLen);
        tail.set(buf.subarray(0, n), keep);
        tailLen = keep + n;
      }
      if (endsWith(tail, tailLen, REDIS_PING)) await writeAll(conn, REDIS_PONG);
      else if (endsWith(tail, tailLen, PING)) await writeAll(conn, PONG);
    }
  } catch { /* the client went away */ }
  await Promise.all(streams);
  try {
    conn.close();
  } catch { /* closed */ }
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(values.port ?? 0) });
  console.log(`listening on ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) serve(conn);
}
