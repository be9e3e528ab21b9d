/**
 * Turns outcomes into the side-by-side table, the driver-ceiling table and the
 * targets check, as aligned text or as Markdown.
 *
 * @module
 */
import type { Ceiling, Outcome, Scenario } from "./scenario.ts";

/** Table cells, the first row the header. */
type Table = string[][];

/** `16 B`, `256 B`, `4 KiB`. */
export function sizeText(size: number): string {
  if (size >= 1024 * 1024 && size % (1024 * 1024) === 0) return `${size / 1024 / 1024} MiB`;
  if (size >= 1024 && size % 1024 === 0) return `${size / 1024} KiB`;
  return `${size} B`;
}

/** `1.23 M`, `456 k`. */
export function rateText(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "-";
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)} k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function msText(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "-";
  if (n < 1) return n.toFixed(3);
  if (n < 10) return n.toFixed(2);
  return n.toFixed(1);
}

function mbText(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "-";
  return n < 10 ? n.toFixed(2) : n.toFixed(0);
}

/** Half the range of repeated rates, relative to their median: `±12%`. */
function spreadText(rates: number[] | undefined): string {
  if (!rates || rates.length < 2) return "-";
  const sorted = [...rates].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  return `±${Math.round((50 * (sorted[sorted.length - 1] - sorted[0])) / median)}%`;
}

