/**
 * What every client subcommand shares: the I/O seam, flag parsing, the
 * message-option flags, connecting, and turning errors into one line and an
 * exit code.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  AuthError,
  AuthFailedError,
  type Client,
  connect,
  ConnectError,
  ConnectionClosedError,
  ConnectionLostError,
  type ConnectOptions,
  type PublishOptions,
  TimeoutError,
} from "../client/mod.ts";
import { joinDashValues } from "../config/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import { cliTls, TLS_HELP, TLS_OPTIONS, type TlsFlags } from "./tls.ts";

/** Exit codes of the client subcommands (documented in docs/CLIENT.md). */
export const ExitCode = {
  OK: 0,
  /** The broker refused a command, or another runtime error. */
  ERROR: 1,
  /** Bad flags or arguments. */
  USAGE: 2,
  /** The broker (or the monitoring endpoint) cannot be reached, or the connection was lost for good. */
  UNREACHABLE: 3,
  /** A request or wait timed out. */
  TIMEOUT: 4,
  /** The broker refused the credentials (or revoked them). */
  AUTH: 5,
  /** Stopped by SIGINT/SIGTERM before finishing (bench). */
  INTERRUPTED: 130,
} as const;

/** Where the command line reads and writes; tests and other runtimes can pass their own. */
export interface CliIo {
  /** Writes one line to stdout. */
  out(line: string): void;
  /** Writes one line to stderr. */
  err(line: string): void;
  /** Rewrites the current terminal line (progress); only called when `isTty`. */
  progress(text: string): void;
  /** Whether stdout is a terminal. */
  readonly isTty: boolean;
  /** Standard input, chunk by chunk. */
  stdin(): AsyncIterable<Uint8Array>;
}

/**
 * The default I/O: `console` for lines (synchronous on Deno and Bun, so
 * nothing is lost when the process exits right after); stdin, the progress
 * line and the terminal check come from the runtime.
 */
export function defaultIo(runtime: Runtime): CliIo {
  return {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    progress: (text) => runtime.writeStdout(`\r\x1b[2K${text}`),
    isTty: runtime.stdoutIsTerminal(),
    stdin: () => runtime.stdin(),
  };
}

