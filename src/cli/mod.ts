/**
 * The client half of the `relayr` command line: `pub`, `sub`, `request`,
 * `reply`, `declare`, `bind`, `unbind`, `stats` and `bench`. `main.ts` handles `serve` and calls {@linkcode runCli}
 * for everything else.
 *
 * ```sh
 * relayr pub queue:orders '{"order_id":"12345"}'
 * relayr sub 'topic:events.>' --count 10 --json
 * relayr reply queue:rpc.echo 'echo: {{body}}'
 * relayr request queue:rpc.echo hello --timeout 2000
 * relayr declare topic:orders --retain-messages 100000
 * relayr sub topic:orders --durable billing --start first
 * relayr bind 'topic:orders.>' queue:audit --filter "amount > 1000"
 * relayr stats
 * relayr queue peek queue:orders -n 5
 * relayr dlq replay queue:orders
 * relayr bench --pubs 1 --subs 1 --msgs 100000 --size 128
 * ```
 *
 * Exit codes: 0 ok, 1 error, 2 usage, 3 broker unreachable, 4 timeout,
 * 130 interrupted (see docs/CLIENT.md).
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import { ADMIN_GROUPS, adminCommand } from "./admin.ts";
import { benchCommand } from "./bench.ts";
import { bindCommand, unbindCommand } from "./bind.ts";
import { type CliIo, defaultIo } from "./common.ts";
import { keygenCommand, passwdCommand } from "./credentials.ts";
import { declareCommand } from "./declare.ts";
import { pubCommand } from "./pub.ts";
import { replyCommand } from "./reply.ts";
import { requestCommand } from "./request.ts";
import { clusterCommand, statsCommand } from "./stats.ts";
import { subCommand } from "./sub.ts";

export { type CliIo, defaultIo, ExitCode } from "./common.ts";
export type { Runtime } from "../runtime/mod.ts";

type Command = (args: string[], runtime: Runtime, io: CliIo) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  pub: pubCommand,
  sub: subCommand,
  request: requestCommand,
  reply: replyCommand,
  declare: declareCommand,
  bind: bindCommand,
  unbind: unbindCommand,
  stats: statsCommand,
  cluster: clusterCommand,
  bench: benchCommand,
  passwd: passwdCommand,
  keygen: keygenCommand,
  ...Object.fromEntries(
    ADMIN_GROUPS.map((g) => [g, (args, runtime, io) => adminCommand(g, args, runtime, io)]),
  ) as Record<typeof ADMIN_GROUPS[number], Command>,
};

/** One line per client subcommand, for the top-level `relayr --help`. */
export const CLI_USAGE = `Client commands:
  relayr pub <dest> [data|-]   publish a message (or one per stdin line)
  relayr sub <dest>            print the messages of a subscription
  relayr request <dest> <data> send a request and print the reply
  relayr reply <dest> <text>   answer requests ({{body}}: the request's body)
  relayr declare <topic>       declare a topic with retention (replay, durables)
  relayr bind <pattern> <queue>   enqueue a topic's messages in a queue too
  relayr unbind <pattern> <queue> remove such a binding
  relayr stats                 print the broker's statistics
  relayr cluster status        print the cluster's members and queue leaders
  relayr bench                 load-test the broker
  relayr passwd                hash a password for the users file
  relayr keygen <file>         write an Ed25519 key file, print its public key
Admin commands (over the HTTP port, as the console at http://<host>:8222/):
  relayr queue purge|peek|delete <queue>
  relayr dlq replay <queue>     move <queue>.dlq back to <queue>
  relayr conn close <id>        close a client connection
  relayr durable delete <topic> <durable>
Run "relayr <command> --help" for the options of each.`;

/**
 * Runs a client subcommand; `args[0]` is its name. Returns the exit code,
 * or `null` for a name that is not a client subcommand (`serve`, unknown),
 * which the caller handles.
 *
 * @example
 * ```ts ignore
 * import { runCli } from "./src/cli/mod.ts";
 * import { loadRuntime } from "./src/runtime/mod.ts";
 * const runtime = await loadRuntime();
 * const code = await runCli(["pub", "queue:orders", "hello"], runtime);
 * ```
 */
export async function runCli(
  args: string[],
  runtime: Runtime,
  io: CliIo = defaultIo(runtime),
): Promise<number | null> {
  const [name, ...rest] = args;
  if (name === undefined || !Object.hasOwn(COMMANDS, name)) return null;
  return await COMMANDS[name](rest, runtime, io);
}
