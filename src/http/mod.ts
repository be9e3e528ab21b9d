/**
 * HTTP monitoring: health and readiness probes, Prometheus metrics and a JSON
 * stats API, on their own port. The handler is a pure `(Request) => Response`
 * that serialises what `server.stats()` and `broker.stats()` return;
 * `startMonitoring` puts it on a port through the runtime.
 *
 * @module
 */
import type { Runtime, TlsFiles } from "../runtime/mod.ts";
import type { GrpcStats } from "../grpc/mod.ts";
import type { Server } from "../server/mod.ts";
import { createHandler } from "./handler.ts";
import { StatsStream } from "./stream.ts";

export { createHandler, type Handler } from "./handler.ts";
export { renderMetrics } from "./metrics.ts";
export { type StatsDelta, StatsStream } from "./stream.ts";
export { authorize } from "./admin.ts";
export { Exposition, EXPOSITION_CONTENT_TYPE } from "./exposition.ts";

/** The monitoring server. */
export interface Monitoring {
  /** The bound HTTP port. */
  readonly port: number;
  /** Stops serving. */
  close(): Promise<void>;
  /**
   * HTTPS: serves `files` from now on. Neither `Deno.serve` nor `Bun.serve`
   * can swap a certificate (Bun's `reload({ tls })` keeps the old one, 1.4.4),
   * so the server is closed (in-flight requests finish) and started again on
   * its port; a scrape in that instant is refused. Throws when it cannot.
   */
  reloadTls(files: TlsFiles): Promise<void>;
}

/** Starts the monitoring endpoints of `server` (and of the gRPC listener, if any) on `hostname:port` (HTTPS with `tls`). */
export function startMonitoring(
  runtime: Runtime,
  options: { hostname: string; port: number; tls?: TlsFiles },
  server: Server,
  grpc?: () => GrpcStats,
): Monitoring {
  const stream = new StatsStream(server);
  const handler = createHandler(server, grpc, stream);
  let http = runtime.serveHttp(options, handler);
  const port = http.port;
  let tls = options.tls;
  let closed: Promise<void> | undefined;
  return {
    port,
    close() {
      stream.close();
      return closed ??= http.close();
    },
    async reloadTls(files) {
      if (closed !== undefined || tls === undefined) return;
      stream.close(); // the server waits for open responses; the console reconnects
      await http.close();
      try {
        http = runtime.serveHttp({ ...options, port, tls: files }, handler);
      } catch (e) {
        http = runtime.serveHttp({ ...options, port, tls }, handler); // the old files again
        throw e;
      }
      tls = files;
    },
  };
}