/** Bad flags or arguments: exit code 2, with a pointer to `--help`. */
export class UsageError extends TypeError {
  /** @param message what is wrong, in sentence case */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Flags every subcommand takes. */
export const COMMON_OPTIONS = {
  server: { type: "string", short: "s" },
  help: { type: "boolean", short: "h" },
  token: { type: "string" },
  user: { type: "string" },
  "password-stdin": { type: "boolean" },
  key: { type: "string" },
  ...TLS_OPTIONS,
} as const satisfies ParseArgsConfig["options"];

/** The values of the common flags. */
export interface CommonValues extends TlsFlags {
  server?: string;
  token?: string;
  user?: string;
  "password-stdin"?: boolean;
  key?: string;
}

/** The flags of message options (pub, request). */
export const MESSAGE_OPTIONS = {
  header: { type: "string", short: "H", multiple: true },
  priority: { type: "string", short: "p" },
  ttl: { type: "string" },
  "correlation-id": { type: "string" },
  "reply-to": { type: "string" },
  "content-type": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** Help text of the shared flags. */
export const COMMON_HELP =
  `  -s, --server <host:port>  broker address (default: $RELAYR_SERVER or localhost:9092;
                            tls://host:port dials TLS)
      --token <token>       authenticate with the broker's token ($RELAYR_TOKEN)
      --user <name>         authenticate as this user ($RELAYR_USER)
      --password-stdin      read the user's password from the first line of stdin
                            (or set $RELAYR_PASSWORD; never a flag)
      --key <file>          authenticate with an Ed25519 key file ($RELAYR_KEY_FILE)
${TLS_HELP}
  -h, --help                show this help`;

/** Help text of the message option flags. */
export const MESSAGE_HELP = `  -H, --header <Key: Value> a header (repeatable)
  -p, --priority <0-9>      priority, higher first (queues)
      --ttl <ms>            expire the message this long after it is accepted
      --correlation-id <id> correlation id, copied to the delivered message
      --reply-to <dest>     where a responder should reply
      --content-type <type> e.g. application/json`;

/** Flag declarations, as `node:util`'s `parseArgs` takes them. */
export type Flags = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses `args` strictly; unknown flags and bad values become a `UsageError`.
 * A negative number after a flag is taken as its value (`--count -5`), so the
 * flag's range check answers instead of parseArgs' "argument is ambiguous".
 */
export function parse<T extends Flags>(args: string[], options: T) {
  try {
    return parseArgs({
      args: joinDashValues(args, options),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    // parseArgs explains over three lines; the first says what is wrong.
    throw new UsageError((err as Error).message.split("\n")[0].replace(/\.( To specify.*)?$/, ""));
  }
}

/** The flags and positionals of a subcommand with its own flags `T` (and the common ones). */
export type Parsed<T extends Flags> = ReturnType<typeof parse<typeof COMMON_OPTIONS & T>>;

/** What a subcommand declares: its name (for error lines), its help text, its own flags. */
export interface CommandSpec<T extends Flags> {
  name: string;
  help: string;
  flags: T;
}

/**
 * The frame every subcommand shares: parses the flags strictly (with
 * `--server` and `--help`), prints the help for `--help`, runs `body`, and
 * turns whatever it throws into one line on stderr and its exit code.
 */
export async function runCommand<T extends Flags>(
  spec: CommandSpec<T>,
  args: string[],
  io: CliIo,
  body: (parsed: Parsed<T>) => Promise<number>,
): Promise<number> {
  try {
    const parsed = parse(args, { ...COMMON_OPTIONS, ...spec.flags });
    // `help` is one of COMMON_OPTIONS; TypeScript cannot see it through the generic `T`.
    if ((parsed.values as { help?: boolean }).help) {
      io.out(spec.help);
      return ExitCode.OK;
    }
    return await body(parsed);
  } catch (err) {
    return fail(io, spec.name, err);
  }
}

/**
 * The positionals by name: each of `required` must be there (`UsageError`
 * "missing <name>" otherwise), up to `optional` more may follow, and any
 * beyond is a `UsageError`.
 */
export function positionalArgs(got: string[], required: string[], optional = 0): string[] {
  for (const [i, name] of required.entries()) {
    if (got[i] === undefined) throw new UsageError(`missing ${name}`);
  }
  const extra = got[required.length + optional];
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  return got;
}

/** A non-negative integer flag, or `fallback` when absent. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** The message options from the message flags. */
export function messageOptions(values: {
  header?: string[];
  priority?: string;
  ttl?: string;
  "correlation-id"?: string;
  "reply-to"?: string;
  "content-type"?: string;
}): PublishOptions {
  const opts: PublishOptions = {};
  if (values.header !== undefined) {
    opts.headers = {};
    for (const h of values.header) {
      const colon = h.indexOf(":");
      if (colon <= 0) {
        throw new UsageError(`--header must look like "Key: Value", got ${JSON.stringify(h)}`);
      }
      opts.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    }
  }
  if (values.priority !== undefined) opts.priority = intFlag("priority", values.priority, 0, 0, 9);
  if (values.ttl !== undefined) opts.ttlMs = intFlag("ttl", values.ttl, 0, 1);
  if (values["correlation-id"] !== undefined) opts.correlationId = values["correlation-id"];
  if (values["reply-to"] !== undefined) opts.replyTo = values["reply-to"];
  if (values["content-type"] !== undefined) opts.contentType = values["content-type"];
  return opts;
}

/** The broker address: `--server`, then `$RELAYR_SERVER`, then the default. */
export function serverAddress(runtime: Runtime, flag: string | undefined): string {
  return flag ?? runtime.env("RELAYR_SERVER") ?? "localhost:9092";
}

/** Connects with the CLI's defaults. */
export function connectCli(
  runtime: Runtime,
  server: string,
  options: ConnectOptions = {},
): Promise<Client> {
  return connect(server, { runtime, name: "relayr-cli", ...options });
}

/**
 * The credentials of the common flags, each flag before its environment
 * variable (`RELAYR_TOKEN`, `RELAYR_USER`, `RELAYR_KEY_FILE`). A password
 * comes only from the first line of stdin (`--password-stdin`) or
 * `RELAYR_PASSWORD`: a flag would show it in `ps` and the shell history.
 */
export async function credentials(
  runtime: Runtime,
  io: CliIo,
  values: CommonValues,
): Promise<Pick<ConnectOptions, "token" | "user" | "pass" | "keyFile">> {
  const token = values.token ?? runtime.env("RELAYR_TOKEN");
  const user = values.user ?? runtime.env("RELAYR_USER");
  const keyFile = values.key ?? runtime.env("RELAYR_KEY_FILE");
  let pass = runtime.env("RELAYR_PASSWORD");
  if (values["password-stdin"]) {
    pass = "";
    for await (const line of lines(io.stdin())) {
      pass = new TextDecoder().decode(line);
      break;
    }
    if (pass === "") throw new UsageError("--password-stdin: stdin held no password");
  }
  if (pass !== undefined && user === undefined) {
    throw new UsageError("a password needs --user (or $RELAYR_USER)");
  }
  if ([token, pass, keyFile].filter((x) => x !== undefined).length > 1) {
    throw new UsageError("use one of --token, a password, --key");
  }
  return { token, user, pass, keyFile };
}

/**
 * Connects to `--server` (then `$RELAYR_SERVER`, then the default) with the
 * CLI's defaults, the credentials and the TLS of the common flags, runs `work`, and
 * closes the client however `work` ends.
 */
export async function withClient<R>(
  runtime: Runtime,
  io: CliIo,
  values: CommonValues,
  options: ConnectOptions,
  work: (client: Client) => Promise<R>,
): Promise<R> {
  const auth = await credentials(runtime, io, values);
  const client = await connectCli(runtime, serverAddress(runtime, values.server), {
    ...auth,
    tls: cliTls(runtime, values),
    ...options,
  });
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

/** Longest stdin line kept while looking for its end. */
const STDIN_LINE_BYTES_MAX = 64 * 1024 * 1024;

/** Splits a byte stream into lines (without `\n` or `\r\n`); a last line without an end counts. */
export async function* lines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let rest = new Uint8Array(0);
  for await (const chunk of chunks) {
    let buf = chunk;
    if (rest.length > 0) {
      buf = new Uint8Array(rest.length + chunk.length);
      buf.set(rest);
      buf.set(chunk, rest.length);
    }
    let start = 0;
    for (let lf = buf.indexOf(10); lf >= 0; lf = buf.indexOf(10, start)) {
      yield buf.subarray(start, lf > start && buf[lf - 1] === 13 ? lf - 1 : lf);
      start = lf + 1;
    }
    rest = buf.slice(start);
    if (rest.length > STDIN_LINE_BYTES_MAX) {
      throw new RangeError(`A stdin line is longer than ${STDIN_LINE_BYTES_MAX} bytes`);
    }
  }
  if (rest.length > 0) yield rest;
}

/** The monitoring endpoint could not be reached: exit code 3, as for the broker. */
export class UnreachableError extends Error {
  /** @param message what failed */
  constructor(message: string) {
    super(message);
    this.name = "UnreachableError";
  }
}

/** The exit code of an error. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return ExitCode.USAGE;
  if (err instanceof AuthError) return ExitCode.AUTH;
  if (
    err instanceof ConnectError || err instanceof ConnectionClosedError ||
    err instanceof ConnectionLostError || err instanceof UnreachableError
  ) return ExitCode.UNREACHABLE;
  if (err instanceof TimeoutError) return ExitCode.TIMEOUT;
  return ExitCode.ERROR;
}

/** Prints `relayr <command>: <message>` (no stack trace) and returns the exit code. */
export function fail(io: CliIo, command: string, err: unknown): number {
  const msg = err instanceof Error ? err.message : String(err);
  const hint = err instanceof UsageError
    ? ` (see relayr ${command} --help)`
    : err instanceof AuthFailedError
    ? " (give --token, --user with a password, or --key)"
    : "";
  io.err(`relayr ${command}: ${msg.split("\n")[0]}${hint}`);
  return exitCodeOf(err);
}

/** Runs `fn` until SIGINT/SIGTERM; calls `stop` on the first signal. Returns the remover. */
export function onInterrupt(runtime: Runtime, stop: () => void): () => void {
  const removers = (["SIGINT", "SIGTERM"] as const).map((sig) => runtime.onSignal(sig, stop));
  return () => {
    for (const remove of removers) remove();
  };
}
