/**
 * The HTTP ports' start-up: the monitoring port (`--http-port`: admin API,
 * metrics, console, and `/ws`) and the WebSocket listener of `--ws-port`,
 * with the WebSocket settings they share.
 *
 * @module
 */
import type { ClusterNode } from "../cluster/mod.ts";
import { type Config, ConfigError } from "../config/mod.ts";
import type { GrpcFront } from "../grpc/mod.ts";
import {
  type Monitoring,
  parseAllowedOrigins,
  startMonitoring,
  startWebSocketListener,
  type WebSocketOptions,
  wsMessageBytesMax,
} from "../http/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import type { Server } from "../server/mod.ts";
import { listenFailed } from "./listen_error.ts";

/**
 * The WebSocket settings, or undefined with `--no-ws`; the origins are checked
 * before anything listens, so a typo is a config error, not a refused page.
 */
export function webSocketOptions(
  config: Config,
  onConn: WebSocketOptions["onConn"],
): WebSocketOptions | undefined {
  if (config["no-ws"]) return undefined;
  let allowedOrigins: string[];
  try {
    allowedOrigins = parseAllowedOrigins(config["ws-allowed-origins"]);
  } catch (e) {
    throw new ConfigError(`--ws-allowed-origins: ${(e as Error).message}`);
  }
  return {
    allowedOrigins,
    messageBytesMax: wsMessageBytesMax(config["max-payload"]),
    onConn,
  };
}

/** What the monitoring port serves besides the TCP server's figures. */
export interface HttpParts {
  grpc: GrpcFront | undefined;
  webSocket: WebSocketOptions | undefined;
  cluster: ClusterNode | undefined;
}

/**
 * Starts the monitoring port, or nothing with `--no-http`. Throws
 * `ConfigError` when it cannot be bound.
 */
export function startHttp(
  runtime: Runtime,
  config: Config,
  server: Server,
  parts: HttpParts,
): Monitoring | undefined {
  if (config["no-http"]) return undefined;
  const { grpc, webSocket } = parts;
  const hostname = config["http-host"] ?? config.host;
  try {
    return startMonitoring(
      runtime,
      { hostname, port: config["http-port"], tls: config.tls?.http ? config.tls : undefined },
      server,
      grpc && (() => grpc.stats()),
      plainRefused(webSocket, config.tls !== undefined && !config.tls.http),
      parts.cluster,
    );
  } catch (e) {
    throw listenFailed(e, "--http-port", hostname, config["http-port"]);
  }
}

/**
 * Starts the WebSocket listener of `--ws-port`, or nothing without it or with
 * `--no-ws`. A protocol listener: under `--tls` it is wss:// with the same
 * certificate. Throws `ConfigError` when it cannot be bound.
 */
export function startWs(
  runtime: Runtime,
  config: Config,
  webSocket: WebSocketOptions | undefined,
): Monitoring | undefined {
  const port = config["ws-port"];
  if (webSocket === undefined || port === undefined) return undefined;
  try {
    return startWebSocketListener(
      runtime,
      { hostname: config.host, port, tls: config.tls },
      webSocket,
    );
  } catch (e) {
    throw listenFailed(e, "--ws-port", config.host, port);
  }
}

/**
 * The WebSocket settings of a plain-HTTP port while TLS is on: refused, as
 * every plain connection is then (the protocol never goes in clear text).
 */
function plainRefused(
  ws: WebSocketOptions | undefined,
  plain: boolean,
): WebSocketOptions | undefined {
  if (ws === undefined || !plain) return ws;
  return {
    ...ws,
    refusal: "TLS is on: WebSockets go over wss:// (--http-tls, or --ws-port)",
  };
}
