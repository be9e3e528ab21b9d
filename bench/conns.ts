/**
 * `deno task bench:conns`: memory per idle connection with one subscription,
 * Relayr beside nats-server. Each server (a child started here on a free
 * port, stopped by its PID) gets `--count` connections (default 10,000), each
 * subscribing to a topic of its own and answering a PING; the RSS of the
 * server process (`/proc/<pid>/status`) is read before and with them all open.
 * `--tls`: both servers serve TLS with the same openssl-made certificate, so
 * the figure includes each connection's TLS state.
 *
 * `--base DIR` measures Relayr run from another checkout as well, in the same
 * run (an A/B of two builds; make it as for `deno task bench --base`), and
 * `--rounds N` repeats every server N times, in turn, and prints the median.
 * `--subs K`: each connection subscribes to K topics of its own (the cost of
 * a subscription is the difference to a run with 1). `--settle S`: the RSS
 * with them all open is read S seconds after the last opened (default 0).
 * `--heap` (Deno): each Relayr child also runs with `--inspect`, and the
 * live heap and external memory per connection are printed instead of RSS
 * (read after forced full collections), with the largest kinds of heap object
 * a connection adds (a heap snapshot diff, by retainer; `--top N` of them).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freePort, rssBytes as rss, waitPort } from "./servers.ts";
import { type HeapKind, Inspector, perUnit } from "./heap_snapshot.ts";
import { makeCerts } from "./tls_certs.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "10000" },
    runtime: { type: "string", default: "deno" },
    tls: { type: "boolean", default: false },
    base: { type: "string" },
    rounds: { type: "string", default: "1" },
    heap: { type: "boolean", default: false },
    top: { type: "string", default: "25" },
    subs: { type: "string", default: "1" },
    settle: { type: "string", default: "0" },
  },
});
const certs = values.tls ? await makeCerts() : undefined;
const CA = certs && Deno.readTextFileSync(certs.ca);
const COUNT = Number(values.count);
/** Subscriptions per connection, each to a topic of its own. */
const SUBS = Math.max(1, Number(values.subs));
/** Handshakes in flight at once: a storm, bounded. */
const WINDOW = 256;
const ROOT = new URL("..", import.meta.url).pathname;
const enc = new TextEncoder();
const dec = new TextDecoder();

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

/** One server to measure. */
interface System {
  name: string;
  /** Its command line, given a free port (and an inspector port with `--heap`). */
  cmd(port: number, inspect: number | undefined): string[];
  hello(i: number): string;
  /** NATS 2.9 greets in plain text before a TLS handshake. */
  infoFirst?: boolean;
  /** A Deno child whose heap `--heap` reads. */
  deno?: boolean;
}

/** What one measurement found; heap and external only with `--heap`. */
interface Result {
  rssPer: number;
  ms: number;
  before: number;
  after: number;
  heapPer?: number;
  externalPer?: number;
  kinds?: HeapKind[];
}

async function measure(sys: System): Promise<Result> {
  const port = freePort();
  const inspect = values.heap && sys.deno ? freePort() : undefined;
  const child = new Deno.Command("sh", {
    args: ["-c", `ulimit -n ${COUNT + 1024} && exec "$0" "$@"`, ...sys.cmd(port, inspect)],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const conns: Deno.Conn[] = [];
  let inspector: Inspector | undefined;
  try {
    await waitPort(port);
    await new Promise((r) => setTimeout(r, 500)); // let start-up settle before the baseline
    if (inspect !== undefined) inspector = await Inspector.attach(inspect);
    const mem0 = await inspector?.memory();
    const kinds0 = await inspector?.kinds();
    const before = rss(child.pid);
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i += WINDOW) {
      const batch = [];
      for (let k = i; k < Math.min(COUNT, i + WINDOW); k++) {
        batch.push(open(port, sys.hello(k), sys.infoFirst === true));
      }
      conns.push(...await Promise.all(batch));
    }
    const ms = performance.now() - t0;
    // With `--settle S`, RSS is read after S seconds of idle connections: collectors shrink
    // what the open burst grew (V8's young generation, Go's heap) only some time after it.
    await new Promise((r) => setTimeout(r, Number(values.settle) * 1000));
    const mem1 = await inspector?.memory();
    const after = rss(child.pid);
    const r: Result = { rssPer: (after - before) / COUNT, ms, before, after };
    if (mem0 !== undefined && mem1 !== undefined && kinds0 !== undefined) {
      r.heapPer = (mem1.heapUsed - mem0.heapUsed) / COUNT;
      r.externalPer = (mem1.external - mem0.external) / COUNT;
      r.kinds = perUnit(kinds0, await inspector!.kinds(), COUNT);
    }
    return r;
  } finally {
    inspector?.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* gone */ }
    }
    child.kill("SIGTERM");
    await child.status;
  }
}

