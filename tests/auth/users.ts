/**
 * The users of the permission matrix, shared by the unit test
 * (tests/auth/permissions_test.ts) and the socket test (tests/e2e/permissions_test.ts).
 */
import { Action, type UserEntry } from "../../src/auth/mod.ts";

/** The users of the matrix; the same ones are used over sockets in tests/e2e/permissions_test.ts. */
export const USERS: Record<string, UserEntry> = {
  // Reads and writes the public topics and the order queues, never the secret ones.
  alice: {
    user: "alice",
    permissions: {
      publish: { allow: ["topic:public.>", "queue:orders.*"], deny: ["topic:public.secret"] },
      subscribe: { allow: ["topic:public.>"], deny: ["topic:public.secret.>"] },
      consume: { allow: ["queue:orders.*"] },
      admin: { allow: ["topic:public.>"] },
    },
  },
  // No permissions at all: everything.
  bob: { user: "bob" },
  // A service: takes requests, may only publish replies to what it received.
  carol: {
    user: "carol",
    permissions: {
      publish: { deny: ["topic:>", "queue:>"] },
      subscribe: { allow: ["topic:requests.*"] },
      consume: { allow: ["queue:jobs"] },
      allow_responses: true,
    },
  },
  // An empty allow list: nothing.
  dave: { user: "dave", permissions: { publish: { allow: [] }, subscribe: { allow: [] } } },
};

const P = Action.PUBLISH;
const S = Action.SUBSCRIBE;
const C = Action.CONSUME;
const A = Action.ADMIN;

/** user, action, destination, allowed. */
export const MATRIX: [string, Action, string, boolean][] = [
  ["alice", P, "topic:public.news", true],
  ["alice", P, "topic:public.a.b.c", true],
  ["alice", P, "topic:public", false], // `>` needs at least one token
  ["alice", P, "topic:public.secret", false], // deny wins over the allow `topic:public.>`
  ["alice", P, "topic:public.secret.x", true], // the publish deny is exact
  ["alice", P, "topic:private.x", false],
  ["alice", P, "queue:orders.eu", true],
  ["alice", P, "queue:orders.eu.x", false], // `*` is one token
  ["alice", P, "queue:orders", false],
  ["alice", P, "topic:orders.eu", false], // the prefix is part of the pattern
  ["alice", S, "topic:public.news", true],
  ["alice", S, "topic:public.secret", true],
  ["alice", S, "topic:public.secret.x", false],
  ["alice", S, "topic:>", true], // overlaps the allow: bound only to allowed topics
  ["alice", S, "topic:public.*", true],
  ["alice", S, "topic:*.news", true],
  ["alice", S, "topic:private.>", false], // overlaps no allow: refused
  ["alice", S, "topic:public.secret.>", false], // wholly denied: refused
  ["alice", S, "topic:public.secret.*", false],
  ["alice", C, "queue:orders.us", true],
  ["alice", C, "queue:payments", false],
  ["alice", A, "topic:public.log", true],
  ["alice", A, "topic:private.log", false],
  ["bob", P, "topic:anything", true],
  ["bob", S, "topic:>", true],
  ["bob", C, "queue:any", true],
  ["bob", A, "topic:x", true],
  ["carol", P, "topic:replies.1", false],
  ["carol", P, "queue:results", false],
  ["carol", S, "topic:requests.add", true],
  ["carol", S, "topic:requests.add.x", false],
  ["carol", S, "topic:requests.>", true],
  ["carol", S, "topic:>", true],
  ["carol", S, "topic:other.*", false],
  ["carol", C, "queue:jobs", true],
  ["carol", C, "queue:jobs.dlq", false],
  ["carol", A, "topic:requests.add", true], // no admin rules: allowed
  ["dave", P, "topic:x", false],
  ["dave", S, "topic:x", false],
  ["dave", S, "topic:>", false],
  ["dave", C, "queue:x", true],
];
