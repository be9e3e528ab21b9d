/**
 * The proxy connection's SUB line of a users-file user's durable (kept as
 * `<user>/<name>` on the front node) parses, on the leader, back to the name
 * and the user: any user name, spaces, colons, slashes and non-ASCII included.
 */
import assert from "node:assert/strict";
import { proxySubLine } from "../../src/cluster/mod.ts";
import { type Frame, Parser, type SubOptions } from "../../src/protocol/mod.ts";

function parse(line: string): SubOptions {
  const out: Frame[] = [];
  new Parser({}).push(new TextEncoder().encode(line), out);
  assert.equal(out.length, 1);
  const f = out[0];
  assert.equal(f.op, "SUB", JSON.stringify(f));
  return (f as { options: SubOptions }).options;
}

const base: SubOptions = { sid: "d", ack: undefined, prefetch: 10, ackTimeoutMs: undefined };

Deno.test("proxy wire: a user's durable goes as durable and durable_user, and comes back", () => {
  for (const user of ["alice", "a b:c/d", "Zoë %41", "x".repeat(256)]) {
    const o = parse(proxySubLine("topic:t", "d", { ...base, durable: `${user}/billing` }));
    assert.equal(o.durable, "billing");
    assert.equal(o.durableUser, user);
    assert.equal(o.prefetch, 10);
  }
  // A durable of no user (the token holder, no users file) carries no user.
  const o = parse(proxySubLine("topic:t", "d", { ...base, durable: "billing" }));
  assert.equal(o.durable, "billing");
  assert.equal(o.durableUser, undefined);
});
