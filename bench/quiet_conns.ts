/**
 * `deno run -A bench/quiet_conns.ts`: what connections that sent a bulk burst
 * and went quiet cost a broker. `--conns` connections (default 100), one after
 * another, each publish `--mib` MiB (default 8) of 4 KiB PUBs to a topic
 * nobody reads and wait for the PONG behind them, then stay open and quiet;
 * the broker's RSS (`/proc/<pid>/status`) is read before the first and
 * `--settle` seconds (default 3) after the last. A pending read pins its
 * buffer (Deno), so this is where a quiet connection's read buffer shows.
 * `--base DIR` runs the broker of another checkout too (an A/B in one run),
 * `--runtimes deno,bun` on which runtimes, `--rounds N` repeats each in turn.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freePort, rssBytes as rss, waitPort } from "./servers.ts";

const { values } = parseArgs({
  options: {
    conns: { type: "string", default: "100" },
    mib: { type: "string", default: "8" },
    settle: { type: "string", default: "3" },
    base: { type: "string" },
    runtimes: { type: "string", default: "deno" },
    rounds: { type: "string", default: "1" },
  },
});
const CONNS = Number(values.conns);
const MIB = Number(values.mib);
const ROOT = new URL("..", import.meta.url).pathname;
const enc = new TextEncoder();

/** 256 KiB of `PUB topic:quiet 4096` frames (whole frames only). */
function burst(): Uint8Array {
  const head = enc.encode("PUB topic:quiet 4096\r\n");
  const frame = new Uint8Array(head.length + 4096 + 2);
  frame.set(head);
  frame.fill(0x61, head.length, head.length + 4096);
  frame.set([13, 10], head.length + 4096);
  const n = Math.floor(256 * 1024 / frame.length);
  const out = new Uint8Array(n * frame.length);
  for (let i = 0; i < n; i++) out.set(frame, i * frame.length);
  return out;
}

async function writeAll(c: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length;) off += await c.write(b.subarray(off));
}

/** Reads until `PONG` came (bounded by 30 s). */
async function pong(c: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  const until = Date.now() + 30_000;
  while (!text.includes("PONG\r\n") && Date.now() < until) {
    const n = await c.read(buf);
    if (n === null) throw new Error("the broker closed a connection");
    text = (text + new TextDecoder().decode(buf.subarray(0, n))).slice(-64);
  }
  if (!text.includes("PONG\r\n")) throw new Error("no PONG within 30 s");
}

async function measure(runtime: string, root: string): Promise<number> {
  const port = freePort();
  const args = [`${root}main.ts`, "serve", "--host", "127.0.0.1", "--port", String(port)];
  args.push("--no-http", "--no-grpc", "--memory", "--log-level", "error");
  const cmd = runtime === "bun"
    ? new Deno.Command("bun", { args, cwd: root, stdout: "null", stderr: "null" })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${root}deno.json`, ...args],
      cwd: root,
      stdout: "null",
      stderr: "null",
    });
  const child = cmd.spawn();
  const conns: Deno.Conn[] = [];
  try {
    await waitPort(port);
    await new Promise((r) => setTimeout(r, 500));
    const before = rss(child.pid);
    const bytes = burst();
    const writes = Math.ceil(MIB * 1024 * 1024 / bytes.length);
    for (let i = 0; i < CONNS; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c);
      await writeAll(c, enc.encode('CONNECT {"verbose":false}\r\n'));
      for (let w = 0; w < writes; w++) await writeAll(c, bytes);
      await writeAll(c, enc.encode("PING\r\n"));
      await pong(c);
    }
    await new Promise((r) => setTimeout(r, Number(values.settle) * 1000));
    return rss(child.pid) - before;
  } finally {
    for (const c of conns) c.close();
    child.kill("SIGKILL");
    await child.status;
  }
}

const builds: [string, string][] = [["this", ROOT]];
if (values.base !== undefined) builds.push(["base", `${Deno.realPathSync(values.base)}/`]);
const MiB = 1024 * 1024;
for (const runtime of values.runtimes.split(",")) {
  const got = new Map<string, number[]>();
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const [name, root] of builds) {
      const d = await measure(runtime, root);
      got.set(name, [...(got.get(name) ?? []), d]);
      console.log(`${runtime} ${name} round ${r + 1}: RSS +${(d / MiB).toFixed(1)} MiB`);
    }
  }
  for (const [name, ds] of got) {
    const sorted = [...ds].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(
      `${runtime} ${name}: ${CONNS} conns x ${MIB} MiB then quiet: RSS +${
        (median / MiB).toFixed(1)
      } MiB (median of ${ds.length}: ${ds.map((d) => (d / MiB).toFixed(1)).join(", ")})`,
    );
  }
}
