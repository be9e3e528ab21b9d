/**
 * The runtime seam, the only place that touches the platform: picks the
 * adapter for the runtime we are on (callers get a `Runtime` and never branch
 * on which one it is), and offers the file access of the durable store and
 * the clock. Other folders import this file only.
 *
 * @module
 */
import type { Runtime } from "./types.ts";

export type {
  Conn,
  DialTls,
  HttpHandler,
  HttpServeOptions,
  HttpServer,
  Listener,
  ListenTls,
  MemoryUsage,
  Runtime,
  TlsFiles,
  WebSocketUpgrade,
} from "./types.ts";
export { certSubject, checkTlsFiles, type TlsProblem } from "./tls_files.ts";
export { checkLinkCert } from "./link_cert.ts";
export { type Clock, sleep, systemClock, type Timer } from "./clock.ts";
export { type FileSystem, nodeFileSystem } from "./fs.ts";
export { hmacSha256, scrypt, type ScryptParams, sha256, timingSafeEqual } from "./crypto.ts";
export { fileModeBits, writeSecretFile } from "./secret_file.ts";
export { listenUdp, type UdpListener } from "./udp.ts";
export { bufferView, copyBytes, copyRange } from "./buffer.ts";
export { readChunk } from "./read_chunk.ts";

/** Loads the adapter for the current runtime (Bun or Deno). */
export async function loadRuntime(): Promise<Runtime> {
  // deno-lint-ignore no-explicit-any
  if (typeof (globalThis as any).Bun !== "undefined") {
    return (await import("./bun.ts")).bunRuntime;
  }
  return (await import("./deno.ts")).denoRuntime;
}
