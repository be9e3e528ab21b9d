/**
 * `relayr-perms` in `deno task bench`: the users file of a broker with
 * authentication on, holding one user whose `publish`, `subscribe` and
 * `consume` rules are 100 allow patterns each (the bench's destinations
 * match the last ones), with `allow_responses`, so that pub->sub pays for
 * permission checks exactly as an authenticated client does. The drivers log
 * in with `CONNECT {"user","pass"}`.
 *
 * @module
 */
import { hashPassword, type UserEntry } from "../src/auth/mod.ts";

/** Allow rules per action: the "a user with 100 allow rules". */
const RULES = 100;

/** The bench user's password (a bench credential, not a secret). */
export const BENCH_PASS = "relayr-bench-pass";

/** What the drivers add to their `CONNECT`. */
export const BENCH_CONNECT_AUTH = { user: "bench", pass: BENCH_PASS };

/** `RULES` patterns: ones that match nothing the bench uses, then the bench's own (`own`). */
function rules(prefix: "topic" | "queue", ...own: string[]): { allow: string[] } {
  const allow = Array.from(
    { length: RULES - own.length },
    (_, i) => `${prefix}:other${i}.*.x.>`,
  );
  return { allow: [...allow, ...own] };
}

/** The bench user (without its password hash); `monitor` so the bench can read `/api/stats`. */
export const BENCH_USER: UserEntry = {
  user: BENCH_CONNECT_AUTH.user,
  roles: ["monitor"],
  permissions: {
    publish: rules("topic", "topic:bench.>", "queue:bench.>"),
    subscribe: rules("topic", "topic:bench.>"),
    consume: rules("queue", "queue:bench.>"),
    allow_responses: true,
  },
};

/** Writes the users file to `path`. */
export async function writeBenchUsers(path: string): Promise<void> {
  const users = [{ ...BENCH_USER, password: await hashPassword(BENCH_PASS) }];
  await Deno.writeTextFile(path, JSON.stringify({ users }));
}
