/**
 * `relayr pub <dest> [data|-]`: publishes one message, `--count` copies, or
 * one message per stdin line.
 *
 * @module
 */
import { type Client, isCodec, type PublishOptions } from "../client/mod.ts";
import { DELIVER_AT_MS_MAX, PUB_DELAY_MS_MAX } from "../config/mod.ts";
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
  relayr pub queue:reminders 'call back' --delay 60000
  relayr pub queue:orders '{"order_id":"12345"}' --dedup-id order-12345

Options:
${MESSAGE_HELP}
      --delay <ms>          invisible for this long after it is accepted
      --deliver-at <ms>     invisible until this Unix time in ms
      --dedup-id <id>       a second publish with this id within the window is not stored again
      --codec <codec>       json or msgpack: the data is JSON text, sent encoded so
                            (content type application/json or application/msgpack);
                            raw: the data as it is, as application/octet-stream
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
    delay: { type: "string" },
    "deliver-at": { type: "string" },
    "dedup-id": { type: "string" },
    codec: { type: "string" },
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
    if (values.delay !== undefined) {
      opts.delayMs = intFlag("delay", values.delay, 0, 0, PUB_DELAY_MS_MAX);
    }
    if (values["deliver-at"] !== undefined) {
      if (values.delay !== undefined) {
        throw new UsageError("give --delay or --deliver-at, not both");
      }
      opts.deliverAt = intFlag("deliver-at", values["deliver-at"], 0, 0, DELIVER_AT_MS_MAX);
    }
    if (values["dedup-id"] !== undefined) opts.dedupId = values["dedup-id"];
    const encode = codecBody(values.codec, opts);
    await withClient(runtime, io, values, { reconnect: false }, async (client) => {
      const print = values.quiet ? () => {} : (id: string) => io.out(id);
      if (data === undefined || data === "-") {
        await publishLines(client, dest, opts, io, print, encode);
      } else {
        const body = encode(data);
        for (let i = 0; i < count; i++) print(await client.publish(dest, body, opts));
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
  encode: (data: string | Uint8Array) => unknown,
): Promise<void> {
  const window: Promise<string>[] = [];
  for await (const line of lines(io.stdin())) {
    window.push(client.publish(dest, encode(line), opts));
    if (window.length >= PUB_WINDOW) print(await window.shift()!);
  }
  while (window.length > 0) print(await window.shift()!);
}

/**
 * How `--codec` turns the data into the value published: json and msgpack
 * parse it as JSON (a `UsageError` when it is not) and set `opts.codec`; raw
 * sends it as it is; no codec leaves it alone.
 */
function codecBody(
  codec: string | undefined,
  opts: PublishOptions,
): (data: string | Uint8Array) => unknown {
  if (codec === undefined) return (data) => data;
  if (!isCodec(codec)) {
    throw new UsageError(`--codec must be json, msgpack or raw, got ${JSON.stringify(codec)}`);
  }
  opts.codec = codec;
  if (codec === "raw") return (data) => data;
  return (data) => {
    const text = typeof data === "string" ? data : utf8.decode(data);
    try {
      return JSON.parse(text);
    } catch {
      throw new UsageError(
        `--codec ${codec} takes JSON data, got ${JSON.stringify(text.slice(0, 40))}`,
      );
    }
  };
}

const utf8 = new TextDecoder();
