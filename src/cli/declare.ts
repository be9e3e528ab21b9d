/**
 * `relayr declare <topic>`: declares a topic with retention, so it keeps its
 * messages for replay (`relayr sub --start`) and durable subscriptions
 * (`relayr sub --durable`).
 *
 * @module
 */
import type { Client, DeclareOptions } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  COMMON_OPTIONS,
  connectCli,
  ExitCode,
  fail,
  intFlag,
  parse,
  serverAddress,
  UsageError,
} from "./common.ts";

/** Help of `relayr declare`. */
export const DECLARE_HELP = `Usage: relayr declare <topic> [options]

Declares a topic with retention: the broker keeps its messages, subscribers
or not, within the limits given (at least one), and drops the oldest beyond
any of them. Declaring a declared topic again replaces all its limits (a
limit not given goes back to the broker's default).

Examples:
  relayr declare topic:orders --retain-messages 100000 --retain-age 86400000
  relayr sub topic:orders --durable billing --start first

Options:
      --retain-messages <n> most messages kept (1-10000000)
      --retain-bytes <n>    most payload bytes kept (1-1073741824)
      --retain-age <ms>     drop messages older than this (1-2592000000)
${COMMON_HELP}`;

/** Runs `relayr declare`; returns the exit code. */
export async function declareCommand(
  args: string[],
  runtime: Runtime,
  io: CliIo,
): Promise<number> {
  let client: Client | undefined;
  try {
    const { values, positionals } = parse(args, {
      ...COMMON_OPTIONS,
      "retain-messages": { type: "string" },
      "retain-bytes": { type: "string" },
      "retain-age": { type: "string" },
    });
    if (values.help) {
      io.out(DECLARE_HELP);
      return ExitCode.OK;
    }
    const [topic, ...extra] = positionals;
    if (topic === undefined) throw new UsageError("missing <topic>");
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    const opts: DeclareOptions = {};
    const limit = (name: string, value: string | undefined) =>
      value === undefined ? undefined : intFlag(name, value, 0, 1);
    opts.retainMessages = limit("retain-messages", values["retain-messages"]);
    opts.retainBytes = limit("retain-bytes", values["retain-bytes"]);
    opts.retainAgeMs = limit("retain-age", values["retain-age"]);
    if (
      opts.retainMessages === undefined && opts.retainBytes === undefined &&
      opts.retainAgeMs === undefined
    ) {
      throw new UsageError("give at least one of --retain-messages, --retain-bytes, --retain-age");
    }
    client = await connectCli(runtime, serverAddress(runtime, values.server), {
      reconnect: false,
    });
    await client.declare(topic, opts);
    await client.close();
    io.out(`declared ${topic}`);
    return ExitCode.OK;
  } catch (err) {
    await client?.close();
    return fail(io, "declare", err);
  }
}
