/**
 * Permissions and per-user limits, as pure units: the permission matrix as a
 * table (user x action x destination, wildcards, deny over allow, reply-to
 * grants), the bounded decision cache, the token bucket, connection counts.
 */
import assert from "node:assert/strict";
import {
  Action,
  authorizationError,
  covers,
  limitsError,
  overlaps,
  patternError,
  Permissions,
  permissionsOf,
  resolveLimits,
  ResponseGrants,
  TokenBucket,
  tokens,
  UserConnections,
} from "../../src/auth/mod.ts";
import {
  PAYLOAD_BYTES_MAX,
  PENDING_BYTES_MAX,
  PERMISSION_DECISIONS_MAX,
  RESPONSE_GRANT_MS,
  RESPONSE_GRANTS_MAX,
  SUBSCRIPTIONS_PER_CONNECTION_MAX,
} from "../../src/config/mod.ts";
import { MATRIX, USERS } from "./users.ts";

const P = Action.PUBLISH;
const S = Action.SUBSCRIBE;
const A = Action.ADMIN;

Deno.test("permissions: the matrix of users, actions and destinations", () => {
  for (const [user, action, dest, want] of MATRIX) {
    const p = permissionsOf(USERS[user]);
    // Twice: the second answer comes from the cache and must be the same.
    for (let i = 0; i < 2; i++) {
      assert.equal(p.may(action, dest), want, `${user} ${action} ${dest} (pass ${i})`);
    }
  }
});

Deno.test("permissions: maySubscribe asks consume for queues and subscribe for topics", () => {
  const p = permissionsOf(USERS.alice);
  assert.equal(p.maySubscribe("queue:orders.eu"), true);
  assert.equal(p.maySubscribe("topic:orders.eu"), false);
  assert.equal(p.maySubscribe("topic:public.x"), true);
  assert.equal(p.maySubscribe("queue:public.x"), false);
});

Deno.test("permissions: compiled once per entry, answers of different actions share a cache entry", () => {
  const entry = structuredClone(USERS.alice);
  const p = permissionsOf(entry);
  assert.equal(permissionsOf(entry), p);
  assert.notEqual(permissionsOf(structuredClone(entry)), p, "a new entry (a reload) compiles anew");
  assert.equal(p.may(P, "topic:public.a"), true);
  assert.equal(p.may(S, "topic:public.a"), true);
  assert.equal(p.may(A, "topic:public.a"), true);
  assert.equal(p.cached, 1);
  assert.equal(permissionsOf(USERS.bob).publishOpen, true);
  assert.equal(p.publishOpen, false);
});

Deno.test("permissions: the decision cache is bounded and stays correct past its bound", () => {
  const p = new Permissions({ publish: { allow: ["topic:even.>"] } });
  for (let i = 0; i < PERMISSION_DECISIONS_MAX * 2 + 7; i++) {
    const dest = i % 2 === 0 ? `topic:even.${i}` : `topic:odd.${i}`;
    assert.equal(p.may(P, dest), i % 2 === 0, dest);
    assert.ok(p.cached <= PERMISSION_DECISIONS_MAX);
  }
  assert.equal(p.may(P, "topic:even.0"), true);
  assert.equal(p.may(P, "topic:odd.1"), false);
});

Deno.test("permissions: bad rules are refused with the rule named", () => {
  const bad: [unknown, RegExp][] = [
    [
      { publish: { allow: ["orders.*"] } },
      /publish\.allow: .*must start with "queue:" or "topic:"/,
    ],
    [{ subscribe: { deny: ["topic:a.>.b"] } }, /subscribe\.deny: ">" must be the last token/],
    [{ consume: { allow: ["queue:a..b"] } }, /consume\.allow: .*empty token/],
    [{ admin: { allow: "topic:>" } }, /admin\.allow must be a list/],
    [{ publish: { allow: [42] } }, /publish\.allow: a permission pattern must be a string/],
  ];
  for (const [rules, re] of bad) {
    assert.throws(() => new Permissions(rules as never), (e: Error) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, re);
      return true;
    });
  }
  assert.equal(patternError("queue:orders.*"), undefined);
  assert.equal(patternError("topic:>"), undefined);
});

Deno.test("permissions: covers and overlaps, the pattern algebra behind wildcard subscriptions", () => {
  const cases: [string, string, boolean, boolean][] = [
    // outer, inner, outer covers inner, they overlap
    ["topic:a.>", "topic:a.b", true, true],
    ["topic:a.>", "topic:a.*", true, true],
    ["topic:a.>", "topic:a.>", true, true],
    ["topic:a.>", "topic:>", false, true],
    ["topic:a.*", "topic:a.>", false, true],
    ["topic:a.*", "topic:a.b.c", false, false],
    ["topic:*.b", "topic:a.*", false, true],
    ["topic:a.b", "topic:a.c", false, false],
    ["topic:a", "topic:a.>", false, false],
    ["topic:>", "queue:a", false, false],
    ["queue:*", "queue:a", true, true],
  ];
  for (const [o, i, c, ov] of cases) {
    assert.equal(covers(tokens(o), tokens(i)), c, `${o} covers ${i}`);
    assert.equal(overlaps(tokens(o), tokens(i)), ov, `${o} overlaps ${i}`);
    assert.equal(overlaps(tokens(i), tokens(o)), ov, `${i} overlaps ${o}`);
  }
});

