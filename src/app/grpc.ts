/**
 * The gRPC port's start-up: whether it is served, and the listener itself,
 * loaded only when served.
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import { type Config, ConfigError, GRPC_PORT } from "../config/mod.ts";
import type { GrpcFront } from "../grpc/mod.ts";
import { logger } from "../log/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import type { Server } from "../server/mod.ts";
import { listenFailed } from "./listen_error.ts";

/**
 * The gRPC port to serve, or undefined for none. On by default (9093) on Bun,
 * the runtime of the shipped binary; on Deno only when `--grpc-port` is given:
 * Deno 2.9's node:http2 can abort the whole process when a client closes a
 * connection in some ways (denoland/deno#36788, not catchable from
 * JavaScript), and a port any client can use to kill the broker must not be
 * open by default (docs/GRPC.md).
 */
export function grpcPortOf(config: Config, runtime: Pick<Runtime, "name">): number | undefined {
  if (config["no-grpc"]) return undefined;
  return config["grpc-port"] ?? (runtime.name === "bun" ? GRPC_PORT : undefined);
}

/** Refuses gRPC over TLS on Deno, before anything binds. */
export function checkGrpcTls(
  grpcPort: number | undefined,
  config: Config,
  runtime: Pick<Runtime, "name">,
): void {
  if (grpcPort !== undefined && config.tls !== undefined && runtime.name === "deno") {
    // Measured: under Deno 2.9.6, grpc-js's secure server answers a TLS
    // client in plaintext when no --tls-ca is given. Refusing beats a gRPC
    // port that looks encrypted and is not.
    throw new ConfigError(
      "gRPC over TLS needs the Bun runtime (Deno's node:http2 serves it in plaintext): " +
        "run the Bun binary, or add --no-grpc",
    );
  }
}

/**
 * Starts the gRPC listener on `port`, a front end of `broker` beside the TCP
 * `server` (its authenticator, counters and certificate). Throws
 * `ConfigError` when the port cannot be bound, the listener stopped.
 */
export async function startGrpc(
  broker: Broker,
  server: Server,
  config: Config,
  port: number,
): Promise<GrpcFront> {
  const log = logger("server");
  // Loaded only when served: grpc-js and proto-loader cost the CLI
  // commands and `--no-grpc` brokers ~150 ms of start-up otherwise (measured).
  const { GrpcFront } = await import("../grpc/mod.ts");
  const grpc = new GrpcFront(broker, {
    hostname: config.host,
    port,
    payloadBytesMax: config["max-payload"],
    pingIntervalMs: config["ping-interval"],
    auth: server.auth,
    authz: server.authz,
    tls: config.tls,
    routing: server.routing,
    serverStats: () => server.serverStats(),
    log: (level, message, props) => log[level === "warn" ? "warn" : level](message, props ?? {}),
  });
  try {
    await grpc.start();
  } catch (e) {
    await grpc.shutdown();
    throw listenFailed(e, "--grpc-port", config.host, port);
  }
  return grpc;
}
