/**
 * `deno task bench:sdk`: the Relayr SDK against a Relayr broker beside the
 * official NATS JavaScript clients against nats-server, same scenario, same
 * run. Both servers run as children for the whole run; every client run is a
 * child process of its own (`bench/sdk_client.ts`) on Deno or Bun, and the
 * clients take turns within each round, so a load swing on the shared
 * machine hits all of them alike. Prints the median msgs/s of the rounds and
 * the ratio Relayr SDK / NATS client. See bench/README.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { ClientRun } from "./sdk_client.ts";
import { type Server, start, stopAll } from "./servers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLIENTS = ["relayr", "relayr-base", "nats", "nats3"] as const;
type ClientName = (typeof CLIENTS)[number];
const CLIENT_TEXT: Record<ClientName, string> = {
  relayr: "Relayr SDK",
  "relayr-base": "SDK of --base",
  nats: "nats 2.29",
  nats3: "@nats-io/transport-node 3",
};
const SCENARIO_TEXT: Record<string, string> = {
  sub: "pub -> sub",
  pub: "publish only",
  queue: "pub -> queue, acked",
};
/** Longest one client run may take. */
const RUN_TIMEOUT_MS = 120_000;

const HELP = `deno task bench:sdk [options]

The Relayr SDK (Relayr broker) beside the NATS JS clients (nats-server):
one connection publishes --msgs messages without waiting, one subscriber on
another connection receives them (sub), a queue consumer acks each (queue;
NATS: a queue group, no acks), or nobody subscribes (pub).

Options:
  --runtimes LIST    deno,bun (default both)
  --clients LIST     ${CLIENTS.join(",")} (default all; relayr-base with --base)
  --base DIR         A/B: also run the SDK of the checkout in DIR (client relayr-base,
                     driven by this checkout's loop, against the same broker; e.g.
                     git archive main | tar -x -C DIR)
  --scenarios LIST   sub,pub,queue (default sub,pub)
  --sizes LIST       payload bytes (default 16)
  --msgs N           messages per run (default 500000)
  --repeat N         rounds; the median is reported (default 3)
  --json             print the raw runs as JSON too
`;

