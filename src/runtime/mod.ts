/**
 * Picks the adapter for the runtime we are on. Callers get a `Runtime` and
 * never branch on which one it is.
 *
 * @module
 */
import type { Runtime } from "./types.ts";

export type { Conn, HttpServer, Listener, Runtime } from "./types.ts";
export { type Clock, sleep, systemClock, type Timer } from "./clock.ts";

/** Loads the adapter for the current runtime (Bun or Deno). */
export async function loadRuntime(): Promise<Runtime> {
  // deno-lint-ignore no-explicit-any
  if (typeof (globalThis as any).Bun !== "undefined") {
    return (await import("./bun.ts")).bunRuntime;
  }
  return (await import("./deno.ts")).denoRuntime;
}
