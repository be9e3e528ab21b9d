/**
 * The browser client: its whole import graph is free of runtime code, and
 * `/client.js` is served with its content type and cache validators. (That
 * the committed bundles are what the sources build to is
 * tests/web_build_test.ts.)
 */
import assert from "node:assert/strict";
import { createHandler } from "../src/http/mod.ts";
import { startTestBroker } from "./helpers.ts";

/** Every import of a file that stays at run time (type-only ones are erased), relative ones resolved to a path. */
function importsOf(path: string): string[] {
  const src = Deno.readTextFileSync(path).split("\n").filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l))
    .join("\n").replace(/\b(?:import|export)\s+type\b[^;]*;/g, "");
  const dir = path.slice(0, path.lastIndexOf("/"));
  const out: string[] = [];
  for (const m of src.matchAll(/\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith(".")) {
      out.push(spec);
      continue;
    }
    out.push(new URL(spec, `file://${Deno.cwd()}/${dir}/`).pathname.slice(Deno.cwd().length + 1));
  }
  return out;
}

/** npm packages the client may use in a browser: each ships a browser build (bun picks it). */
const BROWSER_PACKAGES: readonly string[] = ["msgpackr"];

Deno.test("the browser client's import graph has no node:, Deno or Bun, and only browser packages", () => {
  const seen = new Set<string>();
  const todo = ["src/client/web.ts"];
  const bad: string[] = [];
  for (let i = 0; i < 1000 && todo.length > 0; i++) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const text = Deno.readTextFileSync(f);
    if (/^\s*[^*/\s].*\b(Deno|Bun)\.[a-zA-Z]/m.test(text)) bad.push(`${f}: uses Deno. or Bun.`);
    for (const spec of importsOf(f)) {
      if (spec.startsWith("src/")) todo.push(spec);
      else if (!BROWSER_PACKAGES.includes(spec)) bad.push(`${f}: imports ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
  assert.ok(
    seen.has("src/websocket/conn.ts") && seen.has("src/client/client.ts"),
    [...seen].join(),
  );
  assert.ok(!seen.has("src/runtime/mod.ts") && !seen.has("src/config/config.ts"));
});

Deno.test("/client.js: an ES module with a validator; 304 when the copy is current", async () => {
  const b = await startTestBroker();
  try {
    const h = createHandler(b.server);
    const res = await h(new Request("http://relayr.test/client.js"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const etag = res.headers.get("etag")!;
    assert.match(etag, /^"[0-9a-f]{16}-\d+"$/);
    const js = await res.text();
    assert.match(js, /export\s*\{[^}]*\bconnect\b/, "exports connect");
    assert.doesNotMatch(js, /["']node:[a-z_]+["']/, "no node: module in the browser bundle");
    const again = await h(
      new Request("http://relayr.test/client.js", { headers: { "if-none-match": etag } }),
    );
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
    const head = await h(new Request("http://relayr.test/client.js", { method: "HEAD" }));
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  } finally {
    await b.stop();
  }
});
