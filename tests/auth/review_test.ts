/**
 * Attacks found by the review of authentication, permissions and limits,
 * each over real sockets: a test per attack, failing without its fix.
 */
import assert from "node:assert/strict";
import { CHEAP, startAuthBroker, writeUsers } from "./fixtures.ts";
import { generateKeyPair, hashPassword } from "../../src/auth/mod.ts";
import { loadKeyFile } from "../../src/client/auth.ts";
import { denoRuntime } from "../../src/runtime/deno.ts";
import { RawClient } from "../helpers.ts";

/** Connects and reads the INFO greeting. */
async function greeted(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  assert.match(await c.line(), /^INFO \{.*"nonce"/);
  return c;
}

Deno.test("review: a user's max_payload holds for a PUB pipelined behind its CONNECT in one write", async () => {
  // Before: the parser read the PUB's header with the server's limit before
  // the CONNECT's verdict set the user's, so CONNECT + PUB in one write
  // published a payload over the user's max_payload.
  const path = await writeUsers([
    { user: "small", password: await hashPassword("pw-small", CHEAP), limits: { max_payload: 8 } },
  ]);
  const b = await startAuthBroker(path);
  const c = await greeted(b.port);
  try {
    const big = "x".repeat(64);
    await c.send(
      `CONNECT {"user":"small","pass":"pw-small"}\r\nPUB queue:q ${big.length}\r\n${big}\r\n`,
    );
    assert.equal(await c.line(5000), "OK");
    assert.match(await c.line(), /^ERR PAYLOAD_TOO_LARGE /);
    assert.ok(await c.closedByServer(5000));
    assert.equal(b.broker.queueStats({ offset: 0, limit: 10 }).total, 0, "nothing was published");
  } finally {
    await c.close();
    await b.stop();
    await Deno.remove(path);
  }
});

/** Logs in as `user` with `pass`, the CONNECT answered. */
async function login(port: number, user: string, pass: string): Promise<RawClient> {
  const c = await greeted(port);
  await c.send(`CONNECT ${JSON.stringify({ user, pass })}\r\n`);
  assert.equal(await c.line(5000), "OK");
  return c;
}

Deno.test("review: a user kept from consuming queue:x may not consume its dead letters, queue:x.dlq", async () => {
  // Before: queue:x.dlq matched no deny of queue:x, so a user denied x read
  // every message of x that failed (max_deliveries, NACKs) from x.dlq.
  const path = await writeUsers([{
    user: "eve",
    password: await hashPassword("pw-eve", CHEAP),
    permissions: { consume: { allow: ["queue:>"], deny: ["queue:payroll"] } },
  }]);
  const b = await startAuthBroker(path);
  const c = await login(b.port, "eve", "pw-eve");
  try {
    for (const q of ["queue:payroll.dlq", "queue:payroll.dlq.dlq"]) {
      await c.send(`SUB ${q}\r\n`);
      assert.equal(await c.line(), `ERR PERMISSION_DENIED ${q}`);
    }
    await c.send("SUB queue:orders.dlq\r\n");
    assert.match(await c.line(), /^OK sub_id:/, "the dead letters of a queue it may consume");
  } finally {
    await c.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("review: a reply_to must be readable by its requester: no steering an allow_responses service into any destination", async () => {
  // Before: any requester could set reply_to:queue:jobs on a request, and the
  // service (allowed to answer whatever it received) wrote its reply into
  // queue:jobs, where neither of them may publish.
  const path = await writeUsers([
    {
      user: "carol",
      password: await hashPassword("pw-carol", CHEAP),
      permissions: {
        publish: { deny: ["topic:>", "queue:>"] },
        subscribe: { allow: ["topic:requests.*"] },
        allow_responses: true,
      },
    },
    {
      user: "mallory",
      password: await hashPassword("pw-mallory", CHEAP),
      permissions: {
        publish: { allow: ["topic:requests.*"] },
        subscribe: { allow: ["topic:_inbox.mallory.>"] },
        consume: { allow: [] },
      },
    },
  ]);
  const b = await startAuthBroker(path);
  const carol = await login(b.port, "carol", "pw-carol");
  const mallory = await login(b.port, "mallory", "pw-mallory");
  try {
    await carol.send("SUB topic:requests.* sub_id:req\r\n");
    assert.equal(await carol.line(), "OK");
    await mallory.pub("topic:requests.add", "1+1", "reply_to:queue:jobs");
    assert.equal(await mallory.line(), "ERR PERMISSION_DENIED queue:jobs");
    await mallory.pub("topic:requests.add", "2+2", "reply_to:topic:_inbox.mallory.1");
    assert.match(await mallory.line(), /^OK msg_id:/, "its own inbox is fine");
    const [req] = await carol.msgs(1);
    assert.equal(req.fields!.reply_to, "topic:_inbox.mallory.1", "only the allowed request came");
  } finally {
    await carol.close();
    await mallory.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("review: a durable is its user's: another user with the same name gets its own, not the backlog", async () => {
  // Before: durable names were one namespace per topic, so any user allowed
  // to read the topic could attach to another user's durable while it was
  // away, take its backlog and ack it: the owner never got those messages.
  const users = await Promise.all(["alice", "bob"].map(async (user) => ({
    user,
    password: await hashPassword(`pw-${user}`, CHEAP),
  })));
  const path = await writeUsers(users);
  const b = await startAuthBroker(path);
  const alice = await login(b.port, "alice", "pw-alice");
  const bob = await login(b.port, "bob", "pw-bob");
  try {
    await alice.send("DECLARE topic:orders retain_messages:100\r\n");
    assert.equal(await alice.line(), "OK");
    await alice.send("SUB topic:orders sub_id:d durable:billing\r\n");
    assert.equal(await alice.line(), "OK");
    await alice.send("UNSUB d\r\n");
    assert.equal(await alice.line(), "OK");
    await alice.pub("topic:orders", "for alice's billing");
    assert.match(await alice.line(), /^OK msg_id:/);
    await bob.send("SUB topic:orders sub_id:d durable:billing\r\n");
    assert.equal(await bob.line(), "OK");
    await bob.quiet(200);
    await alice.send("SUB topic:orders sub_id:d durable:billing\r\n");
    assert.equal(await alice.line(), "OK", "alice's durable is not in use by bob");
    const [m] = await alice.msgs(1);
    assert.equal(new TextDecoder().decode(m.payload), "for alice's billing");
  } finally {
    await alice.close();
    await bob.close();
    await b.stop();
    await Deno.remove(path);
  }
});

Deno.test("review: a broken key file's error names the file, never the private key in it", async () => {
  // Before: the JSON.parse message was passed on, and V8 quotes the text
  // around the mistake: the private key went into the error (and the CLI's stderr).
  const pair = await generateKeyPair();
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(
      path,
      `{"type":"ed25519","public_key":"${pair.public_key}","private_key":${pair.private_key}}`,
    );
    await assert.rejects(loadKeyFile(denoRuntime, path), (e: Error) => {
      assert.ok(!e.message.includes(pair.private_key.slice(0, 8)), e.message);
      assert.match(e.message, /key file .* is not JSON/);
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
});
