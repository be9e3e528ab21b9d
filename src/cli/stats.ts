/**
 * `relayr stats`: fetches `GET /api/stats` from the broker's monitoring
 * endpoint and prints it as JSON.
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
} from "./common.ts";
import { HTTP_FLAGS, httpCall } from "./http.ts";

/** Help of `relayr stats`. */
export const STATS_HELP = `Usage: relayr stats [options]

Prints the broker's statistics (GET /api/stats of its HTTP monitoring) as JSON.

Examples:
  relayr stats
  relayr stats --http broker.internal:8222 --compact

Options:
      --http <host:port>    monitoring address (default: $RELAYR_HTTP, or the
                            --server host on port 8222); https://host:port for
                            a broker with --http-tls (--tls-ca: its CA)
      --compact             one line of JSON instead of indented
      --timeout <ms>        give up after this long (default: 5000)
${COMMON_HELP}`;

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
