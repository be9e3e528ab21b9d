/**
 * The WebSocket transport over real sockets, without a browser: the protocol
 * runs unchanged over `/ws` and `--ws-port` (frames split across messages,
 * many frames per message, text and binary messages), with the same errors and
 * close reasons as TCP (each bad input is sent over both and the answers
 * compared), the origin check, `--no-ws`, back-pressure reaching the
 * slow-consumer logic, authentication, and a TCP <-> WebSocket exchange with
 * every message field.
 */
import assert from "node:assert/strict";
import { type Running, startBroker } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { keyFileText } from "../src/auth/mod.ts";
import { AuthFailedError, connect } from "../src/client/mod.ts";
import { makeUsers, SECRETS, writeUsers } from "./auth/fixtures.ts";
import { take } from "./client_helpers.ts";
import { RawClient, startTestBroker, waitFor } from "./helpers.ts";
import {
  clientFrame,
  closeCode,
  rawHandshake,
  readServerFrame,
  text,
  writeAll,
} from "./ws_helpers.ts";

type WsBroker = Running & { port: number; httpPort: number; url: string };

/** A broker with HTTP (and so `/ws`) on free ports. */
async function startWsBroker(args: string[] = []): Promise<WsBroker> {
  const { config } = loadConfig({
    args: [
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--http-port",
      "0",
      "--memory",
      "--no-grpc",
      ...args,
    ],
    env: () => undefined,
    readFile: () => {
      throw new Error("no config file in tests");
    },
  });
  const running = await startBroker(denoRuntime, config);
  const httpPort = running.http?.port ?? 0;
  return Object.assign(running, {
    port: running.server.port,
    httpPort,
    url: `ws://127.0.0.1:${httpPort}/ws`,
  });
}

/**
 * Every line until PONG or the server closes (at most `max`), message ids
 * blanked, for comparing TCP with WebSocket.
 */
async function linesUntilClose(c: RawClient, max = 20): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < max; i++) {
    try {
      const line = (await c.line(3000)).replace(/msg_id:\d+/g, "msg_id:N");
      out.push(line);
      if (line === "PONG") return out;
    } catch (e) {
      const m = (e as Error).message;
      if (m === "connection closed by the server" || m.startsWith("WebSocket closed")) return out;
      throw e;
    }
  }
  throw new Error(`more than ${max} lines: ${out.join(" | ")}`);
}

Deno.test("ws: a frame split across WebSocket messages, and many frames in one", async () => {
  const b = await startWsBroker();
  const ws = await RawClient.webSocket(b.url);
  try {
    await ws.send("SUB topic:t sub_id:s\r\nPI");
    await ws.send("NG\r\nPUB topic:t 5\r\nhe");
    await ws.send("l");
    await ws.send("lo\r");
    await ws.send("\nPUB topic:t 0\r\n\r\nPING\r\nPING\r\nPING\r\n");
    assert.equal(await ws.line(), "OK");
    assert.equal(await ws.line(), "PONG");
    const m1 = await ws.frame();
    assert.match(m1.line, /^MSG topic:t sub_id:s msg_id:\d+ 5$/);
    assert.equal(new TextDecoder().decode(m1.payload), "hello");
    assert.match(await ws.line(), /^OK msg_id:\d+$/);
    const m2 = await ws.frame();
    assert.equal(m2.payload?.length, 0);
    assert.match(await ws.line(), /^OK msg_id:\d+$/);
    for (let i = 0; i < 3; i++) assert.equal(await ws.line(), "PONG");
    const stats = b.server.connectionStats({ offset: 0, limit: 10, subs: false }).list;
    assert.equal(stats.length, 1);
    assert.equal(stats[0].in_msgs, 2);
  } finally {
    await ws.close();
    await b.stop();
  }
});

