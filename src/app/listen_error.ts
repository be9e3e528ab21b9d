/**
 * A listener that could not bind, as the one start-up line it becomes.
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";

/**
 * A listener that could not bind, as one line naming the setting. The
 * runtimes say it differently (Deno: `AddrInUse`/`PermissionDenied` error
 * names; Bun and Node: `EADDRINUSE`/`EACCES` codes); both are read here.
 */
export function listenFailed(e: unknown, flag: string, host: string, port: number): ConfigError {
  const err = e as { name?: string; code?: string; message?: string };
  const why = err.name === "AddrInUse" || err.code === "EADDRINUSE"
    ? "the address is in use (is another broker running? choose another port)"
    : err.name === "PermissionDenied" || err.code === "EACCES"
    ? "permission denied (ports below 1024 need privileges)"
    : err.name === "AddrNotAvailable" || err.code === "EADDRNOTAVAIL"
    ? "no such local address"
    : String(err.message ?? e).split("\n")[0];
  return new ConfigError(`cannot listen on ${host}:${port} (${flag}): ${why}`);
}