/** The SUB lines of connection `i`: `SUBS` topics of its own, `c.<i>` for the first. */
function subs(i: number, line: (topic: string, k: number) => string): string {
  let out = "";
  for (let k = 0; k < SUBS; k++) out += line(k === 0 ? `c.${i}` : `c.${i}.${k}`, k) + "\r\n";
  return out;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function report(sys: System, runs: Result[]): void {
  const mid = [...runs].sort((a, b) => a.rssPer - b.rssPer)[runs.length >> 1];
  const all = runs.length > 1 ? ` (runs: ${runs.map((r) => kib(r.rssPer)).join(", ")})` : "";
  // The heap snapshots (`--heap`) take memory of their own inside the child: its RSS then means little.
  const what = mid.heapPer === undefined
    ? `RSS ${(mid.before / 1048576).toFixed(0)} -> ${(mid.after / 1048576).toFixed(0)} MiB, ` +
      `${kib(mid.rssPer)} each${all}`
    : `heap ${kib(mid.heapPer)}, external ${kib(mid.externalPer!)} each (live, after full GCs)`;
  console.log(
    `${sys.name.padEnd(16)} ${CA ? "TLS " : ""}${COUNT} connections + ${
      SUBS === 1 ? "" : `${SUBS} `
    }subscriptions in ${mid.ms.toFixed(0)} ms: ${what}`,
  );
  for (const k of mid.kinds?.slice(0, Number(values.top)) ?? []) {
    console.log(
      `  ${k.bytes.toFixed(0).padStart(6)} B  x${k.count.toFixed(2).padStart(5)}  ${k.key}`,
    );
  }
}

/** Relayr run from `root`. */
function relayr(name: string, root: string): System {
  return {
    name,
    deno: values.runtime !== "bun",
    cmd: (port, inspect) =>
      (values.runtime === "bun" ? ["bun", `${root}/main.ts`] : [Deno.execPath(), "run", "-A"]
        .concat(inspect === undefined ? [] : [`--inspect=127.0.0.1:${inspect}`])
        .concat([`${root}/main.ts`]))
        .concat(["serve", "--memory", "--host", "127.0.0.1", "--port", String(port)])
        .concat(["--no-http", "--no-grpc", "--max-connections", String(COUNT + 10)])
        .concat(certs ? ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey] : []),
    hello: (i) =>
      `CONNECT {"verbose":false}\r\n${subs(i, (t, k) => `SUB topic:${t} sub_id:s${k}`)}PING\r\n`,
  };
}

const systems: System[] = [];
if (values.base !== undefined) {
  systems.push(relayr(`relayr-${values.runtime}-base`, values.base.replace(/\/$/, "")));
}
systems.push(relayr(`relayr-${values.runtime}`, ROOT.replace(/\/$/, "")));
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
  const conf = certs && `${certs.dir}/nats-tls.conf`;
  if (certs && conf) {
    Deno.writeTextFileSync(
      conf,
      `tls { cert_file: "${certs.serverCert}", key_file: "${certs.serverKey}" }\n`,
    );
  }
  systems.push({
    name: "nats-server",
    cmd: (port) => [nats, "-a", "127.0.0.1", "-p", String(port), ...(conf ? ["-c", conf] : [])],
    hello: (i) => `CONNECT {"verbose":false}\r\n${subs(i, (t, k) => `SUB ${t} ${k + 1}`)}PING\r\n`,
    infoFirst: true,
  });
}
// Rounds in turn (A, B, nats, A, B, nats...): a load change on the shared machine hits all alike.
const results = systems.map(() => [] as Result[]);
for (let round = 0; round < Math.max(1, Number(values.rounds)); round++) {
  for (let i = 0; i < systems.length; i++) results[i].push(await measure(systems[i]));
}
systems.forEach((sys, i) => report(sys, results[i]));
certs?.remove();