Deno.test("ws: text and binary messages are both the protocol; output of a tick is one message", async () => {
  const b = await startWsBroker();
  const ws = new WebSocket(b.url);
  ws.binaryType = "arraybuffer";
  const got: (string | ArrayBuffer)[] = [];
  const four = Promise.withResolvers<void>();
  let oks = 0;
  ws.onmessage = (e) => {
    got.push(e.data);
    oks += new TextDecoder().decode(new Uint8Array(e.data)).split("OK msg_id:").length - 1;
    if (oks === 4) four.resolve();
  };
  const closed = new Promise((r) => ws.onclose = r);
  try {
    await new Promise((r) => ws.onopen = r);
    ws.send("PUB topic:x 1\r\n1\r\n"); // text
    ws.send(new TextEncoder().encode("PUB topic:x 1\r\n2\r\n")); // binary
    ws.send("PUB topic:x 1\r\n3\r\nPUB topic:x 1\r\n4\r\n"); // two replies, one tick
    await four.promise;
    const texts = got.map((d) => new TextDecoder().decode(new Uint8Array(d as ArrayBuffer)));
    assert.ok(got.every((d) => d instanceof ArrayBuffer), "the broker sends binary messages");
    assert.match(texts.at(-1)!, /^OK msg_id:\d+\r\nOK msg_id:\d+\r\n$/, "one message per tick");
    assert.equal(texts.join("").split("OK msg_id:").length - 1, 4);
  } finally {
    ws.close();
    await closed;
    await b.stop();
  }
});

/**
 * Sends `input` then a PING (which ends the answer of input that does not
 * close the connection) over a fresh TCP and a fresh WebSocket connection, and
 * asserts the same lines come back (message ids and INFO nonces blanked).
 */
async function sameOverBoth(b: WsBroker, input: string): Promise<void> {
  const tcp = await RawClient.connect(b.port);
  const ws = await RawClient.webSocket(b.url);
  try {
    await tcp.send(input + "PING\r\n");
    await ws.send(input + "PING\r\n");
    const norm = (lines: string[]) => lines.map((l) => l.startsWith("INFO ") ? "INFO" : l);
    const overTcp = norm(await linesUntilClose(tcp).catch((e) => [`(${e.message})`]));
    const overWs = norm(await linesUntilClose(ws).catch((e) => [`(${e.message})`]));
    assert.ok(overTcp.length > 0, JSON.stringify(input));
    assert.deepEqual(overWs, overTcp, JSON.stringify(input));
  } finally {
    await tcp.close();
    await ws.close();
  }
}

/** Bad input, each sent alone on a fresh connection. */
const BAD = [
  "FOO bar\r\n",
  "PUB queue:q abc\r\nxyz\r\n",
  "PUB queue:q 3\r\nabcXY",
  "PUB nope:q 1\r\nx\r\nPING\r\n",
  `PUB queue:q 1\r\n${"x"}\r\n${"SUB " + "t".repeat(5000)}\r\n`,
  "PUB queue:q 2000\r\n" + "y".repeat(2000) + "\r\n",
  'CONNECT {"version":"2.0"}\r\nPING\r\n',
  "ACK msg_id:12\r\nNACK msg_id:1\r\nUNSUB nope\r\nPING\r\n",
];

Deno.test("ws: bad frames and oversize payloads get the same ERR and close as over TCP", async () => {
  const b = await startWsBroker(["--max-payload", "1024"]);
  try {
    for (const input of BAD) await sameOverBoth(b, input);
    // Fatal framing errors closed both with the same reasons.
    await waitFor(() => b.server.connections.size === 0, 5000, "every connection closed");
    const reasons = b.server.closedStats(100).map((c) => c.reason);
    for (const r of ["PAYLOAD_TOO_LARGE", "BAD_FRAME", "CONTROL_LINE_TOO_LONG"]) {
      assert.equal(reasons.filter((x) => x === r).length % 2, 0, `${r} as often on both`);
      assert.ok(reasons.includes(r as never), r);
    }
  } finally {
    await b.stop();
  }
});

Deno.test("ws: a message over the WebSocket message limit closes with 1009 and a read error", async () => {
  const b = await startWsBroker(["--max-payload", "1024"]);
  const raw = await rawHandshake(b.httpPort);
  try {
    assert.equal(raw.status, 101, raw.head);
    await writeAll(raw.conn, clientFrame(2, new Uint8Array(1024 * 1024 + 1)));
    const f = await readServerFrame(raw.conn);
    assert.equal(f.opcode, 8, "a close frame");
    assert.equal(closeCode(f.payload), 1009);
    await waitFor(() => b.server.closedStats(1).length === 1, 5000, "the close is recorded");
    const closed = b.server.closedStats(1)[0];
    assert.equal(closed.reason, "READ_ERROR");
    assert.match(closed.detail, /WebSocket message of 1048577 bytes is over the limit of 1048576/);
  } finally {
    raw.conn.close();
    await b.stop();
  }
});

