/**
 * `relayr request <dest> <data>`: sends a request and prints the reply.
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  intFlag,
  MESSAGE_HELP,
  MESSAGE_OPTIONS,
  messageOptions,
  positionalArgs,
  runCommand,
  UsageError,
  withClient,
} from "./common.ts";
import { toJson } from "./sub.ts";

/** Help of `relayr request`. */
export const REQUEST_HELP = `Usage: relayr request <destination> <data> [options]

Publishes <data> with a reply_to inbox and a correlation id, waits for the
first reply, and prints its body (exit 4 when no reply comes in time).

Examples:
  relayr request queue:rpc.prices AAPL
  relayr request queue:rpc.echo hello --timeout 2000 --json

Options:
${MESSAGE_HELP.split("\n").filter((l) => !/reply-to|correlation-id/.test(l)).join("\n")}
  -t, --timeout <ms>        how long to wait for the reply (default: 5000)
      --json                print the whole reply as JSON
${COMMON_HELP}`;

/** Runs `relayr request`; returns the exit code. */
export function requestCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = {
    ...MESSAGE_OPTIONS,
    timeout: { type: "string", short: "t" },
    json: { type: "boolean" },
  } as const;
  return runCommand({ name: "request", help: REQUEST_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [dest, data] = positionalArgs(positionals, ["<destination>", "<data>"]);
    if (values["reply-to"] !== undefined || values["correlation-id"] !== undefined) {
      throw new UsageError("request sets --reply-to and --correlation-id itself");
    }
    const timeoutMs = intFlag("timeout", values.timeout, 5000, 1);
    const opts = messageOptions(values);
    await withClient(runtime, io, values, { reconnect: false }, async (client) => {
      const reply = await client.request(dest, data, { ...opts, timeoutMs });
      io.out(values.json ? JSON.stringify(toJson(reply)) : reply.text());
    });
    return ExitCode.OK;
  });
}
