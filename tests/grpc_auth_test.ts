/**
 * The gRPC front end under authentication: every call passes the broker's
 * Authenticator (the token as `authorization: Bearer`, or `user` and `pass`
 * metadata), and every destination the user's permission rules.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { hashPassword } from "../src/auth/mod.ts";
import { CHEAP, writeUsers } from "./auth/fixtures.ts";
import { errorCode, GrpcClient, StreamReader, subscribe, takeMessages } from "./grpc_helpers.ts";
import { startTestBroker } from "./helpers.ts";

const encoder = new TextEncoder();
const TOKEN = "grpc-tok-5c1d9e";
const PASS = "carol-pw-72a4";

function md(pairs: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) m.set(k, v);
  return m;
}

Deno.test("grpc auth: a token or a user/password per call; none or a wrong one is UNAUTHENTICATED; rules per destination", async () => {
  const path = await writeUsers([{
    user: "carol",
    password: await hashPassword(PASS, CHEAP),
    permissions: {
      publish: { allow: ["queue:orders.>"], deny: ["queue:orders.secret"] },
      consume: { allow: ["queue:orders.>"] },
    },
  }]);
  const b = await startTestBroker(["--grpc-port", "0", "--auth-token", TOKEN, "--users", path]);
  const c = new GrpcClient(b.grpc!.port);
  const body = encoder.encode("x");
  const fails = async (
    metadata: grpc.Metadata,
    dest: string,
    status: grpc.status,
    code: string,
  ) => {
    const e = await c.unary("Publish", { destination: dest, body }, { metadata })
      .then(() => undefined, (e) => e);
    assert.equal(e?.code, status, `${dest}: ${e?.details}`);
    assert.equal(errorCode(e), code);
    assert.doesNotMatch(String(e.details), new RegExp(`${TOKEN}|${PASS}`), "no secret in errors");
  };
  try {
    await fails(md({}), "queue:orders.a", grpc.status.UNAUTHENTICATED, "AUTH_REQUIRED");
    await fails(
      md({ authorization: "Bearer nope" }),
      "queue:orders.a",
      grpc.status.UNAUTHENTICATED,
      "AUTH_FAILED",
    );
    await fails(
      md({ user: "carol", pass: "wrong" }),
      "queue:orders.a",
      grpc.status.UNAUTHENTICATED,
      "AUTH_FAILED",
    );
    // The token may do everything.
    await c.unary("Publish", { destination: "queue:any", body }, {
      metadata: md({ authorization: `Bearer ${TOKEN}` }),
    });
    // carol: her rules, deny winning over allow.
    const carol = md({ user: "carol", pass: PASS });
    await c.unary("Publish", { destination: "queue:orders.eu", body }, { metadata: carol });
    await fails(carol, "queue:orders.secret", grpc.status.PERMISSION_DENIED, "PERMISSION_DENIED");
    await fails(carol, "queue:invoices", grpc.status.PERMISSION_DENIED, "PERMISSION_DENIED");
    // Streams authenticate once, at their start.
    const s = await subscribe(c, { destination: "queue:orders.eu" }, carol);
    const [m] = await takeMessages(s.r, 1);
    assert.equal(m.destination, "queue:orders.eu");
    s.call.cancel();
    const anon = c.raw.Subscribe(md({}));
    const r = new StreamReader(anon);
    anon.write({ open: { destination: "queue:orders.eu" } });
    await r.done();
    assert.equal(r.error?.code, grpc.status.UNAUTHENTICATED);
    const denied = c.raw.Subscribe(carol);
    const r2 = new StreamReader(denied);
    denied.write({ open: { destination: "queue:invoices" } });
    await r2.done();
    assert.equal(r2.error?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(b.grpc!.stats().errors.AUTH_FAILED, 2);
  } finally {
    c.close();
    await b.stop();
    await Deno.remove(path);
  }
});
