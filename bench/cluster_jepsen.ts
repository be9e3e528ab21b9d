/**
 * `deno task bench:jepsen`: the long Jepsen run. A real etcd and `--nodes`
 * broker processes, the recording workload (publishers and acking consumers
 * on random nodes), the faults of `--faults` in turn for `--rounds` rounds
 * (or until `--duration` seconds passed), then the heal, the final drain and
 * the checker (tests/cluster/checker.ts). Prints the history's summary and
 * the verdict with the violations' operations, writes the whole history as
 * JSON (one op per line) for reading, and exits 1 when the history is invalid.
 *
 * ```sh
 * deno task bench:jepsen                                  # 10 rounds of kill,kill,pause
 * deno task bench:jepsen --faults kill,pause,wipe,etcd --duration 300
 * deno task bench:jepsen --consumers 1 --order            # also per-publisher order
 * deno task bench:jepsen --bind topic:jepsen.in           # publish to a topic bound to the queue
 * deno task bench:jepsen --extra=--replicas --extra=3     # more `serve` flags for every node
 * deno task bench:jepsen --root /tmp/other               # nodes run another checkout's main.ts
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { describe } from "../tests/cluster/checker.ts";
import { ETCD_MISSING } from "../tests/cluster/etcd.ts";
import { historyText } from "../tests/cluster/history.ts";
import { type Fault, FAULTS, runJepsen, WORKLOAD_DEFAULTS } from "../tests/cluster/jepsen_run.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "10" },
    duration: { type: "string", default: "0" },
    faults: { type: "string", default: "kill,kill,pause" },
    nodes: { type: "string", default: "3" },
    ttl: { type: "string", default: "1" },
    publishers: { type: "string", default: String(WORKLOAD_DEFAULTS.publishers) },
    consumers: { type: "string", default: String(WORKLOAD_DEFAULTS.consumers) },
    window: { type: "string", default: String(WORKLOAD_DEFAULTS.window) },
    pacing: { type: "string", default: String(WORKLOAD_DEFAULTS.pacingMs) },
    order: { type: "boolean", default: false },
    bind: { type: "string" },
    extra: { type: "string", multiple: true, default: [] },
    root: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(`deno task bench:jepsen [options]
  --rounds N        fault rounds (default 10), cycling through --faults
  --duration S      keep cycling until S seconds passed (default 0: just --rounds)
  --faults LIST     of ${FAULTS.join(",")} (default kill,kill,pause)
  --nodes N         broker nodes (default 3)
  --ttl S           --cluster-lease-ttl (default 1)
  --publishers N, --consumers N, --window N, --pacing MS   the workload
  --order           check per-publisher order of first deliveries (use --consumers 1)
  --bind TOPIC      publish to TOPIC, bound (BIND) to the queue: every payload is a binding's copy
  --extra ARG       one more serve argument for every node (repeat: --extra=--replicas --extra=3)
  --root DIR        run the nodes from another checkout's main.ts (e.g. git archive <branch> into
                    DIR, with a node_modules symlink)
  --out PATH        history file (default bench/results/jepsen-<timestamp>.json)`);
  Deno.exit(0);
}
if (ETCD_MISSING !== undefined) {
  console.error(ETCD_MISSING);
  Deno.exit(1);
}
const faults = values.faults.split(",").filter((f) => f !== "");
for (const f of faults) {
  if (!(FAULTS as readonly string[]).includes(f)) {
    console.error(`--faults: unknown fault ${JSON.stringify(f)} (one of ${FAULTS.join(", ")})`);
    Deno.exit(2);
  }
}
const rounds = Number(values.rounds);
const schedule = Array.from({ length: rounds }, (_, i) => faults[i % faults.length] as Fault);
const about = { ...values, started: new Date().toISOString() };
console.log(
  `jepsen: ${values.nodes} nodes, faults ${faults.join(",")} x ${rounds} rounds` +
    (Number(values.duration) > 0 ? ` or ${values.duration} s` : ""),
);

const r = await runJepsen({
  cluster: {
    nodes: Number(values.nodes),
    etcd: true,
    leaseTtl: Number(values.ttl),
    extra: values.extra,
    root: values.root,
  },
  workload: {
    publishers: Number(values.publishers),
    consumers: Number(values.consumers),
    window: Number(values.window),
    pacingMs: Number(values.pacing),
  },
  faults: schedule,
  durationMs: Number(values.duration) * 1000,
  order: values.order,
  bindTopic: values.bind,
  log: (line) => console.log(line),
});
const out = values.out ??
  `bench/results/jepsen-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
await Deno.writeTextFile(out, historyText(r.history.toJSON(about)));
console.log(
  `history: ${r.history.ops.length} ops in ${(r.ms / 1000).toFixed(1)} s, written to ${out}`,
);
console.log(`ops: ${JSON.stringify(r.history.counts())}`);
console.log(
  `drain: ${r.drained ? "every OK'd publish delivered" : "ended with OK'd publishes undelivered"}`,
);
console.log(describe(r.verdict));
// Whether what the drain missed was still held by some node (slow) or by none (lost).
if (!r.verdict.valid) console.log(`copies when the drain ended:\n${r.copies}`);
Deno.exit(r.verdict.valid ? 0 : 1);
