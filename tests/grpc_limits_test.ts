/**
 * Per-user limits over gRPC (src/grpc/limits.ts): `max_payload` on every
 * publishing call, `subscriptions` and `publish_rate` per user across the
 * listener, and `allow_responses` for replies to what a user received on a
 * Subscribe stream. Real gRPC against an authenticated broker.
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
import type { GrpcMessage } from "./grpc_helpers.ts";
import { startTestBroker, testConfig } from "./helpers.ts";

const encoder = new TextEncoder();
const TOKEN = "grpc-lim-tok-31f0";
const PASS = "lim-pw-8e2c";

async function withUsers(
  users: Record<string, unknown>[],
  fn: (b: Awaited<ReturnType<typeof startTestBroker>>, c: GrpcClient) => Promise<void>,
): Promise<void> {
  const password = await hashPassword(PASS, CHEAP);
  const path = await writeUsers(users.map((u) => ({ password, ...u })));
  const b = await startTestBroker(["--grpc-port", "0", "--auth-token", TOKEN, "--users", path]);
  const c = new GrpcClient(b.grpc!.port);
  try {
    await fn(b, c);
  } finally {
    c.close();
    await b.stop();
    await Deno.remove(path);
  }
}

async function refused(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e !== undefined, "the call was refused");
  return e;
}

Deno.test("grpc limits: a user's max_payload on Publish, PublishStream and Request; its subscriptions across the listener", async () => {
  await withUsers(
    [{ user: "lim", limits: { max_payload: 16, subscriptions: 2 } }],
    async (b, c) => {
      const as = md({ user: "lim", pass: PASS });
      const ok = new Uint8Array(16);
      const big = new Uint8Array(17);
      await c.unary("Publish", { destination: "queue:a", body: ok }, { metadata: as });
      let e = await refused(
        c.unary("Publish", { destination: "queue:a", body: big }, { metadata: as }),
      );
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(errorCode(e), "PAYLOAD_TOO_LARGE");
      e = await refused(
        c.unary("Request", { message: { destination: "queue:a", body: big }, timeout_ms: 1000 }, {
          metadata: as,
        }),
      );
      assert.equal(errorCode(e), "PAYLOAD_TOO_LARGE");
      const ps = c.raw.PublishStream(as);
      const pr = new StreamReader<{ acks: { msg_id: string; error: { code: string } | null }[] }>(
        ps,
      );
      ps.write({
        messages: [{ destination: "queue:a", body: ok }, { destination: "queue:a", body: big }],
      });
      const { acks } = await pr.next();
      assert.notEqual(acks[0].msg_id, "");
      assert.equal(acks[1].error?.code, "PAYLOAD_TOO_LARGE");
      ps.end();
      await pr.done();
      // Other users keep the server's limit.
      await c.unary("Publish", { destination: "queue:a", body: big }, {
        metadata: md({ authorization: `Bearer ${TOKEN}` }),
      });

      // Two subscriptions, on two calls: the third is over the user's limit.
      const s1 = await subscribe(c, { destination: "queue:s1" }, as);
      const s2 = await subscribe(c, { destination: "topic:s2" }, as);
      const third = c.raw.Subscribe(as);
      const r3 = new StreamReader(third);
      third.write({ open: { destination: "queue:s3" } });
      await r3.done();
      assert.equal(r3.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(errorCode(r3.error), "LIMIT");
      // One ends: a new one opens once the server has seen it end.
      s1.call.cancel();
      await s1.r.done().catch(() => {});
      for (let i = 0; i < 200 && b.grpc!.stats().subscribe_streams > 1; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const s3 = await subscribe(c, { destination: "queue:s3" }, as);
      assert.ok(s3.subId);
      s2.call.cancel();
      s3.call.cancel();
    },
  );
});

Deno.test("grpc limits: over publish_rate a PublishStream stops being read and a unary Publish waits, bounded by its deadline", async () => {
  await withUsers([
    { user: "fast", limits: { publish_rate: 20, publish_burst: 1 } },
    { user: "slow", limits: { publish_rate: 1 } },
  ], async (b, c) => {
    const as = md({ user: "fast", pass: PASS });
    const body = encoder.encode("m");
    // 5 messages in one batch, 1 token at once and 20/s after: at least 4 x 50 ms.
    const ps = c.raw.PublishStream(as);
    const pr = new StreamReader<{ acks: { msg_id: string; error: unknown }[] }>(ps);
    const t0 = performance.now();
    ps.write({ messages: Array.from({ length: 5 }, () => ({ destination: "queue:r", body })) });
    const { acks } = await pr.next(5000);
    const took = performance.now() - t0;
    assert.equal(acks.length, 5);
    assert.ok(acks.every((a) => a.error === null && a.msg_id !== ""), "nothing refused");
    assert.ok(took >= 190, `the batch took ${took} ms, not the rate's 200`);
    ps.end();
    await pr.done();
    const paused = b.server.authz.publish_paused;
    assert.ok(paused >= 1);
    // Unary: the bucket is the user's across calls; these wait their turn too.
    const t1 = performance.now();
    for (let i = 0; i < 3; i++) {
      await c.unary("Publish", { destination: "queue:r", body }, { metadata: as });
    }
    assert.ok(performance.now() - t1 >= 90, "3 publishes at 20/s after the stream drained it");
    assert.ok(b.server.authz.publish_paused > paused);
    // 1/s: the second publish cannot get a token within its deadline.
    const slow = md({ user: "slow", pass: PASS });
    await c.unary("Publish", { destination: "queue:r", body }, { metadata: slow });
    const e = await refused(
      c.unary("Publish", { destination: "queue:r", body }, {
        metadata: slow,
        deadline: Date.now() + 150,
      }),
    );
    assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
  });
});

Deno.test("grpc limits: allow_responses lets a user answer, once, a request it received on a Subscribe stream", async () => {
  await withUsers([{
    user: "svc",
    permissions: {
      consume: { allow: ["queue:svc"] },
      subscribe: { allow: ["queue:svc"] },
      publish: { allow: ["queue:svc.log"] },
      allow_responses: true,
    },
  }], async (_b, c) => {
    const as = md({ user: "svc", pass: PASS });
    const s = await subscribe(c, { destination: "queue:svc", ack: "none" }, as);
    const reply = c.unary<{ reply: GrpcMessage }>("Request", {
      message: { destination: "queue:svc", body: encoder.encode("ping") },
      timeout_ms: 3000,
    }, { metadata: md({ authorization: `Bearer ${TOKEN}` }) });
    const [m] = await takeMessages(s.r, 1);
    assert.ok(m.reply_to !== "");
    // Not granted: a destination it did not receive.
    let e = await refused(
      c.unary("Publish", { destination: "queue:elsewhere", body: encoder.encode("x") }, {
        metadata: as,
      }),
    );
    assert.equal(errorCode(e), "PERMISSION_DENIED");
    await c.unary("Publish", {
      destination: m.reply_to,
      body: encoder.encode("pong"),
      correlation_id: m.correlation_id,
    }, { metadata: as });
    const { reply: r } = await reply;
    assert.equal(new TextDecoder().decode(r.body), "pong");
    // One response per request.
    e = await refused(
      c.unary("Publish", { destination: m.reply_to, body: encoder.encode("again") }, {
        metadata: as,
      }),
    );
    assert.equal(errorCode(e), "PERMISSION_DENIED");
    // A reply_to the user may not read is refused, as on TCP.
    e = await refused(
      c.unary("Publish", {
        destination: "queue:svc.log",
        body: encoder.encode("x"),
        reply_to: "queue:other",
      }, { metadata: as }),
    );
    assert.equal(errorCode(e), "PERMISSION_DENIED");
    s.call.cancel();
  });
});

Deno.test("grpc limits: a reload's new limits apply to the user's next calls; its open subscriptions stay counted", async () => {
  const password = await hashPassword(PASS, CHEAP);
  const entry = (limits: Record<string, number>) => ({ user: "lim", password, limits });
  const path = await writeUsers([entry({ max_payload: 16, subscriptions: 1 })]);
  const args = ["--grpc-port", "0", "--auth-token", TOKEN, "--users", path];
  const b = await startTestBroker(args);
  const c = new GrpcClient(b.grpc!.port);
  try {
    const as = md({ user: "lim", pass: PASS });
    const big = new Uint8Array(17);
    const s = await subscribe(c, { destination: "topic:t" }, as);
    const e = await refused(
      c.unary("Publish", { destination: "queue:a", body: big }, { metadata: as }),
    );
    assert.equal(errorCode(e), "PAYLOAD_TOO_LARGE");
    await writeUsers([entry({ max_payload: 32, subscriptions: 2 })], path);
    b.reload(testConfig(args));
    await c.unary("Publish", { destination: "queue:a", body: big }, { metadata: as });
    // One more subscription: the open one still counts against the new limit of 2.
    const s2 = await subscribe(c, { destination: "topic:t2" }, as);
    const third = c.raw.Subscribe(as);
    const r3 = new StreamReader(third);
    third.write({ open: { destination: "topic:t3" } });
    await r3.done();
    assert.equal(errorCode(r3.error), "LIMIT");
    s.call.cancel();
    s2.call.cancel();
  } finally {
    c.close();
    await b.stop();
    await Deno.remove(path);
  }
});
