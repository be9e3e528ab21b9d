/**
 * Permission check micro benchmark: the decision for a PUB by a user with 100
 * allow rules, cached (the steady state of the publish path: one map lookup)
 * and uncached (the first PUB to a destination: every rule tried), beside
 * the branch an anonymous connection pays.
 */
import { Action, Permissions } from "../../src/auth/mod.ts";

const RULES = Array.from({ length: 99 }, (_, i) => `topic:other${i}.*.x.>`);
RULES.push("topic:bench.>");
const perms = new Permissions({ publish: { allow: RULES } });
const DESTS = Array.from({ length: 64 }, (_, i) => `topic:bench.t${i}`);
let sink = 0;

Deno.bench("anonymous: no permissions object", { group: "publish check", baseline: true }, () => {
  const p: Permissions | undefined = sink < 0 ? perms : undefined;
  for (let i = 0; i < DESTS.length; i++) {
    if (p === undefined || p.may(Action.PUBLISH, DESTS[i])) sink++;
  }
});

Deno.bench("100 rules, cached", { group: "publish check" }, () => {
  for (let i = 0; i < DESTS.length; i++) if (perms.may(Action.PUBLISH, DESTS[i])) sink++;
});

Deno.bench("100 rules, uncached (first PUB to a destination)", { group: "publish check" }, () => {
  const fresh = new Permissions({ publish: { allow: RULES } });
  for (let i = 0; i < DESTS.length; i++) if (fresh.may(Action.PUBLISH, DESTS[i])) sink++;
});
