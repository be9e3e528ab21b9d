/**
 * Starts and stops the systems under test as child processes on 127.0.0.1,
 * each on a free non-default port. The bench only ever signals the PIDs it
 * spawned itself.
 *
 * @module
 */
import type { Protocol } from "./drivers/mod.ts";
import { makeCerts, type TestCerts } from "./tls_certs.ts";
import { BENCH_CONNECT_AUTH, writeBenchUsers } from "./perms_users.ts";

/**
 * Everything the bench can run against; `sink` and `discard` are the
 * driver-ceiling servers (`discard`: the publisher's, see bench/discard.ts).
 */
export type System =
  | "relayr"
  | "relayr-log"
  | "relayr-log-always"
  | "relayr-bun"
  | "relayr-tls"
  | "relayr-bun-tls"
  | "relayr-perms"
  | "relayr-ws"
  | "relayr-base"
  | "relayr-bun-base"
  | "nats"
  | "nats-ws"
  | "nats-js"
  | "nats-tls"
  | "redis"
  | "redis-aof"
  | "redis-aof-always"
  | "sink"
  | "discard";

/** Longest wait for a server to accept connections. */
const START_TIMEOUT_MS = 30_000;
/** Longest wait after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
/** Output lines kept per server, shown when it fails. */
const LOG_LINES_KEPT = 40;

/**
 * The checkout `relayr-base` and `relayr-bun-base` run from (`--base DIR`, e.g. a
 * `git worktree add /tmp/relayr-main main`): an A/B of two builds in one run.
 */
let baseRoot: string | undefined;

/** Sets the checkout of the `*-base` systems. */
export function setBaseRoot(dir: string): void {
  baseRoot = dir;
}

/** The directory `system` runs `main.ts` from. */
function rootOf(system: System, root: string): string {
  if (!system.endsWith("-base")) return root;
  if (baseRoot === undefined) throw new UnavailableError("no --base DIR given");
  return baseRoot;
}

/** A system that cannot run here (not installed, no main.ts). */
export class UnavailableError extends Error {}

/** One running server. */
export interface Server {
  readonly system: System;
  readonly protocol: Protocol;
  readonly port: number;
  /** TLS systems: the CA (PEM) their certificate chains to; else undefined. */
  readonly tls?: string;
  /** The WebSocket URL the bench dials instead of `port` (`relayr-ws`, `nats-ws`), else undefined. */
  readonly wsUrl: string | undefined;
  readonly pid: number;
  /** Credentials the drivers add to their `CONNECT` (`relayr-perms`), else undefined. */
  readonly connectAuth?: Record<string, string>;
  /** V8 inspector port when started for `--profile`, else null. */
  readonly inspectPort: number | null;
  /** Exit code once it has exited, else null. */
  exitCode(): number | null;
  /** Its last output lines. */
  log(): string;
  /** Messages the server says it accepted (Relayr `published_msgs`, NATS `in_msgs`), else null. */
  inMsgs(): Promise<number | null>;
  /** Server-side counters that explain a failure (slow consumers, close reasons), or "". */
  diagnostics(): Promise<string>;
  /** SIGTERM, then SIGKILL if it lingers. */
  stop(): Promise<void>;
}

/** Server-wide stats from the monitoring port, or null. */
async function monitor(
  system: System,
  port: number | undefined,
): Promise<Record<string, unknown> | null> {
  if (!port) return null;
  const nats = system.startsWith("nats");
  const path = nats ? "/varz" : "/api/stats?limit=1&closed=0&subs=false";
  // With authentication on, the monitoring port wants the (monitor) user too.
  const auth = system === "relayr-perms"
    ? { authorization: `Basic ${btoa(`${BENCH_CONNECT_AUTH.user}:${BENCH_CONNECT_AUTH.pass}`)}` }
    : undefined;
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: auth });
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    const body = await res.json();
    return nats ? body : body.server;
  } catch {
    return null;
  }
}

