/**
 * The admin commands: `relayr queue purge|peek|delete`, `relayr dlq replay`,
 * `relayr conn close`, `relayr durable delete`. Each is one call of the
 * broker's HTTP admin API (docs/OPERATIONS.md), the same the console makes.
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  ExitCode,
  intFlag,
  positionalArgs,
  runCommand,
  UsageError,
} from "./common.ts";
import { HTTP_FLAGS, HTTP_HELP, httpCall, type HttpValues } from "./http.ts";

/** One admin action: its words, arguments, and the HTTP call it makes. */
interface Action {
  /** `queue purge` */
  words: string;
  args: string[];
  about: string;
  /** Extra flags beyond `--http`, `--timeout`, `--json`. */
  flags?: Record<string, { type: "string"; short?: string }>;
  flagsHelp?: string;
  request(
    a: string[],
    values: Record<string, string | undefined>,
  ): { method: string; path: string };
  /** The line printed on success (without `--json`). */
  print(answer: Record<string, unknown>, io: CliIo): void;
}

const seg = (s: string) => encodeURIComponent(s);

const ACTIONS: Action[] = [
  {
    words: "queue purge",
    args: ["queue"],
    about: "Removes the waiting (ready and delayed) messages of a queue; messages in flight\n" +
      "stay with their consumers until acked.",
    request: ([q]) => ({ method: "POST", path: `/api/queues/${seg(q)}/purge` }),
    print: (a, io) => io.out(`purged ${a.purged} messages from ${a.queue}`),
  },
  {
    words: "queue peek",
    args: ["queue"],
    about: "Shows the next messages of a queue, in delivery order, without taking them.",
    flags: { count: { type: "string", short: "n" } },
    flagsHelp: "  -n, --count <n>           how many (default 10, at most 100)",
    request: ([q], v) => ({
      method: "GET",
      path: `/api/queues/${seg(q)}/peek?n=${intFlag("count", v.count, 10, 1, 100)}`,
    }),
    print: (a, io) => printPeek(a.messages as PeekLine[], io),
  },
  {
    words: "queue delete",
    args: ["queue"],
    about: "Deletes a queue that holds no message and has no consumer.",
    request: ([q]) => ({ method: "DELETE", path: `/api/queues/${seg(q)}` }),
    print: (a, io) => io.out(`deleted ${a.queue}`),
  },
  {
    words: "dlq replay",
    args: ["queue"],
    about: "Moves the waiting messages of <queue>.dlq back to <queue>, oldest first, as new\n" +
      "messages (fresh delivery counts). Stops when the queue is full.",
    flags: { max: { type: "string" } },
    flagsHelp: "      --max <n>             move at most this many",
    request: ([q], v) => ({
      method: "POST",
      path: `/api/queues/${seg(q)}/replay-dlq` +
        (v.max === undefined ? "" : `?max=${intFlag("max", v.max, 0, 1)}`),
    }),
    print: (a, io) =>
      io.out(
        `moved ${a.moved} messages back to ${a.queue}` +
          (Number(a.left) > 0 ? `; ${a.left} left in the DLQ` : ""),
      ),
  },
  {
    words: "conn close",
    args: ["id"],
    about: "Closes a client connection (it gets ERR ADMIN_CLOSED; its unacked messages go\n" +
      "back to their queues). Ids are those of `relayr stats` and the console.",
    request: ([id]) => {
      if (!/^[1-9][0-9]*$/.test(id)) {
        throw new UsageError(`bad connection id ${JSON.stringify(id)}`);
      }
      return { method: "POST", path: `/api/connections/${id}/close` };
    },
    print: (a, io) => io.out(`closed connection ${a.id}`),
  },
  {
    words: "durable delete",
    args: ["topic", "durable"],
    about: "Deletes a durable subscription of a declared topic (not while it is in use).",
    request: ([t, d]) => ({
      method: "DELETE",
      path: `/api/topics/${seg(t)}/durables/${seg(d)}`,
    }),
    print: (a, io) => io.out(`deleted durable ${a.durable} of ${a.topic}`),
  },
];

/** The admin command groups and their actions. */
export const ADMIN_GROUPS = ["queue", "dlq", "conn", "durable"] as const;

function help(a: Action): string {
  return `Usage: relayr ${a.words} ${a.args.map((x) => `<${x}>`).join(" ")} [options]

${a.about}

Options:
${a.flagsHelp ? a.flagsHelp + "\n" : ""}${HTTP_HELP}
      --json                print the API's JSON answer
${COMMON_HELP}`;
}

function groupHelp(group: string): string {
  const mine = ACTIONS.filter((a) => a.words.startsWith(`${group} `));
  return `Usage: relayr ${group} <action> ...\n\nActions:\n` +
    mine.map((a) => `  relayr ${a.words} ${a.args.map((x) => `<${x}>`).join(" ")}`).join("\n") +
    `\nRun "relayr ${group} <action> --help" for the options of each.`;
}

/** Runs `relayr <group> <action> ...`; returns the exit code. */
export async function adminCommand(
  group: string,
  args: string[],
  runtime: Runtime,
  io: CliIo,
): Promise<number> {
  const [verb, ...rest] = args;
  const a = ACTIONS.find((x) => x.words === `${group} ${verb}`);
  if (a === undefined) {
    if (verb === undefined || verb === "--help" || verb === "-h") {
      io.out(groupHelp(group));
      return verb === undefined ? ExitCode.USAGE : ExitCode.OK;
    }
    io.err(`relayr ${group}: unknown action ${JSON.stringify(verb)} (see relayr ${group} --help)`);
    return ExitCode.USAGE;
  }
  const flags = {
    ...HTTP_FLAGS,
    json: { type: "boolean" },
    ...(a.flags ?? {}),
  } as const;
  return await runCommand({ name: a.words, help: help(a), flags }, rest, io, async (parsed) => {
    const values = parsed.values as Record<string, string | boolean | undefined>;
    const got = positionalArgs(parsed.positionals, a.args);
    const str = Object.fromEntries(
      Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : undefined]),
    );
    const { method, path } = a.request(got, str);
    const timeoutMs = intFlag("timeout", str.timeout, 5000, 1);
    const answer = await httpCall(runtime, io, parsed.values as HttpValues, {
      path,
      method,
      timeoutMs,
    });
    if (values.json) io.out(JSON.stringify(answer, null, 2));
    else a.print(answer as Record<string, unknown>, io);
    return ExitCode.OK;
  });
}

/** A peeked message as the API answers it (src/broker/admin.ts `PeekedMessage`). */
interface PeekLine {
  id: number;
  priority: number;
  deliveries: number;
  size: number;
  accepted_at: string;
  headers: [string, string][];
  body_preview: string;
  preview_encoding: string;
  body_bytes: number;
  truncated: boolean;
}

function printPeek(ms: PeekLine[], io: CliIo): void {
  if (ms.length === 0) {
    io.out("no message is waiting");
    return;
  }
  for (const [i, m] of ms.entries()) {
    io.out(
      `#${i + 1} msg_id:${m.id} priority:${m.priority} deliveries:${m.deliveries} ` +
        `size:${m.size} accepted:${m.accepted_at}`,
    );
    for (const [k, v] of m.headers) io.out(`  ${k}: ${v}`);
    const body = m.preview_encoding === "base64" ? `base64:${m.body_preview}` : m.body_preview;
    io.out(`  ${JSON.stringify(body)}${m.truncated ? ` (${m.body_bytes} bytes in all)` : ""}`);
  }
}
