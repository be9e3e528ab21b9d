/**
 * Writing a secret to a file: created with mode 0600 (owner only) and never
 * over an existing file (a key file is not overwritten by a second
 * `relayr keygen`). `node:fs` serves Deno and Bun alike.
 *
 * @module
 */
import { statSync, writeFileSync } from "node:fs";

/** Creates `path` with `text`, mode 0600; throws if it exists. */
export function writeSecretFile(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600, flag: "wx" });
}

/** The permission bits of `path` (`0o600`, say); undefined when it cannot be read (Windows has none). */
export function fileModeBits(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
}