/** Protocol each system speaks. */
export function protocolOf(system: System): Protocol {
  if (system === "nats" || system === "nats-js") return system;
  if (system === "nats-tls") return "nats";
  if (system === "nats-ws") return "nats";
  if (system.startsWith("redis")) return "redis";
  return "relayr";
}

const running = new Set<Server>();

/** One set of certificates for every TLS system of this run (both sides get the same files). */
let certs: TestCerts | undefined;
async function tlsCerts(): Promise<TestCerts> {
  if (certs === undefined) {
    certs = await makeCerts();
    globalThis.addEventListener("unload", () => certs?.remove());
  }
  return certs;
}

/** Stops every server this process started (for Ctrl-C). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

/**
 * What the scheduler gave the process `pid` so far, all threads, in ns: its
 * CPU time (`run`, the first field of each `/proc/<pid>/task/<tid>/schedstat`)
 * and its time runnable but waiting for a core (`wait`, the second); null
 * where unreadable. On a shared machine a server's CPU per message is steadier
 * than its rate: neighbours take turns from it, not work, and `wait` says how
 * long it stood in line.
 */
export function schedNs(pid: number): { run: number; wait: number } | null {
  try {
    let run = 0;
    let wait = 0;
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const f = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ");
        run += Number(f[0]);
        wait += Number(f[1]);
      } catch { /* the thread ended meanwhile */ }
    }
    return { run, wait };
  } catch {
    return null;
  }
}

/** CPU time the process `pid` has used so far, all threads, in ns (see `schedNs`); null where unreadable. */
export function cpuNs(pid: number): number | null {
  return schedNs(pid)?.run ?? null;
}

/** A port that was free a moment ago (the kernel's pick, never a default one). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Resident memory of the process `pid` in bytes (`/proc/<pid>/status`), NaN where unreadable. */
export function rssBytes(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  return m === null ? NaN : Number(m[1]) * 1024;
}

/** Resolves once 127.0.0.1:`port` accepts a connection (tries for up to 15 s). */
export async function waitPort(port: number): Promise<void> {
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

/** Full path of a command on PATH, or null. */
export function which(command: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const path = `${dir}/${command}`;
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here */ }
  }
  return null;
}

/** First line of `command --version`-like output, or "". */
export async function versionOf(command: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.trim().split("\n")[0];
  } catch {
    return "";
  }
}

async function keepLines(stream: ReadableStream<Uint8Array>, lines: string[]): Promise<void> {
  let partial = "";
  try {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
      if (lines.length > LOG_LINES_KEPT) lines.splice(0, lines.length - LOG_LINES_KEPT);
    }
  } catch { /* the process went away */ }
  if (partial) lines.push(partial);
}

async function accepting(port: number, child: Deno.ChildProcess, done: () => boolean) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline && !done()) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    child.kill("SIGKILL");
  } catch { /* gone */ }
  throw new Error(done() ? "exited while starting" : "not accepting connections after 30 s");
}

/** How to launch a system on a port. */
interface Launch {
  command: string;
  args: string[];
  /** Monitoring port: Relayr's `/api/stats`, NATS's `/varz`. */
  httpPort?: number;
  /** A directory to delete once the server has stopped. */
  scratch?: string;
  /** The WebSocket URL to measure over, and the port to wait for. */
  ws?: { url: string; port: number };
}

