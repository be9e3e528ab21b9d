/**
 * TLS and authentication together, in process on Deno: a certificate user
 * of the users file is matched by the subject of the verified client
 * certificate (`Conn.peerCertSubject`), a CONNECT naming another user with
 * that certificate is refused, and a token works over TLS.
 */
import assert from "node:assert/strict";
import { connect } from "../src/client/mod.ts";
import { AuthFailedError } from "../src/client/errors.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { certSubject } from "../src/runtime/mod.ts";
import { makeCerts, serverTlsArgs } from "../bench/tls_certs.ts";
import { startTestBroker } from "./helpers.ts";

const certs = await makeCerts();
globalThis.addEventListener("unload", () => certs.remove());
const TOKEN = "tls-auth-token-5c1d";
const CLIENT = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };

/** An SDK client over mTLS with the test CA's client certificate (or `cert`). */
function dialTls(port: number, o: { user?: string; cert?: string; token?: string }) {
  return connect(`127.0.0.1:${port}`, {
    runtime: denoRuntime,
    reconnect: false,
    connectTimeoutMs: 5000,
    tls: { ...CLIENT, cert: o.cert ?? CLIENT.cert },
    user: o.user,
    token: o.token,
  });
}

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
  const dial = (user?: string) => dialTls(broker.port, { user });
  try {
    for (const user of [undefined, "alice"]) {
      const c = await dial(user);
      assert.match(await c.publish("topic:public.news", "hi"), /^\d+$/, `user ${user}`);
      await c.close();
    }
    await assert.rejects(dial("mallory"), "the certificate is alice's, not mallory's");
    const token = await dialTls(broker.port, { token: TOKEN });
    assert.match(await token.publish("topic:secret", "by token"), /^\d+$/);
    await token.close();
  } finally {
    await broker.stop();
    await Deno.remove(users);
  }
});

/** A client certificate with `subj`, signed by the test CA (the client key is reused). */
async function clientCertWith(subj: string, name: string): Promise<string> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command("openssl", { args, cwd: certs.dir, stderr: "piped" })
      .output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
  };
  await run(["req", "-new", "-key", certs.clientKey, "-out", `${name}.csr`, "-subj", subj]);
  await run(["x509", "-req", "-in", `${name}.csr`, "-CA", certs.ca, "-CAkey", certs.caKey]
    .concat(["-out", `${name}.pem`, "-days", "2", "-extfile", "ext.cnf", "-extensions", "client"]));
  return `${certs.dir}/${name}.pem`;
}

Deno.test("tls auth: a CA-signed certificate whose CN is 'alice,O=Acme' is not alice's (CN=alice, O=Acme)", async () => {
  // Before: Deno's X509Certificate.subject does not escape, so this CN read
  // as "CN=alice,O=Acme", alice's subject, and its holder logged in as alice.
  const forged = await clientCertWith("/CN=alice,O=Acme", "forged");
  assert.equal(certSubject(await Deno.readTextFile(forged)), "CN=alice\\,O=Acme");
  assert.equal(certSubject(await Deno.readTextFile(certs.clientCert)), "CN=alice,O=Acme");
  const users = await usersFile();
  const broker = await startTestBroker([...serverTlsArgs(certs, true), "--users", users]);
  try {
    for (const user of [undefined, "alice"]) {
      await assert.rejects(dialTls(broker.port, { user, cert: forged }), AuthFailedError, user);
    }
    const alice = await dialTls(broker.port, {});
    assert.match(await alice.publish("topic:public.news", "hi"), /^\d+$/);
    await alice.close();
  } finally {
    await broker.stop();
    await Deno.remove(users);
  }
});
