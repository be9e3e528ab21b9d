/**
 * TLS and authentication together, in process on Deno: a certificate user
 * of the users file is matched by the subject of the verified client
 * certificate (`Conn.peerCertSubject`), a CONNECT naming another user with
 * that certificate is refused, and a token works over TLS.
 */
import assert from "node:assert/strict";
import { connect } from "../src/client/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";
import { startTestBroker } from "./helpers.ts";

const certs = await makeCerts();
globalThis.addEventListener("unload", () => certs.remove());
const TOKEN = "tls-auth-token-5c1d";
const CLIENT = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };

async function usersFile(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "relayr-tls-users-", suffix: ".json" });
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      users: [{ user: "alice", cert_subject: "CN=alice,O=Acme" }],
    }),
  );
  return path;
}

Deno.test("tls auth: the client certificate's subject names the user; another name is refused", async () => {
  const users = await usersFile();
  const broker = await startTestBroker([
    ...serverTlsArgs(certs, true),
    "--users",
    users,
    "--auth-token",
    TOKEN,
  ]);
  const dial = (user?: string) =>
    connect(`127.0.0.1:${broker.port}`, {
      runtime: denoRuntime,
      reconnect: false,
      connectTimeoutMs: 5000,
      tls: CLIENT,
      user,
    });
  try {
    for (const user of [undefined, "alice"]) {
      const c = await dial(user);
      assert.match(await c.publish("topic:public.news", "hi"), /^\d+$/, `user ${user}`);
      await c.close();
    }
    await assert.rejects(dial("mallory"), "the certificate is alice's, not mallory's");
    const token = await connect(`127.0.0.1:${broker.port}`, {
      runtime: denoRuntime,
      reconnect: false,
      tls: CLIENT,
      token: TOKEN,
    });
    assert.match(await token.publish("topic:secret", "by token"), /^\d+$/);
    await token.close();
  } finally {
    await broker.stop();
    await Deno.remove(users);
  }
});
