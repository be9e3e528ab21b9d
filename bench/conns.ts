/**
 * `deno task bench:conns`: memory per idle connection with one subscription,
 * Relayr beside nats-server. Each server (a child started here on a free
 * port, stopped by its PID) gets `--count` connections (default 10,000), each
 * subscribing to a topic of its own and answering a PING; the RSS of the
 * server process (`/proc/<pid>/status`) is read before and with them all open.
 * `--tls`: both servers serve TLS with the same openssl-made certificate, so
 * the figure includes each connection's TLS state.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { makeCerts } from "./tls_certs.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "10000" },
    runtime: { type: "string", default: "deno" },
    tls: { type: "boolean", default: false },
  },
});
const certs = values.tls ? await makeCerts() : undefined;
const CA = certs && Deno.readTextFileSync(certs.ca);
const COUNT = Number(values.count);
/** Handshakes in flight at once: a storm, bounded. */
const WINDOW = 256;
const ROOT = new URL("..", import.meta.url).pathname;
const enc = new TextEncoder();
const dec = new TextDecoder();

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function rss(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  return m === null ? NaN : Number(m[1]) * 1024;
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * Opens one connection (TLS with `--tls`; NATS 2.9 greets in plain text
 * first), subscribes and waits for the PONG that follows.
 */
async function open(port: number, hello: string, infoFirst: boolean): Promise<Deno.Conn> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(4096);
  let text = "";
  for (let reads = 0; CA && infoFirst && reads < 64 && !text.includes("\r\n"); reads++) {
    const n = await tcp.read(buf);
    if (n === null) throw new Error(`closed: ${text}`);
    text += dec.decode(buf.subarray(0, n));
  }
  const c: Deno.Conn = CA
    ? await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [CA] })
    : tcp;
  await c.write(enc.encode(hello));
  for (let reads = 0; reads < 64 && !text.includes("PONG"); reads++) {
    const n = await c.read(buf);
    if (n === null) throw new Error(`closed: ${text}`);
    text += dec.decode(buf.subarray(0, n));
  }
  return c;
}

async function measure(
  name: string,
  cmd: string[],
  port: number,
  hello: (i: number) => string,
  infoFirst = false,
): Promise<void> {
  const child = new Deno.Command("sh", {
    args: ["-c", `ulimit -n ${COUNT + 1024} && exec "$0" "$@"`, ...cmd],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const conns: Deno.Conn[] = [];
  try {
    await waitPort(port);
    await new Promise((r) => setTimeout(r, 500)); // let start-up settle before the baseline
    const before = rss(child.pid);
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i += WINDOW) {
      const batch = [];
      for (let k = i; k < Math.min(COUNT, i + WINDOW); k++) {
        batch.push(open(port, hello(k), infoFirst));
      }
      conns.push(...await Promise.all(batch));
    }
    const ms = performance.now() - t0;
    const after = rss(child.pid);
    const per = (after - before) / COUNT;
    console.log(
      `${name.padEnd(12)} ${CA ? "TLS " : ""}${COUNT} connections + subscriptions in ${
        ms.toFixed(0)
      } ms: RSS ` +
        `${(before / 1048576).toFixed(0)} -> ${(after / 1048576).toFixed(0)} MiB, ` +
        `${(per / 1024).toFixed(1)} KiB each`,
    );
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* gone */ }
    }
    child.kill("SIGTERM");
    await child.status;
  }
}

const relayrPort = freePort();
const relayr = values.runtime === "bun"
  ? ["bun", `${ROOT}main.ts`]
  : [Deno.execPath(), "run", "-A", `${ROOT}main.ts`];
await measure(
  `relayr-${values.runtime}`,
  [...relayr, "serve", "--memory", "--host", "127.0.0.1", "--port", String(relayrPort)]
    .concat(["--no-http", "--no-grpc", "--max-connections", String(COUNT + 10)])
    .concat(certs ? ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey] : []),
  relayrPort,
  (i) => `CONNECT {"verbose":false}\r\nSUB topic:c.${i} sub_id:s\r\nPING\r\n`,
);
const nats = ["nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"].find((p) => {
  try {
    return new Deno.Command(p, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
});
if (nats === undefined) {
  console.log("nats-server not installed: skipped (scripts/install-peers.sh)");
} else {
  const natsPort = freePort();
  const conf = certs && `${certs.dir}/nats-tls.conf`;
  if (certs && conf) {
    Deno.writeTextFileSync(
      conf,
      `tls { cert_file: "${certs.serverCert}", key_file: "${certs.serverKey}" }\n`,
    );
  }
  await measure(
    "nats-server",
    [nats, "-a", "127.0.0.1", "-p", String(natsPort), ...(conf ? ["-c", conf] : [])],
    natsPort,
    (i) => `CONNECT {"verbose":false}\r\nSUB c.${i} 1\r\nPING\r\n`,
    true,
  );
}
certs?.remove();
