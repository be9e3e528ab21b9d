/**
 * HTTP monitoring: health and readiness probes, Prometheus metrics and a JSON
 * stats API, on their own port. The handler is a pure `(Request) => Response`
 * that serialises what `server.stats()` and `broker.stats()` return;
 * `startMonitoring` puts it on a port through the runtime.
 *
 * @module
 */
import type { Runtime, TlsFiles } from "../runtime/mod.ts";
import type { Server } from "../server/mod.ts";
import { createHandler } from "./handler.ts";

export { createHandler, type Handler } from "./handler.ts";
export { renderMetrics } from "./metrics.ts";
export { Exposition, EXPOSITION_CONTENT_TYPE } from "./exposition.ts";

/** The monitoring server. */
export interface Monitoring {
  /** The bound HTTP port. */
  readonly port: number;
  /** Stops serving. */
  close(): Promise<void>;
}

/** Starts the monitoring endpoints of `server` on `hostname:port` (HTTPS with `tls`). */
export function startMonitoring(
  runtime: Runtime,
  options: { hostname: string; port: number; tls?: TlsFiles },
  server: Server,
): Monitoring {
  const http = runtime.serveHttp(options, createHandler(server));
  let closed: Promise<void> | undefined;
  return {
    port: http.port,
    close() {
      return closed ??= http.close();
    },
  };
}
