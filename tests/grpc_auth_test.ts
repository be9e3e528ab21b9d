/**
 * The gRPC front end under authentication: every call passes the broker's
 * Authenticator (the token as `authorization: Bearer`, or `user` and `pass`
 * metadata), and every destination the user's permission rules.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { hashPassword } from "../src/auth/mod.ts";
import { CHEAP, writeUsers } from "./auth/fixtures.ts";
import {
  errorCode,
  GrpcClient,
  md,
  StreamReader,
  subscribe,
  takeMessages,
} from "./grpc_helpers.ts";
import { RawClient, startTestBroker, testConfig } from "./helpers.ts";

const encoder = new TextEncoder();
const TOKEN = "grpc-tok-5c1d9e";
const PASS = "carol-pw-72a4";

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

Deno.test("grpc auth: a reload that removes a user ends its open streams (AUTH_REVOKED); its subscription's messages go back", async () => {
  const carol = { user: "carol", password: await hashPassword(PASS, CHEAP) };
  const dave = { user: "dave", password: await hashPassword("dave-pw-9", CHEAP) };
  const path = await writeUsers([carol, dave]);
  const args = ["--grpc-port", "0", "--auth-token", TOKEN, "--users", path];
  const b = await startTestBroker(args);
  const c = new GrpcClient(b.grpc!.port);
  try {
    const asCarol = md({ user: "carol", pass: PASS });
    const asDave = md({ user: "dave", pass: "dave-pw-9" });
    await c.unary("Publish", { destination: "queue:r", body: encoder.encode("m") }, {
      metadata: asDave,
    });
    const s = await subscribe(c, { destination: "queue:r" }, asCarol);
    const [m] = await takeMessages(s.r, 1);
    const ps = c.raw.PublishStream(asCarol);
    const pr = new StreamReader(ps);
    ps.write({ messages: [{ destination: "queue:r2", body: encoder.encode("y") }] });
    await pr.next();
    const daves = await subscribe(c, { destination: "queue:other" }, asDave);
    await writeUsers([dave], path);
    b.reload(testConfig(args));
    await s.r.done();
    assert.equal(s.r.error?.code, grpc.status.UNAUTHENTICATED);
    assert.equal(errorCode(s.r.error), "AUTH_REVOKED");
    await pr.done();
    assert.equal(errorCode(pr.error), "AUTH_REVOKED");
    assert.equal(b.grpc!.stats().closed_by_reason.AUTH_REVOKED, 2);
    // dave's stream goes on, and gets carol's unacked message again.
    daves.call.cancel();
    const again = await subscribe(c, { destination: "queue:r" }, asDave);
    const [m2] = await takeMessages(again.r, 1);
    assert.deepEqual([m2.msg_id, m2.delivery], [m.msg_id, 2]);
    again.call.cancel();
    const e = await c.unary("Publish", { destination: "queue:r", body: encoder.encode("z") }, {
      metadata: asCarol,
    }).then(() => undefined, (e) => e);
    assert.equal(errorCode(e), "AUTH_FAILED");
  } finally {
    c.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("grpc auth: a wildcard subscription gets only the topics its user may read", async () => {
  const path = await writeUsers([{
    user: "carol",
    password: await hashPassword(PASS, CHEAP),
    permissions: { subscribe: { allow: ["topic:events.public.>"] } },
  }]);
  const b = await startTestBroker(["--grpc-port", "0", "--auth-token", TOKEN, "--users", path]);
  const c = new GrpcClient(b.grpc!.port);
  try {
    const s = await subscribe(
      c,
      { destination: "topic:events.>" },
      md({ user: "carol", pass: PASS }),
    );
    const asToken = md({ authorization: `Bearer ${TOKEN}` });
    for (const t of ["topic:events.secret", "topic:events.public.a", "topic:events.secret.b"]) {
      await c.unary("Publish", { destination: t, body: encoder.encode(t) }, { metadata: asToken });
    }
    await c.unary(
      "Publish",
      { destination: "topic:events.public.z", body: encoder.encode("end") },
      {
        metadata: asToken,
      },
    );
    const got = await takeMessages(s.r, 2);
    assert.deepEqual(got.map((m) => m.destination), [
      "topic:events.public.a",
      "topic:events.public.z",
    ]);
    s.call.cancel();
  } finally {
    c.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("grpc auth: a user's durable is kept under its user: two users' durables of one name are apart", async () => {
  const may = { allow: ["topic:ev"] };
  const password = await hashPassword(PASS, CHEAP);
  const path = await writeUsers(
    ["carol", "dave"].map((user) => ({ user, password, permissions: { subscribe: may } })),
  );
  const b = await startTestBroker(["--grpc-port", "0", "--auth-token", TOKEN, "--users", path]);
  const c = new GrpcClient(b.grpc!.port);
  const admin = await RawClient.connect(b.port);
  try {
    await admin.line(); // INFO
    await admin.send(
      `CONNECT {"auth_token":"${TOKEN}"}\r\nDECLARE topic:ev retain_messages:10\r\n`,
    );
    assert.equal(await admin.line(), "OK");
    assert.equal(await admin.line(), "OK");
    const open = { destination: "topic:ev", durable: "billing", start: { first: true } };
    const carol = await subscribe(c, open, md({ user: "carol", pass: PASS }));
    assert.match(carol.subId, /^g\d+$/);
    // dave's "billing" is another durable: opened while carol's is in use.
    const dave = await subscribe(c, open, md({ user: "dave", pass: PASS }));
    assert.match(dave.subId, /^g\d+$/);
    // carol's own again is in use, and named under her.
    const again = c.raw.Subscribe(md({ user: "carol", pass: PASS }));
    const r = new StreamReader(again);
    again.write({ open });
    await r.done(5000);
    assert.equal(errorCode(r.error), "DURABLE_IN_USE");
    assert.match(String(r.error?.details), /carol\/billing/);
    carol.call.cancel();
    dave.call.cancel();
  } finally {
    await admin.close();
    c.close();
    await b.stop();
    await Deno.remove(path);
  }
});
