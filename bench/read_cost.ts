/**
 * What a socket read costs each runtime's read API, without the broker: a
 * child process listens and only counts the bytes (or, `deno*`, reads into one
 * reused buffer as the Deno broker does), this process writes `--mib` MiB in
 * 256 KiB writes, and the child reports its CPU time (user + system) per KiB
 * read. Where Bun's broker spends more CPU than Deno's per large publish, this
 * says how much of it is the read layer itself. See bench/README.md.
 *
 * ```sh
 * deno run -A bench/read_cost.ts [--mib 1024] [--rounds 2] [--modes deno,bun-listen-fd]
 * ```
 *
 * @module
 */
import process from "node:process";

/**
 * A read API of one runtime: `deno` (`Deno.Conn.read` into a reused 256 KiB
 * buffer; `deno-64k`, `deno-1m`: other sizes; `deno-fresh`: a new 256 KiB
 * buffer per read, as the broker did on reads of 32-128 KiB) or Bun's: `Bun.listen` with each
 * `binaryType` (a fresh copy per read), `node:net`, and `bun-listen-fd`, the
 * broker's way since branch `pub4k`: after each chunk from `data`, `node:fs`
 * `readSync` of the socket's descriptor into a reused 256 KiB buffer until
 * EAGAIN.
 */
const MODES = [
  "deno",
  "deno-64k",
  "deno-1m",
  "deno-fresh",
  "bun-listen",
  "bun-listen-arraybuffer",
  "bun-listen-uint8array",
  "bun-listen-fd",
  "bun-node-net",
] as const;
type Mode = (typeof MODES)[number];

/** The read buffer of the modes that read into one. */
function bufferBytes(mode: Mode): number {
  return mode === "deno-64k" ? 64 * 1024 : mode === "deno-1m" ? 1024 * 1024 : 256 * 1024;
}

/** The child: listens on a free port, prints it, counts bytes until the peer closes, prints the cost. */
async function serve(mode: Mode): Promise<void> {
  let bytes = 0;
  let start = process.cpuUsage();
  const done = () => {
    const u = process.cpuUsage(start);
    const us = u.user + u.system;
    console.log(
      JSON.stringify({ mode, bytes, cpuMs: us / 1000, nsPerKiB: us * 1000 / (bytes / 1024) }),
    );
    process.exit(0);
  };
  const bun = (globalThis as unknown as { Bun?: BunLike }).Bun;
  if (mode.startsWith("deno")) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    console.log((l.addr as Deno.NetAddr).port);
    const c = await l.accept();
    start = process.cpuUsage();
    let buf = new Uint8Array(bufferBytes(mode));
    for (;;) {
      if (mode === "deno-fresh") buf = new Uint8Array(buf.length);
      const n = await c.read(buf);
      if (n === null) break;
      bytes += n;
    }
    return done();
  }
  if (mode === "bun-node-net") {
    const net = await import("node:net");
    const s = net.createServer((c) => {
      start = process.cpuUsage();
      c.on("data", (d: Uint8Array) => void (bytes += d.length));
      c.on("end", done);
    });
    s.listen(0, "127.0.0.1", () => console.log((s.address() as { port: number }).port));
    return;
  }
  const { readSync } = await import("node:fs");
  const buf = new Uint8Array(bufferBytes(mode));
  const server = bun!.listen({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: mode === "bun-listen-arraybuffer"
      ? "arraybuffer"
      : mode === "bun-listen-uint8array"
      ? "uint8array"
      : "buffer",
    socket: {
      open: () => void (start = process.cpuUsage()),
      data: (s: { fd: number }, chunk: { byteLength: number }) => {
        bytes += chunk.byteLength;
        if (mode !== "bun-listen-fd") return;
        for (;;) {
          let n = 0;
          try {
            n = readSync(s.fd, buf, 0, buf.length, null);
          } catch { /* EAGAIN: dry until the next data */ }
          if (n <= 0) break;
          bytes += n;
        }
      },
      close: done,
    },
  });
  console.log(server.port);
}

interface BunLike {
  listen(o: {
    hostname: string;
    port: number;
    binaryType: string;
    socket: {
      open(): void;
      data(s: { fd: number }, chunk: { byteLength: number }): void;
      close(): void;
    };
  }): { port: number };
}

/** One measured run: the child for `mode`, fed `mib` MiB. */
async function run(mode: Mode, mib: number): Promise<string> {
  const self = new URL(import.meta.url).pathname;
  const [cmd, args] = mode.startsWith("deno")
    ? [Deno.execPath(), ["run", "-A", self, "serve", mode]]
    : ["bun", [self, "serve", mode]];
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${mode}: the child ended before it listened`);
    text += value;
  }
  const port = Number(text.split("\n")[0]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(256 * 1024).fill(120);
  for (let i = 0; i < mib * 4; i++) {
    for (let off = 0; off < chunk.length;) off += await conn.write(chunk.subarray(off));
  }
  conn.close();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await child.status;
  return text.trim().split("\n").at(-1)!;
}

// process.argv: this file also runs under Bun (the children), where there is no Deno.args.
const argv = process.argv.slice(2);
if (argv[0] === "serve") await serve(argv[1] as Mode);
else {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: argv,
    options: {
      mib: { type: "string", default: "1024" },
      rounds: { type: "string", default: "2" },
      modes: { type: "string", default: MODES.join(",") },
    },
  });
  const modes = values.modes.split(",") as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`unknown mode ${m}: ${MODES}`);
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const mode of modes) console.log(await run(mode, Number(values.mib)));
  }
}
