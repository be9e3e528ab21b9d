/**
 * `relayr sub <dest>`: prints the messages of a subscription.
 *
 * @module
 */
import {
  type Client,
  type Codec,
  codecOf,
  isCodec,
  type Message,
  type StartPosition,
  type StatusEvent,
  type SubscribeOptions,
} from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  type Flags,
  intFlag,
  onInterrupt,
  type Parsed,
  positionalArgs,
  runCommand,
  UsageError,
  withClient,
} from "./common.ts";

/** Help of `relayr sub`. */
export const SUB_HELP = `Usage: relayr sub <destination> [options]

Subscribes and prints each message until --count messages arrived or
Ctrl-C. Topic patterns may use wildcards ('topic:orders.*', 'topic:orders.>'),
quoted, since in a shell > redirects and * expands.
Queue messages are acknowledged once printed unless --no-ack is given.

On a declared topic (see relayr declare), --start replays retained messages
first, and --durable names a durable subscription: the broker keeps its
position (it has explicit acks), and a later --durable with the same name
resumes there, ignoring --start.

Examples:
  relayr sub 'topic:events.>'
  relayr sub queue:orders --count 10 --json
  relayr sub topic:orders --durable billing --start first
  relayr sub topic:orders --start time:1767225600000 --count 5
  relayr sub 'topic:orders.*' --filter "region = 'eu' AND priority >= 5"

Options:
      --ack                 explicit acks: ack each message once printed
                            (the default for queues; on a topic, asks the broker
                            to redeliver what is not acked)
      --no-ack              do not ack (queue messages go back when we exit)
  -n, --count <n>           exit after n messages
      --json                one JSON object per message
      --raw                 print only the bodies, one per line
      --codec <codec>       decode bodies and print them as JSON: json, msgpack,
                            raw, or auto (by each message's content type)
      --prefetch <n>        most unacked messages in flight (explicit acks)
      --ack-timeout <ms>    redeliver a message not acked within this time
      --timeout <ms>        give up (exit 4) if --count is not reached in time
      --durable <name>      a durable subscription of a declared topic
                            (explicit acks; --no-ack leaves the position)
      --start <position>    where a replay or a new durable starts (declared
                            topics): new, first, id:<msg_id> or time:<epoch_ms>
      --forget              on exit, delete the durable (with --durable)
      --filter <selector>   only messages the selector takes (see
                            docs/PROTOCOL.md, "Filters")
${COMMON_HELP}`;

const decoder = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });

const SUB_FLAGS = {
  ack: { type: "boolean" },
  "no-ack": { type: "boolean" },
  count: { type: "string", short: "n" },
  json: { type: "boolean" },
  raw: { type: "boolean" },
  codec: { type: "string" },
  prefetch: { type: "string" },
  "ack-timeout": { type: "string" },
  timeout: { type: "string" },
  durable: { type: "string" },
  start: { type: "string" },
  forget: { type: "boolean" },
  filter: { type: "string" },
} as const satisfies Flags;

/** What `relayr sub` was asked to do, checked. */
interface SubConfig {
  dest: string;
  /** Exit after this many messages; 0: never. */
  count: number;
  /** Give up after this long; 0: never. */
  timeoutMs: number;
  /** Ack each message once printed. */
  ackEach: boolean;
  /** Delete the durable when leaving. */
  forget: boolean;
  subscribe: SubscribeOptions;
  /** The text printed for the `n`th message. */
  format(n: number, msg: Message): string;
}

/** Runs `relayr sub`; returns the exit code. */
export function subCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  return runCommand({ name: "sub", help: SUB_HELP, flags: SUB_FLAGS }, args, io, async (parsed) => {
    const cfg = subConfig(parsed);
    let lost: Error | undefined; // set when the client gives up reconnecting
    const onStatus = (e: StatusEvent) => {
      if (e.type === "closed" && e.error) lost = e.error;
    };
    const { n, timedOut } = await withClient(
      runtime,
      io,
      parsed.values,
      { onStatus },
      (client) => consume(client, cfg, runtime, io),
    );
    if (lost) throw lost;
    if (timedOut) {
      io.err(
        `relayr sub: timed out after ${cfg.timeoutMs} ms with ${n} of ${cfg.count || "?"} messages`,
      );
      return ExitCode.TIMEOUT;
    }
    return ExitCode.OK;
  });
}

/** The subscription the flags ask for; `UsageError` on flags that do not fit together. */
function subConfig({ values, positionals }: Parsed<typeof SUB_FLAGS>): SubConfig {
  const [dest] = positionalArgs(positionals, ["<destination>"]);
  if (values.ack && values["no-ack"]) throw new UsageError("--ack and --no-ack exclude each other");
  if (values.json && values.raw) throw new UsageError("--json and --raw exclude each other");
  const codec = values.codec;
  if (codec !== undefined && codec !== "auto" && !isCodec(codec)) {
    throw new UsageError(
      `--codec must be json, msgpack, raw or auto, got ${JSON.stringify(codec)}`,
    );
  }
  const body = codec === undefined
    ? undefined
    : (msg: Message) => decodedText(msg, codec === "auto" ? undefined : codec);
  const count = intFlag("count", values.count, 0, 1);
  const timeoutMs = intFlag("timeout", values.timeout, 0, 1);
  // Queues always use explicit acks: with --no-ack we simply never ack, so the
  // messages go back to the queue when we leave instead of being consumed.
  const durable = values.durable;
  if (values.forget && durable === undefined) throw new UsageError("--forget needs --durable");
  const start = values.start === undefined ? undefined : startFlag(values.start);
  const explicit = values.ack === true || dest.startsWith("queue:") || durable !== undefined;
  const prefetch = values.prefetch === undefined
    ? undefined
    : intFlag("prefetch", values.prefetch, 0, 1);
  const ackTimeoutMs = values["ack-timeout"] === undefined
    ? undefined
    : intFlag("ack-timeout", values["ack-timeout"], 0, 1);
  return {
    dest,
    count,
    timeoutMs,
    ackEach: explicit && !values["no-ack"],
    forget: values.forget === true,
    subscribe: {
      ack: explicit ? "explicit" : "none",
      prefetch,
      ackTimeoutMs,
      durable,
      start,
      filter: values.filter,
    },
    format: values.json
      ? (_n, msg) => JSON.stringify(toJson(msg, body))
      : values.raw
      ? (_n, msg) => body?.(msg) ?? msg.text()
      : (n, msg) => pretty(n, msg, body),
  };
}

