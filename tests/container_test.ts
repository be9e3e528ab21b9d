/**
 * The container image, for real: the Dockerfile is built with podman and the
 * broker runs in the container: the documented exchange, `kill -9` of the
 * container with `--fsync always` and a restart on the same volume that
 * delivers every message that got its OK, the image's health check command,
 * the unprivileged user, and exit 0 on `podman stop` (SIGTERM).
 *
 * What it takes on this machine (and what it does not need):
 * - No registry: `node:22` and `debian:bookworm-slim` cannot be pulled here, so
 *   the binary is built on the host (`BINARY=prebuilt`) and the run stage's
 *   base (`RUN_BASE`) is a Debian bookworm made with `debootstrap --variant=minbase`
 *   from the apt mirror, imported once as `localhost/relayr-test-base:bookworm`
 *   and reused by later runs. The Dockerfile is the one users build; only its
 *   build arguments differ.
 * - The engine: podman with runc. Where root lacks CAP_SYS_RESOURCE (this VM),
 *   runc's setrlimit fails, and scripts/oci-runtime-no-rlimits.sh drops the
 *   rlimits from the container's spec.
 * - Host networking, on free ports of 127.0.0.1.
 *
 * Skipped, with the reason printed, when podman, runc or debootstrap is not
 * installed or no container can run (.ci/run installs all three).
 */
import assert from "node:assert/strict";
import { ensureBinary } from "./child.ts";
import { freePort } from "./client_helpers.ts";
import { RawClient } from "./helpers.ts";

const BASE = "localhost/relayr-test-base:bookworm";
const IMAGE = "localhost/relayr:test";
const WRAPPER = new URL("../scripts/oci-runtime-no-rlimits.sh", import.meta.url).pathname;
const decoder = new TextDecoder();

interface Run {
  code: number;
  out: string;
}

async function run(cmd: string, args: string[], stdin?: ReadableStream<Uint8Array>): Promise<Run> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) await stdin.pipeTo(child.stdin);
  const o = await child.output();
  return { code: o.code, out: decoder.decode(o.stdout) + decoder.decode(o.stderr) };
}

