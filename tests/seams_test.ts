/**
 * Architectural seams, checked on the source text of src/:
 *
 * - runtime APIs only in src/runtime/: no `Deno.*` or `Bun.*` elsewhere, and
 *   no `node:` module elsewhere except `node:util` (its `parseArgs` is a pure
 *   function, the same on Deno and Bun) in the command-line folders src/cli/
 *   and src/config/; the client SDK and the pure parser import none;
 * - a folder is entered only through its mod.ts: a file outside a folder
 *   imports no other file of it, at any depth (src/storage/log/format.ts is
 *   storage's inside, even for src/broker/), while the top-level files of src/
 *   (app.ts, assert.ts, version.ts) are importable from anywhere, and so is
 *   src/config/limits.ts: a leaf of constants that the browser client
 *   (src/client/web.ts) can take without config.ts's `node:util`,
 *   src/config/json_error.ts, a leaf function the client and parser share,
 *   and src/runtime/read_chunk.ts, the one way every reader of a `Conn` takes
 *   its next chunk, a leaf with no platform access that the browser client's
 *   wire takes without runtime/mod.ts (which reaches `node:crypto`).
 *
 * Each failure lists `file:line` and what to import instead.
 */
import assert from "node:assert/strict";

/**
 * npm packages are bare imports (`@grpc/grpc-js`), not `node:` modules, and
 * are not checked here: a library may use `node:` inside itself (grpc-js
 * runs on `node:http2`), and both runtimes provide it. What stays ours is
 * the seam: src/grpc/ is the only folder that imports grpc-js, and the one
 * platform object it needs from us (a Node `Buffer` view) comes from
 * src/runtime/buffer.ts, so no `node:` import appears outside src/runtime/.
 */

/** `node:` modules allowed outside src/runtime/, and where. */
const NODE_OUTSIDE_RUNTIME: Readonly<Record<string, readonly string[]>> = {
  "node:util": ["src/cli/", "src/config/"],
};

function* files(dir: string): Generator<string> {
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* files(p);
    else if (p.endsWith(".ts")) yield p;
  }
}

/**
 * The source with comments blanked (newlines kept, so offsets keep their
 * line): JSDoc examples (`* import ... from "../client/mod.ts"`) and prose
 * that names `Deno.serve` are not code.
 */
function code(text: string): string {
  return text.split("\n").map((line) => {
    if (/^\s*(\*|\/\*|\/\/)/.test(line)) return "";
    // A trailing `// ...` after code; a `//` inside a string ("http://...") stays.
    let quote = "";
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quote !== "") {
        if (c === "\\") i++;
        else if (c === quote) quote = "";
      } else if (c === '"' || c === "'" || c === "`") quote = c;
      else if (c === "/" && line[i + 1] === "/") return line.slice(0, i);
    }
    return line;
  }).join("\n");
}

interface Import {
  file: string;
  line: number;
  specifier: string;
}

/** Every static, dynamic, re-export and side-effect import of relative and `node:` modules. */
function imports(file: string): Import[] {
  const src = code(Deno.readTextFileSync(file));
  const out: Import[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']*|node:[^"']*)["']/g;
  for (const m of src.matchAll(re)) {
    const line = src.slice(0, m.index).split("\n").length;
    out.push({ file, line, specifier: m[1] });
  }
  return out;
}

/** `a/b/../c/./d.ts` to `a/c/d.ts`. */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== "." && p !== "") parts.push(p);
  }
  return parts.join("/");
}

function dirOf(path: string): string[] {
  return path.split("/").slice(0, -1);
}

/** Files any folder may import directly (see the module comment). */
const OPEN_LEAVES: readonly string[] = [
  "src/config/limits.ts",
  "src/config/json_error.ts",
  "src/runtime/read_chunk.ts",
];

/** The mod.ts that `target` must be reached through from `file`, or undefined when `target` is fine. */
function faceFor(file: string, target: string): string | undefined {
  if (OPEN_LEAVES.includes(target)) return undefined;
  const from = dirOf(file);
  const to = dirOf(target);
  let k = 0;
  while (k < from.length && k < to.length && from[k] === to[k]) k++;
  // `target` is in `file`'s folder or one around it: no folder is entered.
  if (k === to.length) return undefined;
  const face = `${to.slice(0, k + 1).join("/")}/mod.ts`;
  return target === face ? undefined : face;
}

/** Fails listing every offender as `file:line`. */
function check(rule: string, found: { key: string; text: string }[]): void {
  assert(
    found.length === 0,
    `${rule}: ${found.length} offender(s):\n${found.map((o) => `  ${o.text}`).join("\n")}`,
  );
}

