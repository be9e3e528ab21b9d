/**
 * HTTP monitoring: health and readiness probes, Prometheus metrics and a JSON
 * stats API, on their own port, with the WebSocket endpoint `/ws` and the
 * browser client `/client.js` beside them. The handler is a pure
 * `(Request) => Response` that serialises what `server.stats()` and
 * `broker.stats()` return; `startMonitoring` puts it on a port through the
 * runtime; `startWebSocketListener` serves WebSockets alone on a port.
 *
 * @module
 */
import type { ClusterNode } from "../cluster/mod.ts";
import type { HttpHandler, Runtime, TlsFiles } from "../runtime/mod.ts";
import type { GrpcStats } from "../grpc/mod.ts";
import type { Server } from "../server/mod.ts";
import { createHandler } from "./handler.ts";
import { StatsStream } from "./stream.ts";
import { upgradeRequest, type WebSocketOptions, WS_PATH } from "./websocket.ts";

export { createHandler, type Handler } from "./handler.ts";
export { renderMetrics } from "./metrics.ts";
export { type StatsDelta, StatsStream } from "./stream.ts";
export { authorize } from "./admin.ts";
export { Exposition, EXPOSITION_CONTENT_TYPE } from "./exposition.ts";
export {
  originAllowed,
  parseAllowedOrigins,
  type WebSocketOptions,
  WS_PATH,
  wsMessageBytesMax,
} from "./websocket.ts";

/** The monitoring server. */
export interface Monitoring {
  /** The bound HTTP port. */
  readonly port: number;
  /** Stops serving. */
  close(): Promise<void>;
  /**
   * HTTPS: serves `files` from now on. Neither runtime's HTTP server
   * can swap a certificate (Bun's `reload({ tls })` keeps the old one, 1.4.4),
   * so the server is closed (in-flight requests finish) and started again on
   * its port; a scrape in that instant is refused. Throws when it cannot.
   */
  reloadTls(files: TlsFiles): Promise<void>;
}

/**
 * Starts the monitoring endpoints of `server` (and of the gRPC listener, if
 * any) on `hostname:port` (HTTPS with `tls`), and with `webSocket` the
 * WebSocket endpoint `/ws` (`wss:` with `tls`); with `cluster`, `/api/cluster`.
 */
export function startMonitoring(
  runtime: Runtime,
  options: { hostname: string; port: number; tls?: TlsFiles },
  server: Server,
  grpc?: () => GrpcStats,
  webSocket?: WebSocketOptions,
  cluster?: ClusterNode,
): Monitoring {
  const stream = new StatsStream(server);
  const handler = createHandler(server, grpc, stream, cluster);
  return serveReloadable(
    runtime,
    options,
    webSocket,
    (request, upgrade, peer) =>
      webSocket !== undefined && new URL(request.url).pathname === WS_PATH
        ? upgradeRequest(request, upgrade, webSocket)
        : handler(request, peer),
    stream,
  );
}

/** Serves WebSockets alone on `hostname:port` (`--ws-port`; `wss:` with `tls`), at any path. */
export function startWebSocketListener(
  runtime: Runtime,
  options: { hostname: string; port: number; tls?: TlsFiles },
  webSocket: WebSocketOptions,
): Monitoring {
  return serveReloadable(
    runtime,
    options,
    webSocket,
    (request, upgrade) => upgradeRequest(request, upgrade, webSocket),
  );
}

/**
 * An HTTP server that closes once and, under HTTPS, takes new certificates;
 * `stream` (the console's live stats) is closed first both times, since the
 * server waits for open responses.
 */
function serveReloadable(
  runtime: Runtime,
  options: { hostname: string; port: number; tls?: TlsFiles },
  webSocket: WebSocketOptions | undefined,
  handler: HttpHandler,
  stream?: StatsStream,
): Monitoring {
  let http = runtime.serveHttp({ ...options, webSocket }, handler);
  const port = http.port;
  let tls = options.tls;
  let closed: Promise<void> | undefined;
  return {
    port,
    close() {
      stream?.close();
      return closed ??= http.close();
    },
    async reloadTls(files) {
      if (closed !== undefined || tls === undefined) return;
      stream?.close(); // the server waits for open responses; the console reconnects
      await http.close();
      try {
        http = runtime.serveHttp({ ...options, port, tls: files, webSocket }, handler);
      } catch (e) {
        http = runtime.serveHttp({ ...options, port, tls, webSocket }, handler); // the old files again
        throw e;
      }
      tls = files;
    },
  };
}