/** Renders a table as aligned text or Markdown; columns of numbers are right-aligned. */
export function render(table: Table, markdown: boolean): string {
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const numeric = table[0].map((_, c) => {
    const cells = table.slice(1).map((r) => r[c]).filter((t) => !["", "-", "FAILED"].includes(t));
    return c > 0 && cells.length > 0 && cells.every((t) => /^([\d±]|p50 )/.test(t));
  });
  const cell = (text: string, c: number) =>
    numeric[c] ? text.padStart(widths[c]) : text.padEnd(widths[c]);
  const lines = table.map((row) => row.map(cell));
  if (!markdown) {
    const rule = widths.map((w) => "-".repeat(w));
    return [lines[0], rule, ...lines.slice(1)].map((r) => r.join("  ").trimEnd()).join("\n");
  }
  const rule = widths.map((w, c) => numeric[c] ? `${"-".repeat(w - 1)}:` : "-".repeat(w));
  return [lines[0], rule, ...lines.slice(1)].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The mode of the driver ceiling a scenario is held against. */
function ceilingFor(o: Outcome): Ceiling | null {
  if (o.scenario === "pub") return "pub";
  if (o.scenario === "rpc") return null;
  if (o.scenario === "fanout") return "fanout";
  if (
    (o.scenario === "queue" || o.scenario === "bind" || o.scenario === "delayed") &&
    o.protocol !== "nats"
  ) return "ack";
  return "recv";
}

function find(outcomes: Outcome[], system: string, scenario: Scenario, size: number) {
  return outcomes.find((o) =>
    o.system === system && o.scenario === scenario && o.size === size && !o.ceiling
  );
}

/** The Relayr run a peer is compared with: `relayr` if it ran, else the first Relayr variant. */
function base(outcomes: Outcome[], scenario: Scenario, size: number): Outcome | undefined {
  return find(outcomes, "relayr", scenario, size) ??
    outcomes.find((o) =>
      o.system.startsWith("relayr") && o.scenario === scenario && o.size === size && !o.ceiling
    );
}

/**
 * The Relayr run `o` is compared with: `base` for a peer (`relayr-ws` for a
 * peer over WebSocket, like against like), the same runtime's current build
 * for an A/B build (`--base`); null for Relayr's own rows.
 */
function counterpart(outcomes: Outcome[], o: Outcome): Outcome | undefined | null {
  const ab = o.system.endsWith("-base") ? o.system.slice(0, -"-base".length) : undefined;
  if (ab !== undefined) return find(outcomes, ab, o.scenario, o.size);
  if (o.system.startsWith("relayr")) return null;
  return o.system.endsWith("-ws")
    ? find(outcomes, "relayr-ws", o.scenario, o.size)
    : base(outcomes, o.scenario, o.size);
}

/**
 * Relayr compared with a peer: throughput ratio, or p50 ratio for rpc.
 * `relayr-ws` also shows itself against Relayr over TCP (`ws/tcp`).
 */
function ratio(outcomes: Outcome[], o: Outcome): string {
  if (o.system === "relayr-ws") {
    const tcp = find(outcomes, "relayr", o.scenario, o.size);
    if (!tcp?.ok || !o.ok) return "";
    if (o.scenario === "rpc") return `ws/tcp p50 ${(o.p50! / tcp.p50!).toFixed(2)}x`;
    return `ws/tcp ${(o.rate! / tcp.rate!).toFixed(2)}x`;
  }
  const r = counterpart(outcomes, o);
  if (r === null) return "";
  if (!r?.ok || !o.ok) return "-";
  if (o.scenario === "rpc") return `p50 ${(r.p50! / o.p50!).toFixed(2)}x`;
  return `${(r.rate! / o.rate!).toFixed(2)}x`;
}

/**
 * The peer's server CPU per message over Relayr's (above 1: Relayr does the
 * work with less CPU), compared as `ratio` compares rates.
 */
function cpuRatio(outcomes: Outcome[], o: Outcome): string {
  const r = counterpart(outcomes, o);
  if (r === null) return "";
  if (r?.cpuUs === undefined || o.cpuUs === undefined || o.scenario === "rpc") return "-";
  return `${(o.cpuUs / r.cpuUs).toFixed(2)}x`;
}

/** The side-by-side table: one row per scenario, size and system. */
export function mainTable(outcomes: Outcome[], markdown: boolean): string {
  const ceilings = outcomes.filter((o) => o.ceiling && o.ok);
  const table: Table = [[
    "scenario",
    "size",
    "system",
    "msgs/s",
    "MB/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "relayr/x",
    "of ceiling",
    "srv µs/msg",
    "wait µs/msg",
    "cpu x",
    "drv µs/msg",
  ]];
  const spread = outcomes.some((o) => o.repeats);
  if (spread) table[0].push("spread");
  for (const o of outcomes.filter((o) => !o.ceiling)) {
    const mode = ceilingFor(o);
    const c = ceilings.find((x) =>
      x.protocol === o.protocol && x.size === o.size && x.ceiling === mode
    );
    const share = o.ok && c ? `${Math.round(100 * o.rate! / c.rate!)}%` : "-";
    table.push([
      o.scenario,
      sizeText(o.size),
      o.system,
      o.ok ? rateText(o.rate) : "FAILED",
      o.ok ? mbText(o.mbps) : "-",
      msText(o.p50),
      msText(o.p99),
      msText(o.p999),
      ratio(outcomes, o),
      share,
      o.cpuUs === undefined ? "-" : o.cpuUs.toFixed(3),
      o.waitUs === undefined ? "-" : o.waitUs.toFixed(3),
      cpuRatio(outcomes, o),
      o.driverCpuUs === undefined ? "-" : o.driverCpuUs.toFixed(3),
    ]);
    if (spread) table[table.length - 1].push(spreadText(o.repeats));
  }
  return render(table, markdown);
}

/** A ceiling's row: protocol, mode and the server it ran against (`discard` or `sink`). */
function ceilingKey(o: Outcome): string {
  return `${o.protocol} ${o.ceiling} (${o.system})`;
}

/** Driver ceilings: one row per protocol and mode, one column per size. */
export function ceilingTable(outcomes: Outcome[], markdown: boolean): string {
  const runs = outcomes.filter((o) => o.ceiling);
  if (runs.length === 0) return "";
  const sizes = [...new Set(runs.map((o) => o.size))];
  const table: Table = [["driver ceiling", ...sizes.map(sizeText)]];
  const keys = [...new Set(runs.map(ceilingKey))];
  for (const key of keys) {
    const row = [key];
    for (const size of sizes) {
      const o = runs.find((x) => ceilingKey(x) === key && x.size === size);
      row.push(!o ? "-" : o.ok ? `${rateText(o.rate)} (${mbText(o.mbps)} MB/s)` : "FAILED");
    }
    table.push(row);
  }
  return render(table, markdown);
}

/** The failures, one line each. */
export function failures(outcomes: Outcome[]): string {
  return outcomes.filter((o) => !o.ok).map((o) =>
    `FAILED ${o.ceiling ? `ceiling ${o.ceiling}` : o.scenario} ${
      sizeText(o.size)
    } ${o.system}: ${o.error}`
  ).join("\n");
}

interface Target {
  text: string;
  check(outcomes: Outcome[], size: number): [string, boolean] | null;
}

function vs(
  peer: string,
  scenario: Scenario,
  min: number,
  text: string,
  system = "relayr",
): Target {
  return {
    text,
    check(outcomes, size) {
      const r = find(outcomes, system, scenario, size);
      const p = find(outcomes, peer, scenario, size);
      if (!r?.ok || !p?.ok) return null;
      const x = r.rate! / p.rate!;
      return [`${x.toFixed(2)}x`, x >= min];
    },
  };
}

function rate(
  scenario: Scenario,
  min: number,
  text: string,
  only: number,
  system = "relayr",
): Target {
  return {
    text,
    check(outcomes, size) {
      if (size !== only) return null;
      const r = find(outcomes, system, scenario, size);
      if (!r?.ok) return null;
      return [rateText(r.rate), r.rate! >= min];
    },
  };
}

/** The issue's targets for Relayr (absolute rates at 16 B, ratios at every size). */
const TARGETS: Target[] = [
  rate("sub", 1e6, "pub → 1 sub ≥ 1 M msgs/s (16 B)", 16),
  vs("nats", "sub", 0.6, "pub → 1 sub ≥ 0.6x nats"),
  vs("nats", "fanout", 0.5, "fan-out 4 ≥ 0.5x nats per subscriber"),
  rate("queue", 4e5, "queue, 2 consumers acking ≥ 400 k msgs/s (16 B)", 16),
  vs("redis", "queue", 1.0001, "queue ahead of redis LPUSH/BRPOP"),
  // Durable (issue #6): the queue scenario publishes through the log and acks every message.
  rate("queue", 2e5, "durable queue, fsync interval ≥ 200 k msgs/s (256 B)", 256, "relayr-log"),
  vs(
    "redis-aof",
    "queue",
    0,
    "durable queue (interval) vs redis appendfsync everysec",
    "relayr-log",
  ),
  vs(
    "nats-js",
    "queue",
    0,
    "durable queue (interval) vs nats jetstream",
    "relayr-log",
  ),
  vs("nats-tls", "sub", 0, "TLS pub → 1 sub vs nats TLS (same certificates)", "relayr-tls"),
  vs(
    "redis-aof-always",
    "queue",
    1.0001,
    "durable queue (always) ahead of redis appendfsync always",
    "relayr-log-always",
  ),
  // Issue #14: permission checks (a user with 100 allow rules) cost at most 5% of pub->sub.
  vs(
    "relayr",
    "sub",
    0.95,
    "pub → 1 sub with permissions (100 rules) ≥ 0.95x without",
    "relayr-perms",
  ),
  {
    text: "req/reply p50 ≤ 1.5x nats",
    check(outcomes, size) {
      const r = find(outcomes, "relayr", "rpc", size);
      const p = find(outcomes, "nats", "rpc", size);
      if (!r?.ok || !p?.ok) return null;
      const x = r.p50! / p.p50!;
      return [`${x.toFixed(2)}x`, x <= 1.5];
    },
  },
];

/** Which targets Relayr meets, per size. */
export function targetTable(outcomes: Outcome[], markdown: boolean): string {
  const sizes = [...new Set(outcomes.filter((o) => !o.ceiling).map((o) => o.size))];
  const table: Table = [["target", ...sizes.map(sizeText)]];
  for (const t of TARGETS) {
    const row = [t.text];
    for (const size of sizes) {
      const r = t.check(outcomes, size);
      row.push(r === null ? "" : `${r[0]} ${r[1] ? "met" : "MISSED"}`);
    }
    if (row.slice(1).some((c) => c !== "")) table.push(row);
  }
  return table.length > 1 ? render(table, markdown) : "";
}
