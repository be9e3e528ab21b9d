/**
 * The start-up lines of `relayr serve`: one per listener, saying where it
 * listens (tests and operators read the ports from them).
 *
 * @module
 */
import type { Running } from "../app.ts";
import type { Config } from "../config/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import { VERSION } from "../version.ts";

/** Logs where each listener of `running` listens, and whether authentication is on. */
export function logListening(
  log: Logger,
  runtime: Runtime,
  config: Config,
  running: Running,
): void {
  const tls = config.tls === undefined ? "" : config.tls.ca === undefined ? " (TLS)" : " (mTLS)";
  log.info(
    `relayr ${VERSION} (${runtime.name} ${runtime.version}) listening on ${config.host}:${running.server.port}${tls}`,
  );
  if (running.server.udp) {
    log.info(`UDP ingest on ${config.host}:${running.server.udp.port}`);
  }
  const auth = running.server.auth?.stats();
  if (auth !== undefined) {
    log.info(`authentication on: ${auth.users} users${config["auth-token"] ? " and a token" : ""}`);
  }
  if (running.grpc) {
    log.info(`gRPC (relayr.v1.Broker) on ${config.host}:${running.grpc.port}`);
    if (runtime.name === "deno") {
      log.warn(
        "gRPC on Deno: its node:http2 can abort the process on some client GOAWAYs " +
          "(denoland/deno#36788); the Bun binary is the runtime for gRPC (docs/GRPC.md)",
      );
    }
  }
  if (running.http) {
    const scheme = config.tls?.http ? "https" : "http";
    const at = `${config["http-host"] ?? config.host}:${running.http.port}`;
    const ws = config["no-ws"] || (config.tls !== undefined && !config.tls.http)
      ? ""
      : `, WebSocket on ${config.tls?.http ? "wss" : "ws"}://${at}/ws`;
    log.info(`monitoring on ${scheme}://${at}${ws}`);
  }
  if (running.ws) {
    log.info(`WebSocket on ${config.tls ? "wss" : "ws"}://${config.host}:${running.ws.port}`);
  }
}
