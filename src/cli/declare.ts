/**
 * `relayr declare <topic>`: declares a topic with retention, so it keeps its
 * messages for replay (`relayr sub --start`) and durable subscriptions
 * (`relayr sub --durable`).
 *
 * @module
 */
import type { DeclareOptions } from "../client/mod.ts";
import { RETAIN_AGE_MS_MAX, RETAIN_BYTES_MAX, RETAIN_MESSAGES_MAX } from "../config/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  intFlag,
  positionalArgs,
  runCommand,
  UsageError,
  withClient,
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
      --retain-messages <n> most messages kept (1-${RETAIN_MESSAGES_MAX})
      --retain-bytes <n>    most payload bytes kept (1-${RETAIN_BYTES_MAX})
      --retain-age <ms>     drop messages older than this (1-${RETAIN_AGE_MS_MAX})
${COMMON_HELP}`;

/** Runs `relayr declare`; returns the exit code. */
export function declareCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = {
    "retain-messages": { type: "string" },
    "retain-bytes": { type: "string" },
    "retain-age": { type: "string" },
  } as const;
  return runCommand({ name: "declare", help: DECLARE_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [topic] = positionalArgs(positionals, ["<topic>"]);
    // Range checked here, with the broker's limits the help states, so an
    // error names our flag and not the SDK's option (retainMessages).
    const limit = (name: string, value: string | undefined, max: number) =>
      value === undefined ? undefined : intFlag(name, value, 0, 1, max);
    const opts: DeclareOptions = {
      retainMessages: limit("retain-messages", values["retain-messages"], RETAIN_MESSAGES_MAX),
      retainBytes: limit("retain-bytes", values["retain-bytes"], RETAIN_BYTES_MAX),
      retainAgeMs: limit("retain-age", values["retain-age"], RETAIN_AGE_MS_MAX),
    };
    if (
      opts.retainMessages === undefined && opts.retainBytes === undefined &&
      opts.retainAgeMs === undefined
    ) {
      throw new UsageError("give at least one of --retain-messages, --retain-bytes, --retain-age");
    }
    await withClient(runtime, io, values, { reconnect: false }, (c) => c.declare(topic, opts));
    io.out(`declared ${topic}`);
    return ExitCode.OK;
  });
}
