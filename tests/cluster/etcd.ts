/**
 * A real etcd for tests: `etcd` (Debian `etcd-server`) on free 127.0.0.1
 * ports with a temporary data dir, stopped by its own PID. `ETCD_MISSING`
 * says why cluster tests are skipped on a machine without it.
 */

import { freePort } from "../client_helpers.ts";

export { freePort };

const decoder = new TextDecoder();

/** How many fresh port pairs `Etcd.start` tries when a port was taken before etcd bound it. */
const ETCD_START_TRIES_MAX = 3;

/** Why the cluster tests are skipped, or undefined when `etcd` runs here. */
export const ETCD_MISSING: string | undefined = await (async () => {
  try {
    const out = await new Deno.Command("etcd", { args: ["--version"], stdout: "piped" }).output();
    return out.success ? undefined : "etcd --version failed";
  } catch {
    return "etcd is not installed (apt-get install etcd-server): cluster tests skipped";
  }
})();
if (ETCD_MISSING !== undefined) console.warn(`SKIP: ${ETCD_MISSING}`);

/** A running etcd. */
export class Etcd {
  readonly url: string;
  readonly dir: string;
  readonly #clientPort: number;
  readonly #peerPort: number;
  #child: Deno.ChildProcess | undefined;
  #out = "";
  #pumps: Promise<void>[] = [];

  private constructor(dir: string) {
    this.dir = dir;
    this.#clientPort = freePort();
    this.#peerPort = freePort();
    this.url = `http://127.0.0.1:${this.#clientPort}`;
  }

  /** Starts etcd in a new temporary data dir and waits until it answers. */
  static async start(): Promise<Etcd> {
    for (let attempt = 1;; attempt++) {
      const e = new Etcd(await Deno.makeTempDir({ prefix: "relayr-etcd-" }));
      try {
        await e.restart();
        return e;
      } catch (err) {
        await Deno.remove(e.dir, { recursive: true });
        // A port taken between freePort() and etcd's bind: new ports, not a failed test.
        if (attempt >= ETCD_START_TRIES_MAX || !e.#out.includes("address already in use")) {
          throw err;
        }
      }
    }
  }

  /** The PID of the running process. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** What it printed. */
  get output(): string {
    return this.#out;
  }

  /** Starts it again on the same data dir and ports (after `kill`), and waits until it answers. */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error("etcd is running");
    const peer = `http://127.0.0.1:${this.#peerPort}`;
    this.#child = new Deno.Command("etcd", {
      args: [
        "--name=test",
        `--data-dir=${this.dir}/data`,
        `--listen-client-urls=${this.url}`,
        `--advertise-client-urls=${this.url}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        "--log-level=error",
        "--logger=zap",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) this.#out += decoder.decode(chunk);
    };
    this.#pumps = [pump(this.#child.stdout), pump(this.#child.stderr)];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${this.url}/version`);
        await res.body?.cancel();
        if (res.ok) return;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.kill();
    throw new Error(`etcd did not start within 15 s:\n${this.#out}`);
  }

  /** Stops the process (SIGKILL by default) and waits for it; the data dir stays. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill(signal);
    } catch { /* already gone */ }
    await child.status;
    await Promise.all(this.#pumps);
  }

  /** Stops it and removes its data dir. */
  async stop(): Promise<void> {
    await this.kill();
    await Deno.remove(this.dir, { recursive: true });
  }
}
