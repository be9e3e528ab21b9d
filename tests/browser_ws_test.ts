/**
 * A real browser (headless Chromium, driven by playwright-core) against a
 * real broker: a page on its own origin imports `/client.js` from the broker,
 * connects over `/ws` (its origin listed in `--ws-allowed-origins`),
 * subscribes and publishes, and exchanges messages, with headers and options,
 * with a TCP client; the page logs no console error. A page on an origin not
 * listed is refused (403) and gets a `ConnectError`. Screenshots go to
 * test-output/. Skipped, saying so, when /usr/bin/chromium is missing.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { type Client, connect } from "../src/client/mod.ts";
import { startBroker } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { take } from "./client_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const OUTPUT = "test-output";
const haveChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
if (!haveChromium) console.log(`browser_ws_test: skipped, no Chromium at ${CHROMIUM}`);

/** The page: imports the client from the broker and talks to the TCP side. */
function page(brokerHttp: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>relayr ws test</title></head>
<body><h1>Relayr over WebSocket</h1><pre id="log"></pre>
<script type="module">
const log = (s) => { document.getElementById("log").textContent += s + "\\n"; };
window.outcome = (async () => {
  const { connect } = await import("${brokerHttp}/client.js");
  try {
    const client = await connect("${brokerHttp.replace("http:", "ws:")}/ws", { reconnect: false });
    log("connected to " + client.server);
    const sub = await client.subscribe("topic:to-browser");
    await client.publish("queue:from-browser", "ready", {
      headers: { "X-From": "browser" }, correlationId: "b-1", contentType: "text/plain",
    });
    log("published ready");
    const got = [];
    for await (const m of sub) {
      got.push({ text: m.text(), headers: m.headers, priority: m.priority, ttlMs: m.ttlMs,
        correlationId: m.correlationId, replyTo: m.replyTo, contentType: m.contentType,
        bytes: Array.from(m.body.slice(0, 4)) });
      log("got " + m.text());
      await client.publish(m.replyTo, "echo " + m.text(), { correlationId: m.correlationId });
      if (got.length === 3) break;
    }
    await client.close();
    log("closed");
    return { ok: true, got };
  } catch (e) {
    log("error " + e.name + ": " + e.message);
    return { ok: false, error: e.name + ": " + e.message };
  }
})();
</script></body></html>`;
}

/** Serves a page on its own origin (127.0.0.1, a free port); `html()` is read per request. */
function servePage(html: () => string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(html(), { headers: { "content-type": "text/html; charset=utf-8" } }),
  );
}

Deno.test({
  name: "browser: a page publishes and subscribes through /client.js and talks to a TCP client",
  ignore: !haveChromium,
  async fn() {
    // The pages first: the broker's allowed origins name one of them, and
    // the pages name the broker's port once it is known.
    let html = "";
    const allowed = servePage(() => html);
    const foreign = servePage(() => html);
    const allowedOrigin = `http://127.0.0.1:${allowed.addr.port}`;
    const { config } = loadConfig({
      args: [
        ...["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--memory", "--no-grpc"],
        ...["--ws-allowed-origins", allowedOrigin],
      ],
      env: () => undefined,
      readFile: () => "",
    });
    const broker = await startBroker(denoRuntime, config);
    html = page(`http://127.0.0.1:${broker.http!.port}`);
    const profile = await Deno.makeTempDir({ prefix: "relayr-chromium-" });
    await Deno.mkdir(OUTPUT, { recursive: true });
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    let tcp: Client | undefined;
    try {
      tcp = await connect(`127.0.0.1:${broker.server.port}`, { reconnect: false });
      const fromBrowser = await tcp.subscribe("queue:from-browser");
      const echoes = await tcp.subscribe("queue:echoes");

      const p = await context.newPage();
      const errors: string[] = [];
      p.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      p.on("pageerror", (e) => errors.push(String(e)));
      await p.goto(`${allowedOrigin}/`);

      const [ready] = await take(fromBrowser, 1);
      assert.equal(ready.text(), "ready");
      assert.deepEqual(ready.headers, { "X-From": "browser" });
      assert.equal(ready.correlationId, "b-1");
      assert.equal(ready.contentType, "text/plain");
      await ready.ack({ confirm: true });
      for (let i = 0; i < 3; i++) {
        await tcp.publish("topic:to-browser", new Uint8Array([0xf0, 0x9f, 0x91, 0x8b, 48 + i]), {
          headers: { "X-Seq": String(i) },
          priority: 3,
          ttlMs: 60_000,
          correlationId: `c-${i}`,
          replyTo: "queue:echoes",
          contentType: "application/octet-stream",
        });
      }
      const echoed = await take(echoes, 3);
      assert.deepEqual(echoed.map((m) => m.text()), [
        "echo \u{1f44b}0",
        "echo \u{1f44b}1",
        "echo \u{1f44b}2",
      ]);
      assert.deepEqual(echoed.map((m) => m.correlationId), ["c-0", "c-1", "c-2"]);
      for (const m of echoed) await m.ack();

      const outcome = await p.evaluate("window.outcome") as {
        ok: boolean;
        error?: string;
        got: Record<string, unknown>[];
      };
      assert.ok(outcome.ok, outcome.error);
      assert.equal(outcome.got.length, 3);
      assert.deepEqual(outcome.got[0], {
        text: "\u{1f44b}0",
        headers: { "X-Seq": "0" },
        priority: 3,
        ttlMs: 60_000,
        correlationId: "c-0",
        replyTo: "queue:echoes",
        contentType: "application/octet-stream",
        bytes: [0xf0, 0x9f, 0x91, 0x8b],
      });
      await p.screenshot({ path: `${OUTPUT}/browser_ws.png` });
      assert.deepEqual(errors, [], "no console errors");

      // A page on an origin not listed: the handshake is refused with 403.
      const q = await context.newPage();
      const foreignErrors: string[] = [];
      q.on("console", (m) => {
        if (m.type() === "error") foreignErrors.push(m.text());
      });
      await q.goto(`http://127.0.0.1:${foreign.addr.port}/`);
      const refused = await q.evaluate("window.outcome") as { ok: boolean; error?: string };
      assert.equal(refused.ok, false);
      assert.match(refused.error!, /^ConnectError: /);
      assert.ok(foreignErrors.some((e) => /403/.test(e)), foreignErrors.join("\n"));
      await q.screenshot({ path: `${OUTPUT}/browser_ws_refused.png` });
    } finally {
      await tcp?.close();
      await context.close();
      await allowed.shutdown();
      await foreign.shutdown();
      await broker.stop();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
