/**
 * Checks of the Bun adapter's TLS, run under Bun by tests/tls_bun_test.ts
 * (`bun tests/bun_tls_check.ts <certs dir>`): mTLS with `Bun.listen` and the
 * `node:tls` dialler, the peer subject, refused client certificates reported
 * and never accepted, silent sockets bounded in number and time, and a whole
 * broker with the SDK as its client over mTLS. One JSON
 * line per check, then `{"done": true}`; every wait is bounded.
 */
import { readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { startBroker } from "../src/app.ts";
import { connect } from "../src/client/mod.ts";
import { loadConfig } from "../src/config/mod.ts";
import { bunRuntime as rt } from "../src/runtime/bun.ts";
import type { Conn, Listener, ListenTls } from "../src/runtime/types.ts";

const dir = rt.args()[0];
const pem = (f: string) => readFileSync(`${dir}/${f}`, "utf8");

function report(name: string, ok: boolean, detail = ""): void {
  console.log(JSON.stringify({ name, ok, detail }));
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function listen(ca: boolean, extra: Partial<ListenTls> = {}) {
  const failures: string[] = [];
  const listener = rt.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: pem("server.pem"),
      key: pem("server.key"),
      ca: ca ? pem("ca.pem") : undefined,
      handshakeTimeoutMs: 5000,
      handshakesPendingMax: 100,
      onHandshakeFailure: (_a, reason) => failures.push(reason),
      ...extra,
    },
  });
  return { failures, listener };
}

async function firstLine(conn: Conn): Promise<string> {
  const reader = conn.readable.getReader();
  const { value } = await within(reader.read(), 3000, "read");
  reader.releaseLock();
  return new TextDecoder().decode(value);
}

async function mtlsRoundTrip(): Promise<void> {
  const { failures, listener: l } = listen(true);
  const listener: Listener = await l;
  try {
    const accepted = listener.accept();
    const client = await rt.connect({
      hostname: "127.0.0.1",
      port: listener.port,
      tls: { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client.key") },
    });
    const server = (await within(accepted, 3000, "accept"))!;
    await client.write(new TextEncoder().encode("ping"));
    const got = await firstLine(server);
    await server.write(new TextEncoder().encode("pong"));
    const back = await firstLine(client);
    const ok = got === "ping" && back === "pong" && server.secure === true &&
      server.peerCertSubject === "CN=alice,O=Acme" && failures.length === 0;
    report("mTLS round trip and peer subject", ok, `${got} ${back} ${server.peerCertSubject}`);
    client.close();
    server.close();
  } finally {
    listener.close();
  }
}

async function refusedClients(): Promise<void> {
  const { failures, listener: l } = listen(true);
  const listener = await l;
  let accepted = 0;
  void (async () => {
    while (await listener.accept()) accepted++;
  })();
  try {
    for (const cert of ["client-wrong.pem", "client-expired.pem", undefined]) {
      const c = await rt.connect({
        hostname: "127.0.0.1",
        port: listener.port,
        tls: {
          ca: pem("ca.pem"),
          cert: cert && pem(cert),
          key: cert && pem("client.key"),
        },
      }).catch(() => undefined);
      c?.close();
    }
    await until(() => failures.length === 3, 3000, "three failures");
    report(
      "wrong CA, expired, no certificate: reported, never accepted",
      accepted === 0,
      failures.join(","),
    );
  } finally {
    listener.close();
  }
}

async function silentSockets(): Promise<void> {
  const { failures, listener: l } = listen(false, {
    handshakeTimeoutMs: 300,
    handshakesPendingMax: 2,
  });
  const listener = await l;
  const socks: Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const s = netConnect({ host: "127.0.0.1", port: listener.port });
      s.on("error", () => {});
      socks.push(s);
      await new Promise((r) => s.once("connect", r));
    }
    await until(() => failures.length === 3, 3000, "three failures");
    const ok = failures[0] === "too many handshakes in progress" &&
      failures.slice(1).every((f) => f === "handshake timed out");
    report("silent sockets: bounded in number and time", ok, failures.join(","));
  } finally {
    for (const s of socks) s.destroy();
    listener.close();
  }
}

/** A whole broker under Bun with mTLS (`startBroker`), and the SDK under Bun as its client. */
async function brokerAndSdk(): Promise<void> {
  const { config } = loadConfig({
    args: ["--host", "127.0.0.1", "--port", "0", "--no-http", "--memory"].concat(
      [
        "--tls-cert",
        `${dir}/server.pem`,
        "--tls-key",
        `${dir}/server.key`,
        "--tls-ca",
        `${dir}/ca.pem`,
      ],
    ),
    env: () => undefined,
    readFile: (p) => readFileSync(p, "utf8"),
  });
  const running = await startBroker(rt, config);
  const tls = { ca: `${dir}/ca.pem`, cert: `${dir}/client.pem`, key: `${dir}/client.key` };
  const address = `127.0.0.1:${running.server.port}`;
  const sub = await connect(address, { runtime: rt, tls, reconnect: false });
  const pub = await connect(`tls://${address}`, { runtime: rt, tls, reconnect: false });
  try {
    const s = await sub.subscribe("topic:bun.tls", { ack: "none" });
    await pub.publish("topic:bun.tls", "over bun mtls");
    const it = s[Symbol.asyncIterator]();
    const { value } = await within(it.next(), 3000, "delivery");
    const body = new TextDecoder().decode(value!.body);
    const refused = await connect(address, { runtime: rt, tls: { ca: tls.ca }, reconnect: false })
      .then((c) => c.close().then(() => false), () => true);
    report("broker and SDK under Bun over mTLS", body === "over bun mtls" && refused, body);
  } finally {
    await pub.close();
    await sub.close();
    await running.stop();
  }
}

for (const check of [mtlsRoundTrip, refusedClients, silentSockets, brokerAndSdk]) {
  try {
    await check();
  } catch (e) {
    report(check.name, false, String(e));
  }
}
console.log(JSON.stringify({ done: true }));
rt.exit(0);
