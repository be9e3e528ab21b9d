/**
 * `relayr bind <pattern> <queue>` and `relayr unbind <pattern> <queue>`:
 * bindings from topics into queues (every message published to a matching
 * topic is also enqueued in the queue).
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  positionalArgs,
  runCommand,
  withClient,
} from "./common.ts";

/** Help of `relayr bind`. */
export const BIND_HELP = `Usage: relayr bind <topic pattern> <queue> [options]

Binds topics matching the pattern to the queue: every message published to
such a topic is also enqueued in the queue (once per binding), subscribers or
not. Binding the same pair again replaces its filter. Bindings are stored.

Examples:
  relayr bind 'topic:orders.>' queue:audit
  relayr bind 'topic:orders.*' queue:big-orders --filter "amount > 1000"

Options:
      --filter <selector>   only messages the selector takes (see
                            docs/PROTOCOL.md, "Filters")
${COMMON_HELP}`;

/** Help of `relayr unbind`. */
export const UNBIND_HELP = `Usage: relayr unbind <topic pattern> <queue> [options]

Removes the binding of the pattern to the queue (what is in the queue stays).

Example:
  relayr unbind 'topic:orders.>' queue:audit

Options:
${COMMON_HELP}`;

/** Runs `relayr bind`; returns the exit code. */
export function bindCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = { filter: { type: "string" } } as const;
  return runCommand({ name: "bind", help: BIND_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [pattern, queue] = positionalArgs(positionals, ["<topic pattern>", "<queue>"]);
    const filter = values.filter;
    await withClient(
      runtime,
      io,
      values,
      { reconnect: false },
      (c) => c.bind(pattern, queue, { filter }),
    );
    io.out(`bound ${pattern} to ${queue}${filter === undefined ? "" : ` where ${filter}`}`);
    return ExitCode.OK;
  });
}

/** Runs `relayr unbind`; returns the exit code. */
export function unbindCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  return runCommand({ name: "unbind", help: UNBIND_HELP, flags: {} }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [pattern, queue] = positionalArgs(positionals, ["<topic pattern>", "<queue>"]);
    await withClient(runtime, io, values, { reconnect: false }, (c) => c.unbind(pattern, queue));
    io.out(`unbound ${pattern} from ${queue}`);
    return ExitCode.OK;
  });
}
