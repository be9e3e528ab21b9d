/**
 * `relayr declare <topic>`: declares a topic with retention, so it keeps its
 * messages for replay (`relayr sub --start`) and durable subscriptions
 * (`relayr sub --durable`); `relayr declare <queue>`: declares a queue with
 * settings over the broker's defaults.
 *
 * @module
 */
import type { DeclareOptions, QueueOptions } from "../client/mod.ts";
import {
  ACK_TIMEOUT_MS_MAX,
  DECLARED_DELIVERIES_MAX,
  DECLARED_QUEUE_BYTES_MAX,
  DECLARED_QUEUE_MESSAGES_MAX,
  DEDUP_WINDOW_MS_MAX,
  RETAIN_AGE_MS_MAX,
  RETAIN_BYTES_MAX,
  RETAIN_MESSAGES_MAX,
  TTL_MS_MAX,
} from "../config/mod.ts";
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
export const DECLARE_HELP = `Usage: relayr declare <topic|queue> [options]

Declares a topic with retention: the broker keeps its messages, subscribers
or not, within the limits given (at least one), and drops the oldest beyond
any of them. Declaring a declared topic again replaces all its limits (a
limit not given goes back to the broker's default).

Declares a queue with settings over the broker's defaults (none given: the
defaults). Declaring it again with the same settings is fine; other settings
are refused (DECLARE_CONFLICT).

Examples:
  relayr declare topic:orders --retain-messages 100000 --retain-age 86400000
  relayr sub topic:orders --durable billing --start first
  relayr declare queue:jobs --max-messages 10000 --overflow drop_oldest --dlq none

Topic options:
      --retain-messages <n> most messages kept (1-${RETAIN_MESSAGES_MAX})
      --retain-bytes <n>    most payload bytes kept (1-${RETAIN_BYTES_MAX})
      --retain-age <ms>     drop messages older than this (1-${RETAIN_AGE_MS_MAX})
Queue options:
      --max-messages <n>    most messages held (1-${DECLARED_QUEUE_MESSAGES_MAX})
      --max-bytes <n>       most payload bytes held (1-${DECLARED_QUEUE_BYTES_MAX})
      --overflow <policy>   reject or drop_oldest when full
      --ttl <ms>            default message TTL (1-${TTL_MS_MAX})
      --max-deliveries <n>  deliveries before dead-lettering (1-${DECLARED_DELIVERIES_MAX})
      --dlq <queue|none>    dead-letter queue (default <queue>.dlq; none drops them)
      --ack-timeout <ms>    default ack timeout of consumers (1-${ACK_TIMEOUT_MS_MAX})
      --dedup-window <ms>   how long dedup ids are remembered (0-${DEDUP_WINDOW_MS_MAX}; 0: off)
${COMMON_HELP}`;

const QUEUE_FLAGS = [
  "max-messages",
  "max-bytes",
  "overflow",
  "ttl",
  "max-deliveries",
  "dlq",
  "ack-timeout",
  "dedup-window",
] as const;

/** Runs `relayr declare`; returns the exit code. */
export function declareCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = {
    "retain-messages": { type: "string" },
    "retain-bytes": { type: "string" },
    "retain-age": { type: "string" },
    "max-messages": { type: "string" },
    "max-bytes": { type: "string" },
    overflow: { type: "string" },
    ttl: { type: "string" },
    "max-deliveries": { type: "string" },
    dlq: { type: "string" },
    "ack-timeout": { type: "string" },
    "dedup-window": { type: "string" },
  } as const;
  return runCommand({ name: "declare", help: DECLARE_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [topic] = positionalArgs(positionals, ["<topic|queue>"]);
    const num = (name: keyof typeof values, min: number, max: number) => {
      const v = values[name];
      return typeof v === "string" ? intFlag(name, v, 0, min, max) : undefined;
    };
    const given = (names: readonly (keyof typeof values)[]) =>
      names.filter((n) => values[n] !== undefined).map((n) => `--${n}`);
    const forTopics = given(["retain-messages", "retain-bytes", "retain-age"]);
    const forQueues = given(QUEUE_FLAGS);
    if (topic.startsWith("queue:")) {
      if (forTopics.length > 0) throw new UsageError(`${forTopics[0]} is for topics`);
      if (values.overflow !== undefined && !["reject", "drop_oldest"].includes(values.overflow)) {
        throw new UsageError(`--overflow must be reject or drop_oldest, got ${values.overflow}`);
      }
      const q: QueueOptions = {
        maxMessages: num("max-messages", 1, DECLARED_QUEUE_MESSAGES_MAX),
        maxBytes: num("max-bytes", 1, DECLARED_QUEUE_BYTES_MAX),
        overflow: values.overflow as QueueOptions["overflow"],
        ttlMs: num("ttl", 1, TTL_MS_MAX),
        maxDeliveries: num("max-deliveries", 1, DECLARED_DELIVERIES_MAX),
        dlq: values.dlq === "none" ? null : values.dlq,
        ackTimeoutMs: num("ack-timeout", 1, ACK_TIMEOUT_MS_MAX),
        dedupWindowMs: num("dedup-window", 0, DEDUP_WINDOW_MS_MAX),
      };
      await withClient(runtime, io, values, { reconnect: false }, (c) => c.declareQueue(topic, q));
      io.out(`declared ${topic}`);
      return ExitCode.OK;
    }
    if (forQueues.length > 0) throw new UsageError(`${forQueues[0]} is for queues`);
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