Deno.test("ws: origins: same origin and no Origin pass, a foreign one gets 403 unless listed", async () => {
  const b = await startWsBroker();
  const listed = await startWsBroker([
    "--ws-allowed-origins",
    "https://app.example.com, http://localhost:3000",
  ]);
  const any = await startWsBroker(["--ws-allowed-origins", "*"]);
  const cases: [WsBroker, Record<string, string>, number][] = [
    [b, {}, 101],
    [b, { Origin: `http://127.0.0.1:${b.httpPort}` }, 101],
    [b, { Origin: "http://evil.example" }, 403],
    [b, { Origin: `http://127.0.0.1:${b.httpPort + 1}` }, 403],
    [b, { Origin: "null" }, 403],
    [b, { Origin: "not a url" }, 403],
    [listed, { Origin: "https://app.example.com" }, 101],
    [listed, { Origin: "HTTPS://APP.example.com:443" }, 101],
    [listed, { Origin: "http://app.example.com" }, 403],
    [listed, { Origin: `http://127.0.0.1:${listed.httpPort}` }, 101],
    [any, { Origin: "http://evil.example" }, 101],
  ];
  try {
    for (const [broker, headers, want] of cases) {
      const raw = await rawHandshake(broker.httpPort, "/ws", headers);
      try {
        assert.equal(raw.status, want, `${JSON.stringify(headers)}: ${raw.head}`);
        if (want === 101) {
          await writeAll(raw.conn, clientFrame(1, "PING\r\n"));
          assert.equal(text((await readServerFrame(raw.conn)).payload), "PONG\r\n");
        }
      } finally {
        raw.conn.close();
      }
    }
    const plain = await fetch(`http://127.0.0.1:${b.httpPort}/ws`);
    assert.equal(plain.status, 426, "GET /ws without Upgrade");
    await plain.body?.cancel();
  } finally {
    await b.stop();
    await listed.stop();
    await any.stop();
  }
});

Deno.test("ws: a bad --ws-allowed-origins is a config error", async () => {
  await assert.rejects(
    () => startWsBroker(["--ws-allowed-origins", "https://ok.example,ftp//nope"]),
    /--ws-allowed-origins: "ftp\/\/nope" is not an origin/,
  );
});

Deno.test("ws: --ws-port serves the protocol on its own port; --no-ws turns both off", async () => {
  const b = await startWsBroker(["--ws-port", "0"]);
  const off = await startWsBroker(["--ws-port", "0", "--no-ws"]);
  try {
    assert.ok(b.ws !== undefined && b.ws.port > 0);
    const ws = await RawClient.webSocket(`ws://127.0.0.1:${b.ws.port}/any/path`);
    await ws.send("PING\r\n");
    assert.equal(await ws.line(), "PONG");
    await ws.close();
    const alone = await startWsBroker(["--no-http", "--ws-port", "0"]);
    try {
      const c = await RawClient.webSocket(`ws://127.0.0.1:${alone.ws!.port}/`);
      await c.send("PING\r\n");
      assert.equal(await c.line(), "PONG", "--ws-port without the HTTP port");
      await c.close();
    } finally {
      await alone.stop();
    }
    assert.equal(off.ws, undefined, "no WebSocket listener");
    const raw = await rawHandshake(off.httpPort);
    assert.equal(raw.status, 404, raw.head);
    raw.conn.close();
  } finally {
    await b.stop();
    await off.stop();
  }
});

