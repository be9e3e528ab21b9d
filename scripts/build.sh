#!/usr/bin/env bash
# Builds dist/relayr: one executable holding the Bun runtime and Relayr, with
# no other files needed at run time. Works offline: `bun build --compile`
# embeds the Bun that runs it (a --target for another platform would download
# one). `deno task compile` is the Deno-runtime alternative and needs network.
#
#   scripts/build.sh [outfile]      # default dist/relayr
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-dist/relayr}"
if ! command -v bun >/dev/null 2>&1; then
  echo "build.sh: bun is not on PATH (install it with: npm install -g bun@1.4.4)" >&2
  exit 1
fi
# The npm dependencies (package.json) must be in node_modules for bun to bundle them.
missing_deps() {
  bun -e 'const fs = require("fs"); const deps = require("./package.json").dependencies ?? {};
    process.exit(Object.keys(deps).every((d) => fs.existsSync(`node_modules/${d}`)) ? 1 : 0)'
}
if missing_deps; then
  if command -v deno >/dev/null 2>&1; then deno install; else bun install --no-save; fi
fi
mkdir -p "$(dirname "$out")"
# --minify-syntax/whitespace shrink the bundle but keep names; --sourcemap keeps
# stack traces pointing at src/ lines.
bun build --compile --sourcemap --minify-syntax --minify-whitespace main.ts --outfile "$out"
"$out" --version
