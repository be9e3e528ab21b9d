/**
 * Test helpers for Relayr as a child process (the compiled binary, or `bun
 * main.ts`): start it on free ports, learn the ports from its log, stop it by
 * its own PID and collect its exit status and output.
 */
import { RawClient } from "./helpers.ts";

const decoder = new TextDecoder();

/** Where the tests build the single executable (scripts/build.sh's default). */
export const BINARY = "dist/relayr";

/** Newest modification time (ms) of the files the binary is built from. */
async function newestSource(): Promise<number> {
  let newest = 0;
  const visit = async (path: string) => {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      for await (const e of Deno.readDir(path)) await visit(`${path}/${e.name}`);
    } else newest = Math.max(newest, info.mtime?.getTime() ?? 0);
  };
  for (const p of ["main.ts", "src", "package.json", "scripts/build.sh"]) await visit(p);
  return newest;
}

/** Builds dist/relayr when it is missing or older than a source file; returns its path. */
export async function ensureBinary(): Promise<string> {
  const built = await Deno.stat(BINARY).then((s) => s.mtime?.getTime() ?? 0, () => 0);
  if (built >= await newestSource()) return BINARY;
  const out = await new Deno.Command("bash", {
    args: ["scripts/build.sh", BINARY],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = decoder.decode(out.stdout) + decoder.decode(out.stderr);
  if (out.code !== 0) throw new Error(`scripts/build.sh failed:\n${text}`);
  return BINARY;
}

/** Bun's version, or undefined when `bun` is not on PATH. */
export async function bunVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("bun", { args: ["--version"], stdout: "piped" }).output();
    return out.success ? decoder.decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** One check a Bun check script reported. */
export interface BunCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Runs a check script under Bun (`bun <script> <args>`, killed after
 * `timeoutMs`) and returns its checks: one JSON line each, then
 * `{"done":true}`, which must be there (the script ran to its end).
 */
export async function runBunChecks(
  script: string,
  args: string[] = [],
  timeoutMs = 30_000,
): Promise<BunCheck[]> {
  const child = new Deno.Command("bun", {
    args: [new URL(script, import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  if (out.code !== 0) {
    throw new Error(`bun ${script} exited ${out.code}: ${decoder.decode(out.stderr)}`);
  }
  const lines = decoder.decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  if (JSON.stringify(lines.at(-1)) !== '{"done":true}') {
    throw new Error(`bun ${script} did not run to its end: ${JSON.stringify(lines.at(-1))}`);
  }
  return lines.slice(0, -1) as BunCheck[];
}

/** A started server process. */
export interface ServerProcess {
  readonly pid: number;
  /** The wire protocol port. */
  readonly port: number;
  /** The HTTP monitoring port. */
  readonly httpPort: number;
  /** The gRPC port, when started with `--grpc-port`. */
  readonly grpcPort: number | undefined;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Sends `signal` and waits (bounded) for the exit; SIGKILLs after `timeoutMs`. */
  stop(signal?: Deno.Signal, timeoutMs?: number): Promise<Deno.CommandStatus>;
}

/**
 * Starts `cmd args... --host 127.0.0.1 --port 0 --http-host 127.0.0.1
 * --http-port 0` and waits until it logs both ports. The server's data
 * directory is a fresh temporary one (through `RELAYR_DATA_DIR`, which a
 * build without that setting ignores), removed by `stop()`: `serve` would
 * otherwise write to ./data and recover it in the next run.
 */
export async function startServerProcess(
  cmd: string,
  args: string[],
  timeoutMs = 15_000,
): Promise<ServerProcess> {
  const dataDir = await Deno.makeTempDir({ prefix: "relayr-test-" });
  const child = new Deno.Command(cmd, {
    args: [...args, "--host", "127.0.0.1", "--port", "0", "--http-host", "127.0.0.1"].concat(
      ["--http-port", "0", "--log-format", "text"],
      args.includes("--grpc-port") ? [] : ["--no-grpc"],
    ),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", RELAYR_DATA_DIR: dataDir },
  }).spawn();
  let text = "";
  let changed: () => void = () => {};
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) {
      text += decoder.decode(chunk);
      changed();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM", ms = 10_000) =>
    stopped ??= (async () => {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, ms);
      const status = await child.status;
      clearTimeout(timer);
      await pumps;
      await Deno.remove(dataDir, { recursive: true });
      return status;
    })();
  const deadline = Date.now() + timeoutMs;
  const exited = child.status.then(() => "exited" as const);
  for (;;) {
    const port = text.match(/listening on [^\s:]+:(\d+)/)?.[1];
    const httpPort = text.match(/monitoring on https?:\/\/[^\s:]+:(\d+)/)?.[1];
    const grpcPort = text.match(/gRPC \(relayr\.v1\.Broker\) on [^\s:]+:(\d+)/)?.[1];
    const grpcReady = grpcPort !== undefined || !args.includes("--grpc-port");
    if (port !== undefined && httpPort !== undefined && grpcReady) {
      return {
        pid: child.pid,
        port: Number(port),
        httpPort: Number(httpPort),
        grpcPort: grpcPort === undefined ? undefined : Number(grpcPort),
        output: () => text,
        stop,
      };
    }
    const left = deadline - Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      new Promise<"changed">((res) => changed = () => res("changed")),
      new Promise<"timeout">((res) => timer = setTimeout(() => res("timeout"), Math.max(0, left))),
      exited,
    ]);
    clearTimeout(timer);
    if (r !== "changed") {
      await stop("SIGKILL");
      throw new Error(`${cmd} did not log its ports (${r}); output:\n${text}`);
    }
  }
}

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * A broker child process on a fixed data dir, for crash tests: started with
 * `--fsync <policy>`, killed with SIGKILL (by its own PID only), restarted on
 * the same directory by making another.
 */
export class CrashableBroker {
  readonly child: Deno.ChildProcess;
  port = 0;
  #out = "";
  #pumps: Promise<void>[];

  constructor(dataDir: string, fsync: "always" | "interval" = "always") {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}main.ts`, "serve", "--host", "127.0.0.1", "--port", "0"].concat(
        ["--no-http", "--no-grpc", "--data-dir", dataDir, "--fsync", fsync, "--log-format", "json"],
      ),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [this.#pump(this.child.stdout), this.#pump(this.child.stderr)];
  }

  /** Starts one on `dataDir` and waits until it listens. */
  static async start(
    dataDir: string,
    fsync: "always" | "interval" = "always",
  ): Promise<CrashableBroker> {
    const b = new CrashableBroker(dataDir, fsync);
    await b.ready();
    return b;
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream) this.#out += decoder.decode(chunk);
  }

  /** Everything it logged so far. */
  get output(): string {
    return this.#out;
  }

  /** Waits (bounded) for its "listening on" line; returns the port. */
  async ready(): Promise<number> {
    for (let i = 0; i < 600; i++) {
      const m = /listening on [0-9.]+:(\d+)/.exec(this.#out);
      if (m) return this.port = Number(m[1]);
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`broker did not start:\n${this.#out}`);
  }

  /** SIGKILL, then waits for it and its output. */
  async kill(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.child.status;
    await Promise.all(this.#pumps);
  }
}

/**
 * A crash test's broker and its clients: a `CrashableBroker` (`--fsync
 * always`) on the data dir, the `RawClient`s opened to it, and `restart()`,
 * the crash: kill -9, the clients dropped, a new broker on the same dir.
 */
export class CrashSession {
  readonly dataDir: string;
  broker: CrashableBroker;
  /** The running broker's port. */
  port = 0;
  #clients: RawClient[] = [];

  constructor(dataDir: string) {
    this.dataDir = dataDir;
    this.broker = new CrashableBroker(dataDir);
  }

  /** A client of the running broker, closed by the next restart or the end. */
  async connect(): Promise<RawClient> {
    const c = await RawClient.connect(this.port);
    this.#clients.push(c);
    return c;
  }

  /** kill -9, close the clients, start again on the same data dir; waits until it listens. */
  async restart(): Promise<void> {
    await this.broker.kill();
    await this.#closeClients();
    this.broker = await CrashableBroker.start(this.dataDir);
    this.port = this.broker.port;
  }

  async #closeClients(): Promise<void> {
    for (const c of this.#clients.splice(0)) await c.close();
  }

  /** Closes the clients and kills the broker. */
  async end(): Promise<void> {
    await this.#closeClients();
    await this.broker.kill();
  }
}

/**
 * Runs `body` with a `CrashSession` on a fresh temporary data dir (named
 * `prefix...`) whose broker is listening; whatever happens, the clients are
 * closed, the broker killed (by its PID) and the data dir removed.
 */
export async function withCrashSession(
  prefix: string,
  body: (s: CrashSession) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix });
  const s = new CrashSession(dataDir);
  try {
    s.port = await s.broker.ready();
    await body(s);
  } finally {
    await s.end();
    await Deno.remove(dataDir, { recursive: true });
  }
}