Deno.test("ws: a subscriber that stops reading backs up its socket and is closed as a slow consumer", async () => {
  const b = await startWsBroker(["--sub-pending-bytes", "65536"]);
  const raw = await rawHandshake(b.httpPort);
  const pub = await RawClient.connect(b.port);
  try {
    assert.equal(raw.status, 101);
    await writeAll(raw.conn, clientFrame(2, "SUB topic:flood\r\nPING\r\n"));
    await waitFor(() => b.broker.topics.get("topic:flood") !== undefined, 5000, "the SUB");
    // 48 MiB while the subscriber reads nothing: only if the WebSocket's writes
    // wait for its buffer does the broker see a subscriber falling behind.
    const body = "z".repeat(4096);
    const chunk = `PUB topic:flood 4096\r\n${body}\r\n`.repeat(256);
    await pub.send('CONNECT {"verbose":false}\r\n');
    for (let i = 0; i < 48 && b.server.closedByReason.SLOW_CONSUMER === 0; i++) {
      await pub.send(chunk);
    }
    await waitFor(
      () => b.server.closedByReason.SLOW_CONSUMER === 1,
      10_000,
      "the stalled WebSocket is closed as a slow consumer",
    );
    await pub.send("PING\r\n");
    assert.equal(await pub.line(5000), "PONG", "the publisher goes on");
  } finally {
    raw.conn.close();
    await pub.close();
    await b.stop();
  }
});

/** Publishes with every option over `from`, receives over `to`; returns the MSG as seen. */
async function exchange(from: RawClient, to: RawClient, dest: string) {
  const headers = "Trace: abc\r\nX-Uni: h\u00e9llo\r\n\r\n";
  const hdr = new TextEncoder().encode(headers).length;
  const body = new Uint8Array([...new TextEncoder().encode(headers), 0, 1, 2, 255, 13, 10, 65]);
  const opts = `priority:7 ttl:60000 correlation_id:c-1 reply_to:queue:replies ` +
    `content_type:application/octet-stream hdr:${hdr}`;
  await from.pub(dest, body, opts);
  assert.match(await from.line(), /^OK msg_id:\d+$/);
  const [m] = await to.msgs(1);
  assert.deepEqual([...m.payload!], [...body]);
  return m;
}

Deno.test("ws: TCP and WebSocket clients exchange messages with every field, both ways", async () => {
  const b = await startWsBroker();
  const tcp = await RawClient.connect(b.port);
  const ws = await RawClient.webSocket(b.url);
  try {
    await tcp.send("SUB queue:to-tcp sub_id:a\r\n");
    await ws.send("SUB queue:to-ws sub_id:a\r\n");
    assert.equal(await tcp.line(), "OK");
    assert.equal(await ws.line(), "OK");
    const toTcp = await exchange(ws, tcp, "queue:to-tcp");
    const toWs = await exchange(tcp, ws, "queue:to-ws");
    const fields = (f: Record<string, string>) => {
      const { msg_id: _id, dest: _d, ...rest } = f;
      return rest;
    };
    assert.deepEqual(fields(toWs.fields!), fields(toTcp.fields!));
    const hdr = String(new TextEncoder().encode("Trace: abc\r\nX-Uni: h\u00e9llo\r\n\r\n").length);
    for (const [k, v] of Object.entries({ priority: "7", correlation_id: "c-1", hdr })) {
      assert.equal(toWs.fields![k], v, k);
    }
    assert.equal(toWs.fields!.reply_to, "queue:replies");
    assert.equal(toWs.fields!.content_type, "application/octet-stream");
    assert.ok(Number(toWs.fields!.ttl) > 0);
    // Acks over the WebSocket settle as over TCP.
    await ws.send(`ACK msg_id:${toWs.fields!.msg_id}\r\n`);
    await tcp.send(`ACK msg_id:${toTcp.fields!.msg_id}\r\n`);
    assert.equal(await ws.line(), "OK");
    assert.equal(await tcp.line(), "OK");
    const conns = b.server.connectionStats({ offset: 0, limit: 10, subs: false }).list;
    assert.deepEqual(conns.map((c) => c.transport), ["tcp", "ws"], "/api/stats tells them apart");
  } finally {
    await tcp.close();
    await ws.close();
    await b.stop();
  }
});

Deno.test("ws: a graceful stop sends ERR SHUTTING_DOWN over the WebSocket, then closes it", async () => {
  const b = await startWsBroker();
  const ws = await RawClient.webSocket(b.url);
  try {
    await ws.send("PING\r\n");
    assert.equal(await ws.line(), "PONG");
    const stopping = b.stop();
    assert.match(await ws.line(), /^ERR SHUTTING_DOWN /);
    assert.ok(await ws.closedByServer(), "closed after the ERR");
    await stopping;
    assert.equal(b.server.closedStats(1)[0].reason, "SERVER_SHUTDOWN");
  } finally {
    await ws.close();
    await b.stop();
  }
});

