/**
 * `relayr pub <dest> [data|-]`: publishes one message, `--count` copies, or
 * one message per stdin line.
 *
 * @module
 */
import type { Client, PublishOptions } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  intFlag,
  lines,
  MESSAGE_HELP,
  MESSAGE_OPTIONS,
  messageOptions,
  positionalArgs,
  runCommand,
  UsageError,
  withClient,
} from "./common.ts";

/** Help of `relayr pub`. */
export const PUB_HELP = `Usage: relayr pub <destination> [data|-] [options]

Publishes a message and prints its msg id. With "-" (or no data), publishes
one message per line of standard input.

Examples:
  relayr pub queue:orders '{"order_id":"12345"}'
  relayr pub topic:events hello -H "Trace-Id: abc" --priority 5
  seq 1 100 | relayr pub queue:numbers -

Options:
${MESSAGE_HELP}
  -n, --count <n>           publish the data n times (default: 1)
  -q, --quiet               do not print msg ids
${COMMON_HELP}`;

/** Outstanding publishes when streaming stdin: deep enough to pipeline, small enough to bound memory. */
const PUB_WINDOW = 1000;

/** Runs `relayr pub`; returns the exit code. */
export function pubCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = {
    ...MESSAGE_OPTIONS,
    count: { type: "string", short: "n" },
    quiet: { type: "boolean", short: "q" },
  } as const;
  return runCommand({ name: "pub", help: PUB_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [dest, data] = positionalArgs(positionals, ["<destination>"], 1);
    const count = intFlag("count", values.count, 1, 1);
    const opts = messageOptions(values);
    if (values["password-stdin"] && (data === undefined || data === "-")) {
      throw new UsageError(
        "--password-stdin and messages from stdin exclude each other; set RELAYR_PASSWORD",
      );
    }
    await withClient(runtime, io, values, { reconnect: false }, async (client) => {
      const print = values.quiet ? () => {} : (id: string) => io.out(id);
      if (data === undefined || data === "-") {
        await publishLines(client, dest, opts, io, print);
      } else {
        for (let i = 0; i < count; i++) print(await client.publish(dest, data, opts));
      }
    });
    return ExitCode.OK;
  });
}

/** One message per stdin line, pipelined with a bounded window; ids printed in order. */
async function publishLines(
  client: Client,
  dest: string,
  opts: PublishOptions,
  io: CliIo,
  print: (id: string) => void,
): Promise<void> {
  const window: Promise<string>[] = [];
  for await (const line of lines(io.stdin())) {
    window.push(client.publish(dest, line, opts));
    if (window.length >= PUB_WINDOW) print(await window.shift()!);
  }
  while (window.length > 0) print(await window.shift()!);
}
