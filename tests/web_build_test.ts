/**
 * The committed browser bundles are what `deno task build:web` makes from
 * web/ now: a rebuild gives the same bytes (so nobody ships a page older
 * than its sources), and every bundle is wired into the assets index.
 */
import assert from "node:assert/strict";
import { ASSETS_MOD, build, ENTRIES, exportName } from "../scripts/build_web.ts";
import { bunVersion } from "./child.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const bun = await bunVersion();
if (bun === undefined) console.log("web_build_test: skipped, bun is not on PATH (it bundles)");

Deno.test(
  { name: "web build: rebuilding gives the committed bytes", ignore: bun === undefined },
  async () => {
    const files = await build();
    assert.equal(files.size, ENTRIES.length + 1);
    for (const [path, text] of files) {
      const committed = await Deno.readTextFile(`${ROOT}${path}`);
      assert.ok(committed === text, `${path} is stale: run deno task build:web and commit it`);
    }
    const index = files.get(ASSETS_MOD)!;
    for (const e of ENTRIES) assert.match(index, new RegExp(`export \\{ ${exportName(e.out)} \\}`));
  },
);
