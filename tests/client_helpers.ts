/**
 * Helpers of the client and CLI tests: a broker as a real child process
 * (`deno run -A main.ts serve`) and free ports. Bounded waits are
 * `waitFor` of tests/helpers.ts.
 */

import type { Message } from "../src/client/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The next `n` messages of a subscription, bounded by `timeoutMs` (fails with how many came). */
export async function take(
  sub: AsyncIterable<Message>,
  n: number,
  timeoutMs = 5000,
): Promise<Message[]> {
  const out: Message[] = [];
  const it = sub[Symbol.asyncIterator]();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`only ${out.length} of ${n} messages`)), timeoutMs);
  });
  try {
    while (out.length < n) {
      const r = await Promise.race([it.next(), timeout]);
      if (r.done) break;
      out.push(r.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

/** Where `freePort` looks: below Linux's ephemeral range (32768-60999 by default). */
const PORT_PICK_LOW = 20_000;
const PORT_PICK_TRIES_MAX = 200;

/** The low end of the kernel's ephemeral port range, or undefined when it cannot be read. */
const EPHEMERAL_LOW: number | undefined = (() => {
  try {
    const low = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > PORT_PICK_LOW + 1000 ? low : undefined;
  } catch {
    return undefined;
  }
})();

/** True when 127.0.0.1:`port` can be listened on now. */
function bindable(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * A port that was free a moment ago. It is picked at random *below* the
 * kernel's ephemeral range: a port from `listen(0)` lies inside that range, so
 * between our close and the child's bind any outgoing connection on the
 * machine (this suite makes thousands) may take it as its local port, and the
 * child dies with "address already in use" (seen in CI with etcd). Outside
 * the range only another explicit bind can collide. Falls back to `listen(0)`
 * where the range is unknown.
 */
export function freePort(): number {
  if (EPHEMERAL_LOW !== undefined) {
    for (let i = 0; i < PORT_PICK_TRIES_MAX; i++) {
      const port = PORT_PICK_LOW + Math.floor(Math.random() * (EPHEMERAL_LOW - PORT_PICK_LOW));
      if (bindable(port)) return port;
    }
  }
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * A broker child process on a fixed port; restartable on the same port. It
 * runs in a temporary directory of its own, so its durable state (`./data`)
 * survives its restarts but never leaks into the repository or another test.
 */
export class BrokerProcess {
  readonly port: number;
  readonly args: string[];
  readonly dir: string;
  #child: Deno.ChildProcess | null = null;

  private constructor(port: number, args: string[], dir: string) {
    this.port = port;
    this.args = args;
    this.dir = dir;
  }

  /** Spawns a broker on `port` (default: a free one) and waits until it accepts connections. */
  static async start(args: string[] = [], port = freePort()): Promise<BrokerProcess> {
    const b = new BrokerProcess(
      port,
      args,
      await Deno.makeTempDir({ prefix: "relayr-client-test-" }),
    );
    await b.restart();
    return b;
  }

  /** Kills the broker and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** `127.0.0.1:<port>`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** True while the child runs. */
  get running(): boolean {
    return this.#child !== null;
  }

  /** Starts the child again (after `kill`) on the same port. */
  async restart(): Promise<void> {
    if (this.#child !== null) throw new Error("broker already running");
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        `${ROOT}deno.json`,
        `${ROOT}main.ts`,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        String(this.port),
        ...(this.args.includes("--http-port") ? [] : ["--no-http"]),
        ...(this.args.includes("--grpc-port") ? [] : ["--no-grpc"]),
        "--log-level",
        "error",
        ...this.args,
      ],
      cwd: this.dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
        c.close();
        return;
      } catch {
        if (Date.now() > deadline) {
          await this.kill();
          throw new Error(`broker did not start on port ${this.port}`);
        }
        await new Promise((r) => setTimeout(r, 50)); // the next connect attempt
      }
    }
  }

  /** Stops the child we started, by its PID (SIGKILL: a crash; SIGTERM: a graceful stop). */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#child = null;
    try {
      child.kill(signal);
    } catch { /* already exited */ }
    await child.status;
  }
}

/** What a `relayr` child process did. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `relayr <args>` to completion (bounded by `timeoutMs`), feeding `stdin`. */
export async function relayr(
  args: string[],
  opts: { stdin?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, ...args],
    cwd: ROOT,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
