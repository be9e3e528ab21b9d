/**
 * `relayr reply <dest> <response>`: answers requests (the counterpart of
 * `relayr request`, as `nats reply` is of `nats request`).
 *
 * @module
 */
import type { Client, Message, StatusEvent } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  intFlag,
  onInterrupt,
  positionalArgs,
  runCommand,
  withClient,
} from "./common.ts";

/** Help of `relayr reply`. */
export const REPLY_HELP = `Usage: relayr reply <destination> <response> [options]

Subscribes to <destination> (a queue or a topic) and answers each request (a
message with a reply_to) by publishing <response> to its reply_to, with the
request's correlation id, until --count requests are answered or Ctrl-C.
Every "{{body}}" in <response> is replaced by the request's body (as UTF-8
text); nothing else is expanded. Queue requests are acked once answered. A
message without a reply_to gets no answer: it is acked (queues) and noted on
stderr. Each answer prints one line (msg id and reply_to) unless --quiet.

Examples:
  relayr reply queue:rpc.echo 'echo: {{body}}'
  relayr reply queue:rpc.ping pong --count 1
  relayr request queue:rpc.echo hello      # prints "echo: hello"

Options:
  -n, --count <n>           exit after answering n requests
      --content-type <type> content type of the answers, e.g. application/json
  -q, --quiet               do not print a line per answer
${COMMON_HELP}`;

/** What `relayr reply` was asked to do, checked. */
interface ReplyConfig {
  dest: string;
  response: string;
  /** Exit after this many answers; 0: never. */
  count: number;
  contentType: string | undefined;
  quiet: boolean;
}

/** Runs `relayr reply`; returns the exit code. */
export function replyCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = {
    count: { type: "string", short: "n" },
    "content-type": { type: "string" },
    quiet: { type: "boolean", short: "q" },
  } as const;
  return runCommand({ name: "reply", help: REPLY_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    const [dest, response] = positionalArgs(positionals, ["<destination>", "<response>"]);
    const cfg: ReplyConfig = {
      dest,
      response,
      count: intFlag("count", values.count, 0, 1),
      contentType: values["content-type"],
      quiet: values.quiet === true,
    };
    let lost: Error | undefined; // set when the client gives up reconnecting
    const onStatus = (e: StatusEvent) => {
      if (e.type === "closed" && e.error) lost = e.error;
    };
    await withClient(runtime, io, values, { onStatus }, (c) => answer(c, cfg, runtime, io));
    if (lost) throw lost;
    return ExitCode.OK;
  });
}

/** The answer to `msg`: the response with every `{{body}}` replaced by the request's body. */
export function replyBody(response: string, msg: Pick<Message, "text">): string {
  return response.includes("{{body}}") ? response.replaceAll("{{body}}", msg.text()) : response;
}

/**
 * Subscribes and answers until `--count`, a signal or the end of the
 * subscription. A queue request is acked only after its answer was
 * accepted, so a failed answer leaves the request to be redelivered.
 */
async function answer(
  client: Client,
  cfg: ReplyConfig,
  runtime: Runtime,
  io: CliIo,
): Promise<void> {
  const queue = cfg.dest.startsWith("queue:");
  const sub = await client.subscribe(cfg.dest, { ack: queue ? "explicit" : "none" });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= sub.unsubscribe();
    stopping.catch(() => {});
  };
  const removeSignals = onInterrupt(runtime, stop);
  let n = 0;
  try {
    for await (const msg of sub) {
      if (msg.replyTo === undefined) {
        io.err(`relayr reply: msg_id:${msg.id} on ${msg.dest} has no reply_to, not answered`);
        await msg.ack();
        continue;
      }
      const id = await msg.respond(replyBody(cfg.response, msg), {
        contentType: cfg.contentType,
      });
      await msg.ack();
      n++;
      if (!cfg.quiet) io.out(`[#${n}] msg_id:${msg.id} answered to ${msg.replyTo} msg_id:${id}`);
      if (n === cfg.count) {
        stop();
        break;
      }
    }
  } finally {
    removeSignals();
  }
}