/**
 * Subscribes and prints until `--count`, `--timeout`, a signal or the end of
 * the subscription. Every way out unsubscribes once; with `--forget`, that
 * `UNSUB` deletes the durable, and it is awaited.
 */
async function consume(
  client: Client,
  cfg: SubConfig,
  runtime: Runtime,
  io: CliIo,
): Promise<{ n: number; timedOut: boolean }> {
  const sub = await client.subscribe(cfg.dest, cfg.subscribe);
  let timedOut = false;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= sub.unsubscribe({ forget: cfg.forget });
    stopping.catch(() => {});
  };
  const removeSignals = onInterrupt(runtime, stop);
  const timer = cfg.timeoutMs > 0
    ? setTimeout(() => {
      timedOut = true;
      stop();
    }, cfg.timeoutMs)
    : undefined;
  let n = 0;
  try {
    for await (const msg of sub) {
      n++;
      io.out(cfg.format(n, msg));
      if (cfg.ackEach) await msg.ack();
      if (n === cfg.count) {
        stop();
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    removeSignals();
  }
  if (cfg.forget) {
    stop();
    await stopping;
  }
  return { n, timedOut };
}

/** The `--start` flag: `new`, `first`, `id:<msg_id>` or `time:<epoch_ms>`. */
export function startFlag(value: string): StartPosition {
  if (value === "new" || value === "first") return value;
  if (/^id:[0-9]+$/.test(value)) return { id: value.slice(3) };
  if (/^time:[0-9]+$/.test(value)) return { time: intFlag("start time", value.slice(5), 0) };
  throw new UsageError(
    `--start must be new, first, id:<msg_id> or time:<epoch_ms>, got ${JSON.stringify(value)}`,
  );
}

/** The human format: a title line, the headers, the body. */
function pretty(n: number, msg: Message, body?: (msg: Message) => string): string {
  const meta = [`msg_id:${msg.id}`];
  if (msg.deliveryCount > 1) meta.push(`delivery:${msg.deliveryCount}`);
  if (msg.priority) meta.push(`priority:${msg.priority}`);
  if (msg.correlationId) meta.push(`correlation_id:${msg.correlationId}`);
  if (msg.replyTo) meta.push(`reply_to:${msg.replyTo}`);
  if (msg.contentType) meta.push(`content_type:${msg.contentType}`);
  const headers = Object.entries(msg.headers).map(([k, v]) => `${k}: ${v}\n`).join("");
  const text = body?.(msg) ?? decoder.decode(msg.body);
  return `[#${n}] ${msg.dest} ${meta.join(" ")}\n${headers}${text}\n`;
}

/**
 * The body decoded by `codec` (or by its content type; text when that names
 * none) as one line of JSON; byte arrays in it as base64 strings. A body the
 * codec cannot read prints as an error note, not as a crash of the command.
 */
function decodedText(msg: Message, codec: Codec | undefined): string {
  const c = codec ?? codecOf(msg.contentType);
  if (c === undefined) return JSON.stringify(msg.text());
  try {
    return JSON.stringify(
      msg.decode(c),
      (_k, v) => v instanceof Uint8Array ? base64(v) : typeof v === "bigint" ? String(v) : v,
    );
  } catch (err) {
    return `(not ${c}: ${(err as Error).message})`;
  }
}

/** One message as JSON; a body that is not UTF-8 goes as base64. */
export function toJson(msg: Message, body?: (msg: Message) => string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    dest: msg.dest,
    id: msg.id,
    sub_id: msg.subId,
    delivery: msg.deliveryCount,
    priority: msg.priority,
  };
  if (msg.ttlMs !== undefined) out.ttl = msg.ttlMs;
  if (msg.correlationId !== undefined) out.correlation_id = msg.correlationId;
  if (msg.replyTo !== undefined) out.reply_to = msg.replyTo;
  if (msg.contentType !== undefined) out.content_type = msg.contentType;
  const headers = msg.headers;
  if (Object.keys(headers).length > 0) out.headers = headers;
  if (body !== undefined) {
    try {
      out.value = JSON.parse(body(msg));
      return out;
    } catch { /* not decodable: the body as it is, below */ }
  }
  try {
    out.body = strict.decode(msg.body);
  } catch {
    out.body_base64 = base64(msg.body);
  }
  return out;
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  // In slices: spreading a large array into one call overflows the stack.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}