const allImports = [...files("src")].flatMap(imports);

Deno.test("seams: Deno.* and Bun.* appear only in src/runtime/", () => {
  const found: { key: string; text: string }[] = [];
  for (const f of files("src")) {
    if (f.startsWith("src/runtime/")) continue;
    code(Deno.readTextFileSync(f)).split("\n").forEach((line, i) => {
      if (/\b(Deno|Bun)\s*(\.|\[)\s*["'a-zA-Z]/.test(line)) {
        found.push({ key: `${f}: ${line.trim()}`, text: `${f}:${i + 1}: ${line.trim()}` });
      }
    });
  }
  check(
    "runtime APIs outside src/runtime/ (move the call behind a src/runtime/ interface)",
    found,
  );
});

Deno.test("seams: node: modules only in src/runtime/ (node:util's parseArgs also in src/cli/ and src/config/)", () => {
  const found = allImports
    .filter((i) => i.specifier.startsWith("node:") && !i.file.startsWith("src/runtime/"))
    .filter((i) => !(NODE_OUTSIDE_RUNTIME[i.specifier] ?? []).some((d) => i.file.startsWith(d)))
    .map((i) => ({
      key: `${i.file}: ${i.specifier}`,
      text: `${i.file}:${i.line}: "${i.specifier}" (platform access belongs in src/runtime/)`,
    }));
  check("node: imports outside src/runtime/", found);
});

Deno.test("seams: a folder's files are imported from outside it only through its mod.ts", () => {
  const found: { key: string; text: string }[] = [];
  for (const i of allImports) {
    if (i.specifier.startsWith("node:")) continue;
    const target = normalize(`${dirOf(i.file).join("/")}/${i.specifier}`);
    if (!target.startsWith("src/")) continue;
    const face = faceFor(i.file, target);
    if (face === undefined) continue;
    found.push({
      key: `${i.file}: ${i.specifier}`,
      text: `${i.file}:${i.line}: "${i.specifier}" reaches into ${
        face.slice(0, -"mod.ts".length)
      }: import ${face}`,
    });
  }
  check("imports past a folder's mod.ts", found);
});

Deno.test("seams: the checks see imports at any depth", () => {
  // The old check looked only at `../<folder>/<file>.ts`; these must all be caught or allowed as stated.
  assert.equal(faceFor("src/storage/log/log_store.ts", "src/runtime/fs.ts"), "src/runtime/mod.ts");
  assert.equal(faceFor("src/broker/broker.ts", "src/storage/log/mod.ts"), "src/storage/mod.ts");
  assert.equal(faceFor("src/app.ts", "src/config/config.ts"), "src/config/mod.ts");
  assert.equal(
    faceFor("src/storage/memory.ts", "src/storage/log/format.ts"),
    "src/storage/log/mod.ts",
  );
  assert.equal(faceFor("src/storage/log/queue_log.ts", "src/storage/memory.ts"), undefined);
  assert.equal(faceFor("src/storage/log/queue_log.ts", "src/assert.ts"), undefined);
  assert.equal(faceFor("src/broker/broker.ts", "src/config/mod.ts"), undefined);
  assert.equal(faceFor("src/client/wire.ts", "src/config/limits.ts"), undefined);
  assert.equal(normalize("src/storage/log/../../runtime/./fs.ts"), "src/runtime/fs.ts");
  const text =
    'import {\n  a,\n} from "../../runtime/fs.ts";\nconst m = await import("./bun.ts");\n' +
    '// import { x } from "../nope.ts";\nexport * from "./y.ts"; // from "../z.ts"\n' +
    'import "node:fs";\nconst url = "http://x"; // import("./w.ts")\n';
  const tmp = Deno.makeTempFileSync({ suffix: ".ts" });
  try {
    Deno.writeTextFileSync(tmp, text);
    assert.deepEqual(
      imports(tmp).map((i) => `${i.line} ${i.specifier}`),
      ["3 ../../runtime/fs.ts", "4 ./bun.ts", "6 ./y.ts", "7 node:fs"],
    );
  } finally {
    Deno.removeSync(tmp);
  }
});

Deno.test("seams: an open leaf imports nothing (else its imports would be open too)", () => {
  const found = allImports.filter((i) => OPEN_LEAVES.includes(i.file)).map((i) => ({
    key: `${i.file}: ${i.specifier}`,
    text: `${i.file}:${i.line}: "${i.specifier}"`,
  }));
  check("imports in an open leaf", found);
});