async function installed(cmd: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${cmd} || test -x /usr/sbin/${cmd}`])).code === 0;
}

/** The podman flags that let a container run here, or why none can. */
async function engine(): Promise<{ flags: string[] } | { skip: string }> {
  for (const cmd of ["podman", "runc", "debootstrap"]) {
    if (!await installed(cmd)) return { skip: `${cmd} is not installed (apt-get install ${cmd})` };
  }
  const base = await ensureBase();
  if (base !== undefined) return { skip: base };
  const probe = ["run", "--rm", "--network=none", BASE, "true"];
  const plain = await run("podman", ["--runtime", "runc", ...probe]);
  if (plain.code === 0) return { flags: ["--runtime", "runc"] };
  if (!/setrlimit|setting rlimit/.test(plain.out)) {
    return { skip: `podman cannot run a container: ${plain.out}` };
  }
  const wrapped = await run("podman", ["--runtime", WRAPPER, ...probe]);
  if (wrapped.code === 0) return { flags: ["--runtime", WRAPPER] };
  return { skip: `podman cannot run a container, even without rlimits: ${wrapped.out}` };
}

/** Makes the Debian base image once (debootstrap, ~30 s); undefined when it is there. */
async function ensureBase(): Promise<string | undefined> {
  if ((await run("podman", ["image", "exists", BASE])).code === 0) return undefined;
  const dir = await Deno.makeTempDir({ prefix: "relayr-rootfs-" });
  try {
    const boot = await run("debootstrap", [
      "--variant=minbase",
      "bookworm",
      dir,
      "http://deb.debian.org/debian",
    ]);
    if (boot.code !== 0) return `debootstrap failed: ${boot.out.split("\n").slice(-3).join(" ")}`;
    const tar = new Deno.Command("tar", { args: ["-C", dir, "-c", "."], stdout: "piped" }).spawn();
    const imported = await run("podman", ["import", "-", BASE], tar.stdout);
    await tar.status;
    return imported.code === 0 ? undefined : `podman import failed: ${imported.out}`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `n` distinct free ports of 127.0.0.1 (the container shares the host's network). */
function freePorts(n: number): number[] {
  const ports = new Set<number>();
  for (let i = 0; ports.size < n && i < n * 10; i++) ports.add(freePort());
  return [...ports];
}

/** Waits (bounded) until the broker in the container accepts connections on `port`. */
async function accepting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`the container never listened on ${port}: ${e}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const setup = await engine();
if ("skip" in setup) console.log(`container_test: skipped, ${setup.skip}`);

Deno.test({
  name: "container: the image builds, serves, survives kill -9 on its volume, stops on SIGTERM",
  ignore: "skip" in setup,
  async fn() {
    const flags = "flags" in setup ? setup.flags : [];
    const podman = (...args: string[]) => run("podman", [...flags, ...args]);
    const ctx = await Deno.makeTempDir({ prefix: "relayr-image-" });
    const name = `relayr-test-${Deno.pid}`;
    const volume = `${name}-data`;
    const [port, httpPort, grpcPort] = freePorts(3);
    try {
      await Deno.mkdir(`${ctx}/dist`);
      await Deno.copyFile(await ensureBinary(), `${ctx}/dist/relayr`);
      await Deno.chmod(`${ctx}/dist/relayr`, 0o755);
      await Deno.copyFile("Dockerfile", `${ctx}/Dockerfile`);
      const built = await podman(
        ...["build", "--pull=never", "--network=none", "--format", "docker"],
        ...["--build-arg", "BINARY=prebuilt", "--build-arg", `RUN_BASE=${BASE}`, "-t", IMAGE, ctx],
      );
      assert.equal(built.code, 0, built.out);

      const start = async () => {
        const started = await podman(
          ...["run", "-d", "--name", name, "--network=host", "-v", `${volume}:/data`, IMAGE],
          ...["serve", "--host", "127.0.0.1", "--port", `${port}`, "--http-port", `${httpPort}`],
          ...["--fsync", "always", "--grpc-port", `${grpcPort}`],
        );
        assert.equal(started.code, 0, started.out);
        await accepting(port, 30_000).catch(async (e) => {
          throw new Error(`${e.message}; container log:\n${(await podman("logs", name)).out}`);
        });
      };

      // The documented exchange, then three orders that get their OK under --fsync always.
      await start();
      const c = await RawClient.connect(port);
      const ids: string[] = [];
      try {
        await c.send('CONNECT {"version":"1.0","client_id":"client123"}\r\n');
        assert.equal(await c.line(), "OK");
        for (const body of ["order-1", "order-2", "order-3"]) {
          await c.send(`PUB queue:orders ${body.length}\r\n${body}\r\n`);
          ids.push((await c.line()).match(/^OK msg_id:(\d+)$/)![1]);
        }
      } finally {
        await c.close();
      }
      const user = await podman("exec", name, "id", "-u");
      assert.equal(user.out.trim(), "10001", "the broker runs as the image's relayr user");
      const health = await podman(
        ...["exec", name, "/usr/local/bin/relayr", "stats", "--compact", "--timeout", "3000"],
        ...["--http", `127.0.0.1:${httpPort}`],
      );
      assert.equal(health.code, 0, `the HEALTHCHECK command: ${health.out}`);

      // kill -9, and a new container on the same volume delivers every OK'd order.
      assert.equal((await podman("kill", "-s", "KILL", name)).code, 0);
      await podman("wait", name);
      assert.equal((await podman("rm", name)).code, 0);
      await start();
      const s = await RawClient.connect(port);
      try {
        await s.send("SUB queue:orders sub_id:w\r\n");
        assert.equal(await s.line(), "OK");
        const got = await s.msgs(3);
        assert.deepEqual(got.map((f) => f.fields!.msg_id), ids);
        assert.deepEqual(got.map((f) => decoder.decode(f.payload)), [
          "order-1",
          "order-2",
          "order-3",
        ]);
        for (const id of ids) {
          await s.send(`ACK msg_id:${id}\r\n`);
          assert.equal(await s.line(), "OK");
        }
      } finally {
        await s.close();
      }

      // podman stop sends the image's STOPSIGNAL (SIGTERM): a clean exit 0.
      assert.equal((await podman("stop", "-t", "10", name)).code, 0);
      const exit = await podman("inspect", "--format", "{{.State.ExitCode}}", name);
      assert.equal(exit.out.trim(), "0", (await podman("logs", name)).out);
    } finally {
      await podman("rm", "-f", name);
      await podman("volume", "rm", "-f", volume);
      await Deno.remove(ctx, { recursive: true });
    }
  },
});