const { values } = parseArgs({
  options: {
    runtimes: { type: "string", default: "deno,bun" },
    clients: { type: "string", default: "" },
    base: { type: "string" },
    scenarios: { type: "string", default: "sub,pub" },
    sizes: { type: "string", default: "16" },
    msgs: { type: "string", default: "500000" },
    repeat: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(HELP);
  Deno.exit(0);
}
const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
const runtimes = list(values.runtimes);
const clients =
  (values.clients === ""
    ? CLIENTS.filter((c) => c !== "relayr-base" || values.base !== undefined)
    : list(values.clients)) as ClientName[];
const BASE = values.base === undefined ? undefined : `${Deno.realPathSync(values.base)}/`;
if (clients.includes("relayr-base") && BASE === undefined) {
  throw new Error("client relayr-base needs --base DIR");
}
const scenarios = list(values.scenarios);
const sizes = list(values.sizes).map(Number);
const msgs = Number(values.msgs);
const repeat = Number(values.repeat);
for (const c of clients) if (!CLIENTS.includes(c)) throw new Error(`unknown client ${c}`);

/** Runs one client child; its JSON line, or an error with its output. */
async function runClient(
  runtime: string,
  client: ClientName,
  port: number,
  scenario: string,
  size: number,
): Promise<ClientRun> {
  // relayr-base: this loop, driving the SDK of the other checkout (the loop is held constant).
  const name = client === "relayr-base" ? "relayr" : client;
  const argv = [`${ROOT}bench/sdk_client.ts`, name, String(port), scenario, String(msgs)];
  argv.push(String(size));
  if (client === "relayr-base") argv.push(BASE!.slice(0, -1));
  // Deno resolves the SDK's npm imports (msgpackr) by the config of the checkout they are in.
  const config = `${client === "relayr-base" ? BASE : ROOT}deno.json`;
  const [cmd, args] = runtime === "bun"
    ? ["bun", argv]
    : [Deno.execPath(), ["run", "-A", "--config", config, ...argv]];
  const child = new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `${client} on ${runtime} failed (${out.code}): ${text}\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return JSON.parse(text.split("\n").at(-1)!) as ClientRun;
}

/** CPU time (user + system) of a process so far, µs, from /proc; null where there is none. */
function cpuUs(pid: number): number | null {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; in clock ticks (100/s).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor((s.length - 1) / 2)];
}

/** A client run, with the server's CPU per message over it. */
type Run = ClientRun & { serverCpuUsPerMsg?: number };

const servers: Server[] = [];
try {
  const relayr = await start("relayr", { root: ROOT, relayrArgs: [] });
  servers.push(relayr);
  const nats = await start("nats", { root: ROOT, relayrArgs: [] });
  servers.push(nats);
  const runs: Run[] = [];
  for (let round = 0; round < repeat; round++) {
    for (const runtime of runtimes) {
      for (const scenario of scenarios) {
        for (const size of sizes) {
          for (const client of clients) {
            const ours = client === "relayr" || client === "relayr-base";
            const port = ours ? relayr.port : nats.port;
            const server = ours ? relayr : nats;
            const before = cpuUs(server.pid);
            const r: Run = await runClient(runtime, client, port, scenario, size);
            r.client = client; // relayr-base's child reports itself as relayr
            const after = cpuUs(server.pid);
            // The server's CPU over the whole client run, warm-up (a tenth more) included.
            r.serverCpuUsPerMsg = before === null || after === null
              ? 0
              : Math.round((after - before) / (msgs * 1.1) * 1000) / 1000;
            runs.push(r);
            console.error(
              `round ${round + 1}: ${runtime} ${scenario} ${size} B ${client}: ${
                scenario === "pub" ? r.pubPerSec : r.subPerSec
              } msgs/s, CPU/msg ${r.cpuUsPerMsg} µs client, ${r.serverCpuUsPerMsg} µs server`,
            );
          }
        }
      }
    }
  }
  if (values.json) console.log(JSON.stringify(runs));
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  const cpuOf = (
    c: ClientName,
    runtime: string,
    scenario: string,
    size: number,
    of: "cpuUsPerMsg" | "serverCpuUsPerMsg",
  ) =>
    median(
      runs.filter((r) =>
        r.client === c && r.runtime === runtime && r.scenario === scenario && r.size === size
      ).map((r) => r[of] ?? 0),
    );
  const head = ["runtime", "scenario", "size", ...clients.map((c) => CLIENT_TEXT[c])];
  const others = clients.filter((c) => c !== "relayr");
  if (clients.includes("relayr")) head.push(...others.map((c) => `SDK / ${CLIENT_TEXT[c]}`));
  console.log(`| ${head.join(" | ")} |`);
  console.log(`| ${head.map(() => "---").join(" | ")} |`);
  for (const runtime of runtimes) {
    for (const scenario of scenarios) {
      for (const size of sizes) {
        const rate = (c: ClientName) =>
          median(
            runs.filter((r) =>
              r.client === c && r.runtime === runtime && r.scenario === scenario && r.size === size
            ).map((r) => scenario === "pub" ? r.pubPerSec : r.subPerSec),
          );
        const row = [runtime, SCENARIO_TEXT[scenario] ?? scenario, `${size} B`];
        row.push(...clients.map((c) => fmt(rate(c))));
        if (clients.includes("relayr")) {
          row.push(...others.map((c) => `${(rate("relayr") / rate(c)).toFixed(2)}x`));
        }
        console.log(`| ${row.join(" | ")} |`);
      }
    }
  }
  console.log(`\n${msgs} msgs per run, median of ${repeat} rounds, msgs/s.\n`);
  // CPU per message of the client process: what a loaded machine disturbs least.
  const cpuHead = ["runtime", "scenario", "size", ...clients.map((c) => CLIENT_TEXT[c])];
  console.log(`| ${cpuHead.join(" | ")} |`);
  console.log(`| ${cpuHead.map(() => "---").join(" | ")} |`);
  for (const runtime of runtimes) {
    for (const scenario of scenarios) {
      for (const size of sizes) {
        const row = [runtime, SCENARIO_TEXT[scenario] ?? scenario, `${size} B`];
        row.push(
          ...clients.map((c) =>
            `${cpuOf(c, runtime, scenario, size, "cpuUsPerMsg").toFixed(2)} / ${
              cpuOf(c, runtime, scenario, size, "serverCpuUsPerMsg").toFixed(2)
            } µs`
          ),
        );
        console.log(`| ${row.join(" | ")} |`);
      }
    }
  }
  console.log(
    "\nCPU (user + system) per message, client process / server process (Relayr or" +
      " nats-server, warm-up included), median of the rounds.",
  );
} finally {
  await stopAll();
}