function launch(
  system: System,
  port: number,
  root: string,
  relayrArgs: string[],
  inspectPort: number | null,
): Launch {
  switch (system) {
    case "relayr":
    case "relayr-log":
    case "relayr-log-always":
    case "relayr-tls":
    case "relayr-bun-tls":
    case "relayr-bun":
    case "relayr-perms":
    case "relayr-ws":
    case "relayr-base":
    case "relayr-bun-base": {
      root = rootOf(system, root);
      try {
        Deno.statSync(`${root}/main.ts`);
      } catch {
        throw new UnavailableError("main.ts does not exist yet");
      }
      const httpPort = freePort();
      const args = ["main.ts", "serve", "--host", "127.0.0.1", "--port", String(port)];
      args.push("--http-host", "127.0.0.1", "--http-port", String(httpPort), "--no-grpc");
      // Memory only, as the peers run (NATS core, Redis without persistence);
      // relayr-log measures the durable queue log in a scratch directory.
      let scratch: string | undefined;
      if (system.startsWith("relayr-log")) {
        scratch = Deno.makeTempDirSync({ prefix: "relayr-bench-" });
        args.push("--data-dir", scratch);
        if (system === "relayr-log-always") args.push("--fsync", "always");
      } else {
        args.push("--memory");
      }
      if (system.endsWith("-tls")) {
        args.push("--tls-cert", certs!.serverCert, "--tls-key", certs!.serverKey);
      }
      // Authentication on, and a user with 100 allow rules per action (bench/perms_users.ts);
      // start() writes the users file into the scratch directory before the broker starts.
      if (system === "relayr-perms") {
        scratch = Deno.makeTempDirSync({ prefix: "relayr-bench-" });
        args.push("--users", `${scratch}/users.json`);
      }
      args.push(...relayrArgs);
      if (system.startsWith("relayr-bun")) {
        const bun = which("bun");
        if (!bun) throw new UnavailableError("bun is not on PATH");
        // `RELAYR_BENCH_BUN_FLAGS="--cpu-prof --cpu-prof-dir=DIR"` profiles the Bun broker
        // (the profile is written when the bench stops it).
        const flags = Deno.env.get("RELAYR_BENCH_BUN_FLAGS")?.split(" ").filter(Boolean) ?? [];
        return { command: bun, args: [...flags, "run", ...args], httpPort };
      }
      const inspect = inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
      // `RELAYR_BENCH_DENO_FLAGS="--v8-flags=--perf-basic-prof"` (for `perf record -p <pid>`) or
      // `"--cpu-prof --cpu-prof-dir=DIR"`: flags for the Deno brokers' command line.
      const denoFlags = Deno.env.get("RELAYR_BENCH_DENO_FLAGS")?.split(" ").filter(Boolean) ?? [];
      // relayr-ws: the same broker, measured over /ws on its HTTP port.
      const ws = system === "relayr-ws"
        ? { url: `ws://127.0.0.1:${httpPort}/ws`, port: httpPort }
        : undefined;
      return {
        command: Deno.execPath(),
        args: ["run", ...inspect, ...denoFlags, "-A", ...args],
        httpPort,
        scratch,
        ws,
      };
    }
    case "nats":
    case "nats-tls":
    case "nats-ws":
    case "nats-js": {
      const bin = which("nats-server");
      if (!bin) {
        throw new UnavailableError("nats-server is not installed (scripts/install-peers.sh)");
      }
      const httpPort = freePort();
      const args = ["-a", "127.0.0.1", "-p", String(port), "-m", String(httpPort)];
      if (system === "nats") return { command: bin, args, httpPort };
      if (system === "nats-tls") {
        // NATS takes TLS files only from a config file.
        const scratch = Deno.makeTempDirSync({ prefix: "nats-tls-bench-" });
        Deno.writeTextFileSync(
          `${scratch}/tls.conf`,
          `tls { cert_file: "${certs!.serverCert}", key_file: "${certs!.serverKey}" }\n`,
        );
        return { command: bin, args: [...args, "-c", `${scratch}/tls.conf`], httpPort, scratch };
      }
      if (system === "nats-ws") {
        // nats-server's own WebSocket listener (plain ws, as relayr-ws) needs a config file.
        const scratch = Deno.makeTempDirSync({ prefix: "nats-ws-bench-" });
        const wsPort = freePort();
        Deno.writeTextFileSync(
          `${scratch}/nats.conf`,
          `websocket {\n  host: "127.0.0.1"\n  port: ${wsPort}\n  no_tls: true\n}\n`,
        );
        return {
          command: bin,
          args: [...args, "-c", `${scratch}/nats.conf`],
          httpPort,
          scratch,
          ws: { url: `ws://127.0.0.1:${wsPort}`, port: wsPort },
        };
      }
      // JetStream with file storage in a scratch directory: the durable peer of relayr-log.
      const scratch = Deno.makeTempDirSync({ prefix: "nats-js-bench-" });
      return { command: bin, args: [...args, "-js", "-sd", scratch], httpPort, scratch };
    }
    case "redis":
    case "redis-aof":
    case "redis-aof-always": {
      const bin = which("redis-server");
      if (!bin) {
        throw new UnavailableError("redis-server is not installed (scripts/install-peers.sh)");
      }
      const args = [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--protected-mode",
        "no",
      ];
      if (system === "redis") return { command: bin, args: [...args, "--appendonly", "no"] };
      // The durable peers of relayr-log: an append-only file fsynced every second or on every write.
      const scratch = Deno.makeTempDirSync({ prefix: "redis-bench-" });
      const fsync = system === "redis-aof-always" ? "always" : "everysec";
      return {
        command: bin,
        args: [...args, "--dir", scratch, "--appendonly", "yes", "--appendfsync", fsync],
        scratch,
      };
    }
    case "sink":
    case "discard":
      return {
        command: Deno.execPath(),
        args: ["run", "-A", `${root}/bench/${system}.ts`, "--port", String(port)],
      };
  }
}