Deno.test("permissions: reply-to grants are one response each, expire, and are bounded", () => {
  const g = new ResponseGrants();
  const t0 = 1_000_000;
  g.grant("topic:_inbox.1", t0);
  assert.equal(g.take("topic:_inbox.1", t0 + 1), true);
  assert.equal(g.take("topic:_inbox.1", t0 + 2), false, "one response per received message");
  g.grant("topic:_inbox.2", t0);
  g.grant("topic:_inbox.2", t0);
  assert.equal(g.take("topic:_inbox.2", t0), true);
  assert.equal(g.take("topic:_inbox.2", t0), true, "two requests, two responses");
  assert.equal(g.take("topic:_inbox.2", t0), false);
  g.grant("topic:_inbox.3", t0);
  assert.equal(g.take("topic:_inbox.3", t0 + RESPONSE_GRANT_MS + 1), false, "expired");
  assert.equal(g.size, 0);
  for (let i = 0; i < RESPONSE_GRANTS_MAX + 10; i++) g.grant(`topic:_inbox.x${i}`, t0);
  assert.equal(g.size, RESPONSE_GRANTS_MAX);
  assert.equal(g.take("topic:_inbox.x0", t0), false, "the oldest was forgotten");
  assert.equal(g.take(`topic:_inbox.x${RESPONSE_GRANTS_MAX + 9}`, t0), true);
});

Deno.test("limits: the token bucket spends, refills from the clock, and says how long to wait", () => {
  const b = new TokenBucket(10, 3, 0);
  assert.equal(b.limited, true);
  for (let i = 0; i < 3; i++) b.tokens--;
  assert.equal(b.waitMs(), 100);
  b.refill(50);
  assert.equal(b.tokens, 0.5);
  assert.equal(b.waitMs(), 50);
  b.refill(10_000);
  assert.equal(b.tokens, 3, "never more than the burst");
  for (let i = 0; i < 10; i++) b.tokens--; // a batch may overdraw; the wait pays it back
  assert.equal(b.waitMs(), 800);
  const free = new TokenBucket(0, 0, 0);
  free.tokens--;
  assert.equal(free.tokens, Infinity);
  assert.equal(free.waitMs(), 0);
  assert.equal(free.limited, false);
});

Deno.test("limits: connections are counted per user", () => {
  const u = new UserConnections();
  assert.equal(u.acquire("a", 2), true);
  assert.equal(u.acquire("a", 2), true);
  assert.equal(u.acquire("a", 2), false);
  assert.equal(u.acquire("b", 1), true);
  assert.equal(u.count("a"), 2);
  u.release("a");
  assert.equal(u.acquire("a", 2), true);
  u.release("a");
  u.release("a");
  u.release("b");
  assert.equal(u.count("a"), 0);
  assert.equal(u.count("b"), 0);
});

Deno.test("limits: absent fields take the server's values; a user is never looser than the server", () => {
  const d = { maxPayload: 1000 };
  assert.deepEqual(resolveLimits(undefined, d), {
    connections: Infinity,
    subscriptions: SUBSCRIPTIONS_PER_CONNECTION_MAX,
    maxPayload: 1000,
    publishRate: 0,
    publishBurst: 1,
    pendingBytes: PENDING_BYTES_MAX,
  });
  assert.deepEqual(
    resolveLimits({
      connections: 2,
      subscriptions: 5,
      max_payload: PAYLOAD_BYTES_MAX,
      publish_rate: 100,
      pending_bytes: PENDING_BYTES_MAX * 2,
    }, d),
    {
      connections: 2,
      subscriptions: 5,
      maxPayload: 1000,
      publishRate: 100,
      publishBurst: 100,
      pendingBytes: PENDING_BYTES_MAX,
    },
  );
});

Deno.test("limits: a bad limits object is refused with the field named", () => {
  assert.equal(limitsError(undefined), undefined);
  assert.equal(limitsError({ publish_rate: 10, connections: 1 }), undefined);
  assert.match(limitsError([])!, /must be an object/);
  assert.match(limitsError({ rate: 1 })!, /unknown limit "rate"/);
  assert.match(limitsError({ publish_rate: 0 })!, /limits\.publish_rate must be a whole number/);
  assert.match(limitsError({ max_payload: 1.5 })!, /limits\.max_payload/);
});

Deno.test("authorization: one check of an entry's permissions and limits, for loading the users file", () => {
  assert.equal(authorizationError(USERS.alice), undefined);
  assert.equal(authorizationError({}), undefined);
  assert.match(
    authorizationError({ permissions: { publish: { deny: ["topic:a.>.b"] } } })!,
    /^permissions\.publish\.deny: ">" must be the last token/,
  );
  assert.match(authorizationError({ limits: { connections: 0 } })!, /^limits\.connections/);
});
