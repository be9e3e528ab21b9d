/**
 * The WebSocket transport under Bun, run by tests/ws_bun_test.ts (`bun
 * tests/ws_bun_check.ts`): a broker in this process on the Bun adapter
 * (`Bun.serve` with `server.upgrade`), Bun's own `WebSocket` and the client
 * SDK over `ws://` against it. Prints one JSON line per check (`{name, ok,
 * detail}`), then `{"done":true}`. Every wait is bounded; the script exits by itself.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { startBroker } from "../src/app.ts";
import { connect, type Message } from "../src/client/mod.ts";
import { loadConfig } from "../src/config/config.ts";
import { bunRuntime } from "../src/runtime/bun.ts";

const checks: { name: string; ok: boolean; detail: string }[] = [];

async function check(name: string, fn: () => Promise<string>): Promise<void> {
  try {
    checks.push({ name, ok: true, detail: await within(fn(), 10_000, name) });
  } catch (err) {
    checks.push({ name, ok: false, detail: String((err as Error)?.stack ?? err) });
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

/** A WebSocket that collects what it receives as text. */
async function open(url: string, headers?: Record<string, string>) {
  const ws = new (WebSocket as unknown as new (u: string, o?: unknown) => WebSocket)(
    url,
    headers ? { headers } : undefined,
  );
  ws.binaryType = "arraybuffer";
  let text = "";
  let closeCode = 0;
  ws.onmessage = (e) => text += new TextDecoder().decode(new Uint8Array(e.data));
  const closed = new Promise<void>((r) =>
    ws.onclose = (e) => {
      closeCode = e.code;
      r();
    }
  );
  const opened = await new Promise<boolean>((r) => {
    ws.onopen = () => r(true);
    ws.onerror = () => r(false);
  });
  return {
    ws,
    opened,
    closed,
    text: () => text,
    closeCode: () => closeCode,
    async until(re: RegExp): Promise<string> {
      for (let i = 0; i < 500 && !re.test(text); i++) await new Promise((r) => setTimeout(r, 10));
      expect(re.test(text), `no ${re} in ${JSON.stringify(text)}`);
      return text;
    },
  };
}

const { config } = loadConfig({
  args: [
    ...["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--memory", "--no-grpc"],
    ...["--max-payload", "1024"],
  ],
  env: () => undefined,
  readFile: () => "",
});
const broker = await startBroker(bunRuntime, config);
const url = `ws://127.0.0.1:${broker.http!.port}/ws`;

await check("a frame split across messages, many frames in one", async () => {
  const c = await open(url);
  expect(c.opened, "the WebSocket opened");
  c.ws.send("SUB topic:t sub_id:s\r\nPI");
  c.ws.send(new TextEncoder().encode("NG\r\nPUB topic:t 5\r\nhe"));
  c.ws.send("llo\r\nPING\r\n");
  const text = await c.until(/MSG[^]*PONG\r\n$/);
  expect(
    /^OK\r\nPONG\r\nMSG topic:t sub_id:s msg_id:\d+ 5\r\nhello\r\nOK msg_id:\d+\r\nPONG\r\n$/.test(
      text,
    ),
    text,
  );
  c.ws.close();
  await c.closed;
  return text.length + " bytes";
});

await check("an oversize payload: ERR PAYLOAD_TOO_LARGE and close, as on TCP", async () => {
  const c = await open(url);
  c.ws.send(`PUB queue:q 2000\r\n${"y".repeat(2000)}\r\n`);
  await c.closed;
  expect(/^ERR PAYLOAD_TOO_LARGE /.test(c.text()), c.text());
  const last = broker.server.closedStats(1)[0];
  expect(last.reason === "PAYLOAD_TOO_LARGE", last.reason);
  return c.text().trim();
});

await check("a message over the WebSocket limit: close 1009", async () => {
  const c = await open(url);
  c.ws.send(new Uint8Array(1024 * 1024 + 1));
  await c.closed;
  expect(c.closeCode() === 1009, `close code ${c.closeCode()}`);
  return "1009";
});

await check("a foreign Origin is refused", async () => {
  const c = await open(url, { Origin: "http://evil.example" });
  expect(!c.opened, "the WebSocket opened");
  const ok = await open(url, { Origin: `http://127.0.0.1:${broker.http!.port}` });
  expect(ok.opened, "same origin refused");
  ok.ws.close();
  await ok.closed;
  return "refused";
});

await check(
  "messages kept in a queue keep their bytes (Bun's buffers are not reused)",
  async () => {
    const c = await open(url);
    for (let i = 0; i < 50; i++) {
      c.ws.send(
        `PUB queue:keep 8\r\nmsg-${String(i).padStart(4, "0")}\r\n`,
      );
    }
    await c.until(/(OK msg_id:\d+\r\n){50}$/);
    c.ws.close();
    await c.closed;
    const client = await connect(url, { reconnect: false });
    const sub = await client.subscribe("queue:keep");
    const got: string[] = [];
    for await (const m of sub as AsyncIterable<Message>) {
      got.push(m.text());
      await m.ack();
      if (got.length === 50) break;
    }
    await client.close();
    const want = Array.from({ length: 50 }, (_, i) => `msg-${String(i).padStart(4, "0")}`);
    expect(JSON.stringify(got) === JSON.stringify(want), got.join(","));
    return "50 intact";
  },
);

await check("the client SDK over ws:// exchanges with a TCP client", async () => {
  const ws = await connect(url, { reconnect: false });
  const tcp = await connect(`127.0.0.1:${broker.server.port}`, { reconnect: false });
  const sub = await ws.subscribe("topic:x");
  await tcp.publish("topic:x", "over tcp", { headers: { A: "1" }, correlationId: "k" });
  let seen = "";
  for await (const m of sub as AsyncIterable<Message>) {
    seen = `${m.text()} ${m.headers.A} ${m.correlationId}`;
    break;
  }
  await ws.close();
  await tcp.close();
  expect(seen === "over tcp 1 k", seen);
  return seen;
});

// argv: [bun, script, serverCert, serverKey, ca] (made with openssl by tests/ws_bun_test.ts).
const [serverCert, serverKey, caPath] = process.argv.slice(2);
await check("wss:// on --ws-port with the TLS certificate", async () => {
  const { config: tlsConfig } = loadConfig({
    args: [
      ...["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--memory", "--no-grpc"],
      ...["--tls-cert", serverCert, "--tls-key", serverKey, "--ws-port", "0"],
    ],
    env: () => undefined,
    readFile: (p) => readFileSync(p, "utf8"),
  });
  const b = await startBroker(bunRuntime, tlsConfig);
  try {
    const ca = readFileSync(caPath, "utf8");
    const ws = new (WebSocket as unknown as new (u: string, o: unknown) => WebSocket)(
      `wss://127.0.0.1:${b.ws!.port}/`,
      { tls: { ca } },
    );
    ws.binaryType = "arraybuffer";
    const got = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send("PING\r\n");
      ws.onmessage = (e) => resolve(new TextDecoder().decode(new Uint8Array(e.data)));
      ws.onerror = () => reject(new Error("the wss:// handshake failed"));
    });
    ws.close();
    expect(got === "PONG\r\n", JSON.stringify(got));
    return "PONG over wss";
  } finally {
    await b.stop();
  }
});

await broker.stop();
for (const c of checks) console.log(JSON.stringify(c));
console.log(JSON.stringify({ done: true }));
process.exit(0);