/** Starts `system` and waits until it accepts connections. */
export async function start(
  system: System,
  options: { root: string; relayrArgs: string[]; inspect?: boolean },
): Promise<Server> {
  const port = freePort();
  const inspectPort = options.inspect && system.startsWith("relayr") &&
      !system.startsWith("relayr-bun")
    ? freePort()
    : null;
  const tls = system.endsWith("-tls") ? Deno.readTextFileSync((await tlsCerts()).ca) : undefined;
  const how = launch(system, port, options.root, options.relayrArgs, inspectPort);
  if (system === "relayr-perms") await writeBenchUsers(`${how.scratch}/users.json`);
  const child = new Deno.Command(how.command, {
    args: how.args,
    cwd: protocolOf(system) === "relayr" ? rootOf(system, options.root) : options.root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const draining = Promise.all([keepLines(child.stdout, lines), keepLines(child.stderr, lines)]);
  let code: number | null = null;
  const exited = child.status.then((s) => {
    code = s.code;
  });
  const server: Server = {
    system,
    protocol: protocolOf(system),
    port,
    tls,
    connectAuth: system === "relayr-perms" ? BENCH_CONNECT_AUTH : undefined,
    wsUrl: how.ws?.url,
    pid: child.pid,
    inspectPort,
    exitCode: () => code,
    log: () => lines.join("\n"),
    async inMsgs() {
      // JetStream's in_msgs also counts API requests, pulls and acks; its publish acks count instead.
      if (system === "nats-js") return null;
      const stats = await monitor(system, how.httpPort);
      if (!stats) return null;
      return system.startsWith("nats") ? stats.in_msgs as number : stats.published_msgs as number;
    },
    async diagnostics() {
      const stats = await monitor(system, how.httpPort);
      if (!stats || system.startsWith("nats")) return "";
      const closed = Object.entries(stats.closed_by_reason as Record<string, number> ?? {})
        .filter(([, n]) => n > 0).map(([r, n]) => `${r}=${n}`).join(",");
      return `server: slow_consumers=${stats.slow_consumers} rejected=${stats.rejected_msgs}` +
        ` closed ${closed || "none"}`;
    },
    async stop() {
      running.delete(server);
      if (code === null) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise((r) => timer = setTimeout(r, STOP_TIMEOUT_MS, "late"));
        const outcome = await Promise.race([exited, late]);
        clearTimeout(timer);
        if (outcome === "late") {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }
      }
      await exited;
      await draining;
      if (how.scratch) await Deno.remove(how.scratch, { recursive: true }).catch(() => {});
    },
  };
  running.add(server);
  try {
    await accepting(port, child, () => code !== null);
    if (how.ws) await accepting(how.ws.port, child, () => code !== null);
  } catch (err) {
    await server.stop();
    const log = server.log();
    throw new Error(`${system}: ${(err as Error).message}${log ? `\n${log}` : ""}`);
  }
  return server;
}