Deno.test("ws: a broken handshake is a 400, not a server error", async () => {
  const b = await startWsBroker();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: b.httpPort });
    const req = `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(req));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    conn.close();
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 400/);
  } finally {
    await b.stop();
  }
});

Deno.test("ws: authentication is the TCP one: the same answers before, after and for a bad CONNECT", async () => {
  const b = await startWsBroker(["--auth-token", "ws-s3cret"]);
  const inputs = [
    "SUB topic:x\r\nPUB queue:q 1\r\nx\r\n",
    'CONNECT {"auth_token":"ws-s3cret"}\r\nSUB topic:x\r\n',
    'CONNECT {"auth_token":"wrong"}\r\nSUB topic:x\r\n',
  ];
  try {
    for (const input of inputs) await sameOverBoth(b, input);
    const ok = await connect(b.url, { reconnect: false, token: "ws-s3cret" });
    const sub = await ok.subscribe("topic:auth");
    await ok.publish("topic:auth", "in");
    const [m] = await take(sub, 1);
    assert.equal(m.text(), "in");
    await ok.close();
    await assert.rejects(
      () => connect(b.url, { reconnect: false, token: "wrong" }),
      AuthFailedError,
    );
  } finally {
    await b.stop();
  }
});

Deno.test("ws: with a large --max-payload, one message of 17 MiB is taken whole", async () => {
  const size = 17 * 1024 * 1024;
  const b = await startWsBroker(["--max-payload", String(20 * 1024 * 1024)]);
  const sub = await RawClient.connect(b.port);
  const ws = new WebSocket(b.url);
  const closed = new Promise((r) => ws.onclose = r);
  try {
    await sub.send("SUB topic:big sub_id:b\r\nPING\r\n");
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "PONG");
    await new Promise((r) => ws.onopen = r);
    const head = new TextEncoder().encode(`PUB topic:big ${size}\r\n`);
    const frame = new Uint8Array(head.length + size + 2);
    frame.set(head);
    frame.fill(7, head.length, head.length + size);
    frame.set([13, 10], head.length + size);
    ws.send(frame); // one message
    const [m] = await sub.msgs(1, 20_000);
    assert.equal(m.payload!.length, size);
    assert.ok(m.payload!.every((v) => v === 7));
  } finally {
    ws.close();
    await closed;
    await sub.close();
    await b.stop();
  }
});

Deno.test("ws: the client authenticates over ws:// with a password and with a key file", async () => {
  const { users, bob } = await makeUsers();
  const path = await writeUsers(users);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/bob.key`, keyFileText(bob));
  const b = await startWsBroker(["--users", path]);
  try {
    for (
      const opts of [
        { user: "alice", pass: SECRETS.alicePass },
        { keyFile: `${dir}/bob.key` },
      ]
    ) {
      const c = await connect(b.url, { reconnect: false, ...opts });
      try {
        const sub = await c.subscribe("topic:who");
        await c.publish("topic:who", "me");
        assert.equal((await take(sub, 1))[0].text(), "me");
        assert.equal(c.info?.auth_required, true);
      } finally {
        await c.close();
      }
    }
    const reasons = b.server.closedStats(10).map((x) => x.reason);
    assert.ok(reasons.every((r) => r === "CLIENT_CLOSED"), reasons.join());
  } finally {
    await b.stop();
    await Deno.remove(path);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("websocket: a --ws-port in use fails the start and leaves no listener open (gRPC included)", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const grpcPort = free.addr.port;
  free.close();
  try {
    await assert.rejects(
      startTestBroker(["--grpc-port", String(grpcPort), "--ws-port", String(busy.addr.port)]),
      (e: Error) => e.message.includes("in use"),
    );
  } finally {
    busy.close();
  }
  // The gRPC port is free again: the failed start closed its listener.
  const again = Deno.listen({ hostname: "127.0.0.1", port: grpcPort });
  again.close();
});
