/**
 * A Relayr broker as a child process for the long-running benches (soak,
 * fuzz): on Deno or Bun, on free ports that it logs, with its own file limit,
 * read through `/api/stats`, and stopped by its own PID only.
 *
 * tests/child.ts does the same for the test suite but always gives the child a
 * temporary data dir (through `RELAYR_DATA_DIR`), which `--memory` refuses; the
 * benches want the memory store by default, so they get this one.
 *
 * @module
 */

import type { ServerStats } from "../src/server/mod.ts";

const decoder = new TextDecoder();
const ROOT = new URL("..", import.meta.url).pathname;

/** Longest wait for the child to log both of its ports. */
const START_TIMEOUT_MS = 30_000;
/** Longest wait after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000;
/** Output kept from the child, so a long run cannot grow the bench's memory without bound. */
const OUTPUT_CHARS_MAX = 256 * 1024;

/** Where the broker runs. */
export type BrokerRuntime = "deno" | "bun";

/** Options of `startBrokerChild`. */
export interface BrokerChildOptions {
  runtime: BrokerRuntime;
  /** Extra `serve` flags (e.g. `--memory`, `--max-payload 4096`). */
  args?: string[];
  /** Raise the child's open-file limit to this (`ulimit -n` in a shell that then execs it). */
  fileLimit?: number;
  /** Extra environment variables of the child (e.g. `MALLOC_ARENA_MAX` for an allocator A/B). */
  env?: Record<string, string>;
}

/** The part of `/api/stats` the benches read. */
export interface BrokerServerStats {
  connections: number;
  total_connections: number;
  topics: number;
  queues: number;
  published_msgs: number;
  closed_by_reason: Record<string, number>;
  mem: ServerStats["mem"];
  event_loop_lag_ms: { last: number; max: number } | null;
}

/** A running broker child. */
export interface BrokerChild {
  readonly pid: number;
  readonly runtime: BrokerRuntime;
  readonly port: number;
  readonly httpPort: number;
  /** Whether it is still running. */
  alive(): boolean;
  /** Its exit status once it has exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** The last `OUTPUT_CHARS_MAX` characters it printed. */
  output(): string;
  /** `GET /api/stats` with the given query; the whole body. */
  // deno-lint-ignore no-explicit-any
  stats(query?: string): Promise<any>;
  /** `server` of `/api/stats`. */
  serverStats(): Promise<BrokerServerStats>;
  /** SIGTERM, then SIGKILL after `STOP_TIMEOUT_MS`; waits for the exit. */
  stop(): Promise<Deno.CommandStatus>;
}

/** The command line that runs `main.ts serve` on `runtime`. */
function command(runtime: BrokerRuntime): string[] {
  return runtime === "deno" ? [Deno.execPath(), "run", "-A", `${ROOT}main.ts`] : [
    "bun",
    "run",
    `${ROOT}main.ts`,
  ];
}

/** Starts a broker child on 127.0.0.1 and waits (bounded) until it logs both ports. */
export async function startBrokerChild(opts: BrokerChildOptions): Promise<BrokerChild> {
  const argv = [
    ...command(opts.runtime),
    "serve",
    ...(opts.args ?? []),
    ...["--host", "127.0.0.1", "--port", "0", "--http-host", "127.0.0.1", "--http-port", "0"],
    ...["--log-format", "text"],
    ...(opts.args ?? []).includes("--grpc-port") ? [] : ["--no-grpc"],
  ];
  // `exec` keeps the PID: the shell becomes the broker, so stop() signals the broker itself.
  const [cmd, args] = opts.fileLimit === undefined
    ? [argv[0], argv.slice(1)]
    : ["sh", ["-c", `ulimit -n ${opts.fileLimit} && exec "$0" "$@"`, ...argv]];
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  let text = "";
  let changed: () => void = () => {};
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) {
      text += decoder.decode(chunk);
      if (text.length > OUTPUT_CHARS_MAX) text = text.slice(-OUTPUT_CHARS_MAX / 2);
      changed();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already exited */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, STOP_TIMEOUT_MS);
      const s = await status;
      clearTimeout(timer);
      await pumps;
      return s;
    })();

  const deadline = Date.now() + START_TIMEOUT_MS;
  let port: number | undefined;
  let httpPort: number | undefined;
  while (port === undefined || httpPort === undefined) {
    const p = text.match(/listening on [^\s:]+:(\d+)/)?.[1];
    const h = text.match(/monitoring on http:\/\/[^\s:]+:(\d+)/)?.[1];
    if (p !== undefined && h !== undefined) {
      port = Number(p);
      httpPort = Number(h);
      break;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      new Promise<"changed">((res) => changed = () => res("changed")),
      new Promise<"timeout">((res) =>
        timer = setTimeout(() => res("timeout"), Math.max(0, deadline - Date.now()))
      ),
      status.then(() => "exited" as const),
    ]);
    clearTimeout(timer);
    if (r !== "changed") {
      await stop();
      throw new Error(`${opts.runtime} broker did not log its ports (${r}); output:\n${text}`);
    }
  }
  const stats = async (query = "limit=1&closed=0&subs=false") => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/stats?${query}`);
    if (!res.ok) {
      const body = await res.text();
      throw new Error(`/api/stats answered ${res.status}: ${body}`);
    }
    return await res.json();
  };
  return {
    pid: child.pid,
    runtime: opts.runtime,
    port,
    httpPort,
    alive: () => !exited,
    status,
    output: () => text,
    stats,
    serverStats: async () => (await stats()).server,
    stop,
  };
}

/** Parses `--runtime deno|bun|both` into the list of runtimes to run. */
export function runtimesOf(value: string): BrokerRuntime[] {
  if (value === "both") return ["deno", "bun"];
  if (value === "deno" || value === "bun") return [value];
  throw new RangeError(`--runtime must be deno, bun or both, got "${value}"`);
}

/** `n` bytes as MiB with one decimal. */
export function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}
