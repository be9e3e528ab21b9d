/**
 * `relayr request <dest> <data>`: sends a request and prints the reply.
 *
 * @module
 */
import type { Client } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  COMMON_OPTIONS,
  connectCli,
  ExitCode,
  fail,
  intFlag,
  MESSAGE_HELP,
  MESSAGE_OPTIONS,
  messageOptions,
  parse,
  serverAddress,
  UsageError,
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
export async function requestCommand(
  args: string[],
  runtime: Runtime,
  io: CliIo,
): Promise<number> {
  let client: Client | undefined;
  try {
    const { values, positionals } = parse(args, {
      ...COMMON_OPTIONS,
      ...MESSAGE_OPTIONS,
      timeout: { type: "string", short: "t" },
      json: { type: "boolean" },
    });
    if (values.help) {
      io.out(REQUEST_HELP);
      return ExitCode.OK;
    }
    const [dest, data, ...extra] = positionals;
    if (dest === undefined) throw new UsageError("missing <destination>");
    if (data === undefined) throw new UsageError("missing <data>");
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    if (values["reply-to"] !== undefined || values["correlation-id"] !== undefined) {
      throw new UsageError("request sets --reply-to and --correlation-id itself");
    }
    const timeoutMs = intFlag("timeout", values.timeout, 5000, 1);
    const opts = messageOptions(values);
    client = await connectCli(runtime, serverAddress(runtime, values.server), { reconnect: false });
    const reply = await client.request(dest, data, { ...opts, timeoutMs });
    io.out(values.json ? JSON.stringify(toJson(reply)) : reply.text());
    await client.close();
    return ExitCode.OK;
  } catch (err) {
    await client?.close();
    return fail(io, "request", err);
  }
}
