/**
 * `relayr stats` and `relayr cluster status`: fetch `GET /api/stats` or
 * `GET /api/cluster` from the broker's monitoring endpoint and print it as
 * JSON.
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  intFlag,
  positionalArgs,
  runCommand,
  UsageError,
} from "./common.ts";
import { HTTP_FLAGS, httpCall } from "./http.ts";

/** The options of the commands that print one JSON document from the monitoring port. */
const JSON_HTTP_OPTIONS = `Options:
      --http <host:port>    monitoring address (default: $RELAYR_HTTP, or the
                            --server host on port 8222); https://host:port for
                            a broker with --http-tls (--tls-ca: its CA)
      --compact             one line of JSON instead of indented
      --timeout <ms>        give up after this long (default: 5000)
${COMMON_HELP}`;

/** Help of `relayr stats`. */
export const STATS_HELP = `Usage: relayr stats [options]

Prints the broker's statistics (GET /api/stats of its HTTP monitoring) as JSON.

Examples:
  relayr stats
  relayr stats --http broker.internal:8222 --compact

${JSON_HTTP_OPTIONS}`;

/** Runs `relayr stats`; returns the exit code. */
export function statsCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = { ...HTTP_FLAGS, compact: { type: "boolean" } } as const;
  return runCommand({ name: "stats", help: STATS_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    positionalArgs(positionals, []);
    const timeoutMs = intFlag("timeout", values.timeout, 5000, 1);
    const stats = await httpCall(runtime, io, values, { path: "/api/stats", timeoutMs });
    io.out(values.compact ? JSON.stringify(stats) : JSON.stringify(stats, null, 2));
    return ExitCode.OK;
  });
}

/** Help of `relayr cluster`. */
export const CLUSTER_HELP = `Usage: relayr cluster status [options]

Prints this node's view of the cluster (GET /api/cluster of its HTTP
monitoring) as JSON: members, queue leaders and their epochs, the links to
the other nodes, whether it reaches etcd. A broker started without
--cluster-etcd answers 404 (exit 1). See docs/CLUSTERING.md.

Examples:
  relayr cluster status --http 127.0.0.1:8222

${JSON_HTTP_OPTIONS}`;

/** Runs `relayr cluster status`; returns the exit code. */
export function clusterCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = { ...HTTP_FLAGS, compact: { type: "boolean" } } as const;
  return runCommand({ name: "cluster", help: CLUSTER_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [what] = positionalArgs(positionals, ["status"]);
    if (what !== "status") throw new UsageError(`unknown cluster command ${JSON.stringify(what)}`);
    const timeoutMs = intFlag("timeout", values.timeout, 5000, 1);
    const view = await httpCall(runtime, io, values, { path: "/api/cluster", timeoutMs });
    io.out(values.compact ? JSON.stringify(view) : JSON.stringify(view, null, 2));
    return ExitCode.OK;
  });
}
