/**
 * Memory per queued message: starts Relayr (on Deno, and on Bun when
 * installed) with a memory store, publishes 1,000,000 messages of 256 B to a
 * queue with no consumer over TCP, and reports the growth of the process's
 * resident set per message beyond its payload (target: under 200 B).
 *
 * Run: `deno task bench:memory [--count N] [--size B]`.
 */
import { parseArgs } from "node:util";
import { freePort, waitPort, which } from "./servers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    count: { type: "string", default: "1000000" },
    size: { type: "string", default: "256" },
  },
});
const COUNT = Number(values.count);
const SIZE = Number(values.size);
const root = new URL("..", import.meta.url).pathname;
const enc = new TextEncoder();

async function rss(httpPort: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/api/stats`);
  const body = await r.json();
  return body.server?.mem?.rss ?? body.mem?.rss;
}

async function publish(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const frame = enc.encode(`PUB queue:mem ${SIZE}\r\n${"x".repeat(SIZE)}\r\n`);
  const per = Math.max(1, Math.floor(256 * 1024 / frame.length));
  const batch = new Uint8Array(frame.length * per);
  for (let i = 0; i < per; i++) batch.set(frame, i * frame.length);
  await conn.write(enc.encode('CONNECT {"verbose":false}\r\n'));
  for (let sent = 0; sent < COUNT; sent += per) {
    const n = Math.min(per, COUNT - sent);
    const bytes = batch.subarray(0, n * frame.length);
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
  }
  await conn.write(enc.encode("PING\r\n"));
  const buf = new Uint8Array(4096);
  let text = "";
  while (!text.includes("PONG")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("server closed the connection");
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (text.includes("ERR")) throw new Error(text.trim());
  }
  conn.close();
}

async function measure(runtime: string, command: string, args: string[]): Promise<void> {
  const port = freePort();
  const httpPort = freePort();
  const child = new Deno.Command(command, {
    args: [
      ...args,
      "main.ts",
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--http-port",
      String(httpPort),
      "--memory",
      "--no-grpc",
      "--log-level",
      "warning",
    ],
    cwd: root,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    await waitPort(port);
    await waitPort(httpPort);
    await new Promise((r) => setTimeout(r, 500));
    const before = await rss(httpPort);
    const t0 = performance.now();
    await publish(port);
    const secs = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 2000)); // let the collector settle
    const after = await rss(httpPort);
    const perMsg = (after - before) / COUNT;
    console.log(
      `${runtime.padEnd(5)} ${COUNT} x ${SIZE} B queued in ${secs.toFixed(1)} s: RSS ${
        (before / 2 ** 20).toFixed(0)
      } -> ${(after / 2 ** 20).toFixed(0)} MiB, ${perMsg.toFixed(0)} B per message, overhead ${
        (perMsg - SIZE).toFixed(0)
      } B beyond the payload (target < 200)`,
    );
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

await measure("deno", Deno.execPath(), ["run", "-A"]);
const bun = which("bun");
if (bun) await measure("bun", bun, ["run"]);
else console.log("bun: not installed, skipped");
