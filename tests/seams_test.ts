/**
 * Architectural seams: runtime APIs only in src/runtime/, and every folder
 * imports another subsystem only through its mod.ts.
 */
import assert from "node:assert/strict";

function* files(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* files(p);
    else if (p.endsWith(".ts")) yield p;
  }
}

Deno.test("seams: Deno.* and Bun.* appear only in src/runtime/", () => {
  const offenders: string[] = [];
  for (const f of files("src")) {
    if (f.startsWith("src/runtime/")) continue;
    Deno.readTextFileSync(f).split("\n").forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "");
      if (/\b(Deno|Bun)\.[a-zA-Z]/.test(code) && !/^\s*\*/.test(line)) {
        offenders.push(`${f}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(offenders, []);
});

Deno.test("seams: subsystems import each other only through mod.ts", () => {
  const offenders: string[] = [];
  for (const f of files("src")) {
    const own = f.split("/")[1];
    for (const m of Deno.readTextFileSync(f).matchAll(/from\s+"(\.\.\/[^"]+)"/g)) {
      const parts = m[1].split("/");
      // "../<subsystem>/<file>.ts": another subsystem, must be its mod.ts (limits and types are shared leaves).
      if (
        parts.length === 3 && parts[1] !== own &&
        !["mod.ts", "limits.ts", "types.ts"].includes(parts[2])
      ) {
        offenders.push(`${f}: ${m[1]}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});
