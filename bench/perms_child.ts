/**
 * `relayr-perms` in `deno task bench`: the broker as `main.ts serve` runs it,
 * with every connection acting for one user whose publish, subscribe and
 * consume rules are 100 patterns each (the one the bench's destinations match
 * last), so that pub->sub pays for permission checks as an authenticated
 * client would.
 *
 * Authentication's CONNECT flow is not on main yet, so the principal is set
 * through the seam it will use, `Connection.setPrincipal`, as each connection
 * is accepted (before it reads a byte). Once `--users` and CONNECT with
 * credentials exist, this becomes `main.ts serve --users <file>` and the
 * driver's CONNECT carries the user.
 *
 * @module
 */
import { configFrom, startBroker } from "../src/app.ts";
import type { UserEntry } from "../src/auth/mod.ts";
import { loadRuntime } from "../src/runtime/mod.ts";
import type { Connection } from "../src/server/mod.ts";

/** Allow rules per action: the "a user with 100 allow rules". */
const RULES = 100;

/** `RULES` patterns: ones that match nothing the bench uses, then the bench's own (`own`). */
function rules(prefix: "topic" | "queue", ...own: string[]): { allow: string[] } {
  const allow = Array.from(
    { length: RULES - own.length },
    (_, i) => `${prefix}:other${i}.*.x.>`,
  );
  return { allow: [...allow, ...own] };
}

/** The bench user: publish to both, subscribe to topics, consume queues; no admin rules. */
export const BENCH_USER: UserEntry = {
  user: "bench",
  permissions: {
    publish: rules("topic", "topic:bench.>", "queue:bench.>"),
    subscribe: rules("topic", "topic:bench.>"),
    consume: rules("queue", "queue:bench.>"),
    allow_responses: true,
  },
};

if (import.meta.main) {
  const runtime = await loadRuntime();
  const { config } = configFrom(runtime, Deno.args.slice(Deno.args[0] === "serve" ? 1 : 0));
  const running = await startBroker(runtime, config);
  const conns = running.server.connections;
  const set = conns.set.bind(conns);
  conns.set = (id: number, c: Connection) => {
    set(id, c);
    c.setPrincipal({ user: BENCH_USER.user, entry: BENCH_USER, roles: [], method: "password" });
    return conns;
  };
  console.log(`relayr-perms listening on ${config.host}:${running.server.port}`);
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) runtime.onSignal(sig, resolve);
  });
  await running.stop();
}
