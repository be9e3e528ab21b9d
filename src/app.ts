/**
 * Composition: builds the broker, store, server and monitoring from a
 * configuration, and runs the `relayr` command line. `main.ts` only picks the
 * runtime and calls `main`.
 *
 * @module
 */
import { authConfigFrom, Authenticator } from "./auth/mod.ts";
import { Broker } from "./broker/mod.ts";
import { type Cluster, type ClusterNode, joinCluster, splitHostPort } from "./cluster/mod.ts";
import {
  type Config,
  ConfigError,
  GRPC_PORT,
  loadConfig,
  readTls,
  serveHelp,
} from "./config/mod.ts";
import type { GrpcFront } from "./grpc/mod.ts";
import {
  type Monitoring,
  parseAllowedOrigins,
  startMonitoring,
  startWebSocketListener,
  type WebSocketOptions,
  wsMessageBytesMax,
} from "./http/mod.ts";
import { logger, setupLogging } from "./log/mod.ts";
import {
  checkTlsFiles,
  type Clock,
  nodeFileSystem,
  type Runtime,
  systemClock,
} from "./runtime/mod.ts";
import { Server } from "./server/mod.ts";
import { type FsyncPolicy, LogStore, MemoryStore, type Store } from "./storage/mod.ts";
import { VERSION } from "./version.ts";

/** A running broker. */
export interface Running {
  readonly server: Server;
  readonly broker: Broker;
  readonly store: Store;
  /** The gRPC listener; undefined with `--no-grpc`. */
  readonly grpc: GrpcFront | undefined;
  /** The HTTP monitoring server; undefined with `--no-http`. */
  readonly http: Monitoring | undefined;
  /** The WebSocket listener of `--ws-port`; undefined without it or with `--no-ws`. */
  readonly ws: Monitoring | undefined;
  /** This node's membership and leaderships; undefined without `--cluster-etcd`. */
  readonly cluster: ClusterNode | undefined;
  /** Graceful stop: stop accepting, flush, close, close the store. */
  stop(): Promise<void>;
  /**
   * SIGHUP: puts the users and token of a re-read configuration in force
   * without dropping connections. Throws `ConfigError` for a bad one (the
   * old stay in force).
   */
  reload(config: Config): void;
  /** Reads the TLS files again; new connections get them (SIGHUP). Throws `ConfigError`. */
  reloadTls(): Promise<void>;
}

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

/** Starts a broker with a resolved configuration (used by `serve` and by tests). */
export async function startBroker(runtime: Runtime, config: Config): Promise<Running> {
  const log = logger("server");
  // Read and checked before anything binds: a bad file is one line, exit 2.
  config.tls ??= readTls(config, tlsSources(runtime));
  const grpcPort = grpcPortOf(config, runtime);
  if (grpcPort !== undefined && config.tls !== undefined && runtime.name === "deno") {
    // Measured: under Deno 2.9.6, grpc-js's secure server answers a TLS
    // client in plaintext when no --tls-ca is given. Refusing beats a gRPC
    // port that looks encrypted and is not.
    throw new ConfigError(
      "gRPC over TLS needs the Bun runtime (Deno's node:http2 serves it in plaintext): " +
        "run the Bun binary, or add --no-grpc",
    );
  }
  // Checked before anything opens, so a bad origin list leaves nothing to close.
  const webSocket = webSocketOptions(config, (conn) => server.adopt(conn));
  const clock = systemClock; // one clock for the store, the broker and the server
  const authConfig = authConfigFrom(config, (p) => runtime.readTextFile(p));
  const auth = authConfig.token === undefined && authConfig.users === undefined
    ? undefined
    : new Authenticator(authConfig, clock);
  const store = openStore(config, clock);
  const broker = new Broker({
    store,
    clock,
    maxDeliveries: config["max-deliveries"],
    queueMessagesMax: config["queue-max-messages"],
    queueBytesMax: config["queue-max-bytes"],
    queueOverflow: config["queue-overflow"] as "reject" | "drop-oldest",
    slowConsumer: config["slow-consumer"] as "disconnect" | "drop-oldest" | "block",
    slowConsumerBlockMs: config["slow-consumer-block-ms"],
    subPendingMessagesMax: config["sub-pending-messages"],
    subPendingBytesMax: config["sub-pending-bytes"],
    ackTimeoutMs: config["ack-timeout"],
    prefetch: config["prefetch"],
  });
  if (store instanceof LogStore) logRecovery(store, broker, config);
  const server = new Server(runtime, broker, {
    hostname: config.host,
    port: config.port,
    payloadBytesMax: config["max-payload"],
    pingIntervalMs: config["ping-interval"],
    connectionsMax: config["max-connections"],
    version: VERSION,
    auth,
    authTimeoutMs: config["auth-timeout"],
    log: (level, message, props) => log[level === "warn" ? "warn" : level](message, props ?? {}),
    tls: config.tls,
  });
  // The cluster first (its link and etcd need no client port): a client's first
  // subscription is then already announced to the other nodes.
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster(runtime, config, broker);
  } catch (e) {
    await store.close();
    throw e;
  }
  try {
    await server.start();
  } catch (e) {
    await cluster?.stop();
    await store.close(); // the port is taken, say: release the data dir and its timers
    throw listenFailed(e, "--port", config.host, config.port);
  }
  const udpPort = config["udp-port"];
  if (udpPort !== undefined) {
    if (auth !== undefined && config["udp-token"] === undefined) {
      await server.shutdown();
      await cluster?.stop();
      await store.close();
      throw new ConfigError(
        "--udp-port with authentication on needs --udp-token (every datagram starts with AUTH <token>)",
      );
    }
    try {
      await server.startUdp({
        hostname: config.host,
        port: udpPort,
        token: auth === undefined ? undefined : config["udp-token"],
      });
    } catch (e) {
      await server.shutdown();
      await cluster?.stop();
      await store.close();
      throw listenFailed(e, "--udp-port", config.host, udpPort);
    }
  }
  let grpc: GrpcFront | undefined;
  if (grpcPort !== undefined) {
    // Loaded only when served: grpc-js and proto-loader cost the CLI
    // commands and `--no-grpc` brokers ~150 ms of start-up otherwise (measured).
    const { GrpcFront } = await import("./grpc/mod.ts");
    grpc = new GrpcFront(broker, {
      hostname: config.host,
      port: grpcPort,
      payloadBytesMax: config["max-payload"],
      pingIntervalMs: config["ping-interval"],
      auth: server.auth,
      authz: server.authz,
      tls: config.tls,
      serverStats: () => server.serverStats(),
      log: (level, message, props) => log[level === "warn" ? "warn" : level](message, props ?? {}),
    });
    try {
      await grpc.start();
    } catch (e) {
      await grpc.shutdown();
      await server.shutdown();
      await cluster?.stop();
      await store.close();
      throw listenFailed(e, "--grpc-port", config.host, grpcPort);
    }
  }
  let http: Monitoring | undefined;
  let ws: Monitoring | undefined;
  const httpHost = config["http-host"] ?? config.host;
  try {
    http = config["no-http"] ? undefined : startMonitoring(
      runtime,
      {
        hostname: httpHost,
        port: config["http-port"],
        tls: config.tls?.http ? config.tls : undefined,
      },
      server,
      grpc && (() => grpc.stats()),
      plainRefused(webSocket, config.tls !== undefined && !config.tls.http),
      cluster?.node,
    );
  } catch (e) {
    await grpc?.shutdown();
    await cluster?.stop();
    await server.shutdown();
    await store.close();
    throw listenFailed(e, "--http-port", httpHost, config["http-port"]);
  }
  const wsPort = config["ws-port"];
  try {
    ws = webSocket === undefined || wsPort === undefined ? undefined : startWebSocketListener(
      runtime,
      // A protocol listener: under --tls it is wss:// with the same certificate.
      { hostname: config.host, port: wsPort, tls: config.tls },
      webSocket,
    );
  } catch (e) {
    await server.shutdown();
    await http?.close();
    await cluster?.stop();
    await store.close();
    throw listenFailed(e, "--ws-port", config.host, wsPort ?? 0);
  }
  await Promise.resolve();
  let stopped: Promise<void> | undefined;
  return {
    server,
    broker,
    store,
    grpc,
    http,
    cluster: cluster?.node,
    reload(next) {
      const a = authConfigFrom(next, (p) => runtime.readTextFile(p));
      if ((a.token === undefined && a.users === undefined) !== (auth === undefined)) {
        throw new ConfigError("authentication cannot be turned on or off by a reload; restart");
      }
      if (auth === undefined) return;
      const { revoked, updated, review } = server.reloadAuth(a);
      if (review !== undefined) grpc?.review(review);
      log.info("reloaded {users} users: {revoked} connections revoked, {updated} updated", {
        users: a.users?.byName.size ?? 0,
        revoked,
        updated,
      });
    },

    ws,
    stop() {
      return stopped ??= (async () => {
        // /readyz turns 503 as the shutdown starts; the HTTP port closes after the clients.
        await grpc?.shutdown();
        await server.shutdown();
        await ws?.close();
        await cluster?.stop(); // revoking the lease hands the leaderships on at once
        await http?.close();
        await store.close();
      })();
    },
    async reloadTls() {
      const tls = readTls(config, tlsSources(runtime));
      if (tls === undefined) return;
      await server.reloadTls(tls);
      config.tls = tls;
      if (tls.http) await http?.reloadTls(tls);
      await ws?.reloadTls(tls);
    },
  };
}

/**
 * Joins the cluster with `--cluster-etcd` (docs/CLUSTERING.md): undefined
 * without it, so single-node mode does nothing more than before. The link
 * port taken, etcd unreachable or the node id taken is one line, exit 2.
 */
async function startCluster(
  runtime: Runtime,
  config: Config,
  broker: Broker,
): Promise<Cluster | undefined> {
  const listen = config["cluster-listen"];
  if (config["cluster-etcd"] === undefined || listen === undefined) return undefined;
  const [hostname, port] = splitHostPort(listen);
  let listener;
  try {
    listener = runtime.listen({ hostname, port });
  } catch (e) {
    throw listenFailed(e, "--cluster-listen", hostname, port);
  }
  try {
    return await joinCluster({ config, broker, listener, hostname, runtime });
  } catch (e) {
    throw new ConfigError(`cluster: ${(e as Error).message}`);
  }
}

function tlsSources(runtime: Runtime) {
  return { readFile: (p: string) => runtime.readTextFile(p), check: checkTlsFiles };
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

/**
 * The WebSocket settings, or undefined with `--no-ws`; the origins are checked
 * before anything listens, so a typo is a config error, not a refused page.
 */
function webSocketOptions(
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

/**
 * What a restart found, as the broker sees it: messages in queues, and the
 * retained messages of declared topics, counted apart (the store also holds
 * topic logs and the declarations record, which are not queues).
 */
function logRecovery(store: LogStore, broker: Broker, config: Config): void {
  const all = { offset: 0, limit: Number.MAX_SAFE_INTEGER };
  let queued = 0;
  let queues = 0;
  for (const q of broker.queueStats(all).list) {
    if (q.size === 0) continue;
    queued += q.size;
    queues++;
  }
  let retained = 0;
  let topics = 0;
  for (const t of broker.topicStats(all).list) {
    if (!t.declared) continue;
    retained += t.retained;
    topics++;
  }
  const r = store.recovery;
  const b = broker.stats();
  logger("store").info(
    `durable store in ${store.dir} (fsync ${config.fsync}): recovered ${queued} messages in ` +
      `${queues} queues and ${retained} retained messages in ${topics} declared topics, ` +
      `from ${r.records} records in ${r.ms} ms; ${b.scheduled_msgs} scheduled messages ` +
      `(queues and topics), ${b.declared_queues} declared queues`,
  );
}

/**
 * A listener that could not bind, as one line naming the setting. The
 * runtimes say it differently (Deno: `AddrInUse`/`PermissionDenied` error
 * names; Bun and Node: `EADDRINUSE`/`EACCES` codes); both are read here.
 */
function listenFailed(e: unknown, flag: string, host: string, port: number): ConfigError {
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

/**
 * The log store in `--data-dir` (recovering what is there), or the memory
 * store with `--memory` or without a data dir (`serve` defaults it to ./data;
 * in-process brokers, as in tests, stay in memory unless given one).
 */
function openStore(config: Config, clock: Clock): Store {
  const dir = config["data-dir"];
  if (config.memory || dir === undefined) return new MemoryStore();
  const log = logger("store");
  let store: LogStore;
  try {
    store = LogStore.open({
      dir,
      fs: nodeFileSystem,
      clock,
      fsync: config.fsync as FsyncPolicy,
      fsyncIntervalMs: config["fsync-interval"],
      log: (level, message, props) => log[level === "warn" ? "warn" : level](message, props ?? {}),
    });
  } catch (e) {
    throw new ConfigError(`cannot open --data-dir ${JSON.stringify(dir)}: ${(e as Error).message}`);
  }
  return store;
}

/** Resolves the configuration of `relayr serve` from the runtime's sources. */
export function configFrom(runtime: Runtime, args: string[]): ReturnType<typeof loadConfig> {
  return loadConfig({ args, env: (n) => runtime.env(n), readFile: (p) => runtime.readTextFile(p) });
}

async function serve(runtime: Runtime, args: string[]): Promise<number> {
  const { config, help } = configFrom(runtime, args);
  if (help) {
    console.log(serveHelp());
    return 0;
  }
  if (config["data-dir"] === undefined && !config.memory) config["data-dir"] = "./data";
  setupLogging({
    level: config["log-level"] as "info",
    format: config["log-format"] as "text" | "json",
    color: runtime.stdoutIsTerminal(),
  });
  const log = logger("server");
  // Listening for SIGINT/SIGTERM before the port opens: a supervisor (or a
  // test) that signals as soon as it can connect gets a clean stop, not the
  // default action (exit 143) of a signal nobody handles yet.
  const stopping = Promise.withResolvers<void>();
  const removers = (["SIGINT", "SIGTERM"] as const).map((sig) =>
    runtime.onSignal(sig, () => {
      log.info(`${sig}: stopping (flushing clients)`);
      for (const remove of removers) remove();
      stopping.resolve();
    })
  );
  let running: Running;
  try {
    running = await startBroker(runtime, config);
  } catch (e) {
    for (const remove of removers) remove();
    throw e;
  }
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
  // SIGHUP re-reads the configuration (flags and environment as at start; files anew).
  const removeHup = runtime.onSignal("SIGHUP", () => {
    try {
      running.reload(configFrom(runtime, args).config);
    } catch (e) {
      log.error(`SIGHUP: nothing reloaded: ${(e as Error).message.split("\n")[0]}`);
    }
    if (config.tls === undefined) return;
    running.reloadTls().then(
      () => log.info("SIGHUP: TLS certificate reloaded; new connections get it"),
      (e) =>
        log.error(`SIGHUP: TLS reload failed, the old certificate stays: ${(e as Error).message}`),
    );
  });
  await stopping.promise;
  removeHup();
  await running.stop();
  log.info("stopped");
  return 0;
}

/** Runs the command line; returns the exit code. */
export async function main(runtime: Runtime, args: string[]): Promise<number> {
  const [first, ...rest] = args;
  try {
    if (first === "--version" || first === "-V" || first === "version") {
      console.log(`relayr ${VERSION} (${runtime.name} ${runtime.version})`);
      return 0;
    }
    if (first === "--help" || first === "-h" || first === "help") {
      const { CLI_USAGE } = await import("./cli/mod.ts");
      console.log(
        `${serveHelp()}\n\n${CLI_USAGE}\n\nOther:\n  relayr --version             print the version and runtime`,
      );
      return 0;
    }
    if (first === undefined || first.startsWith("-")) return await serve(runtime, args);
    if (first === "serve") return await serve(runtime, rest);
    const cli = await import("./cli/mod.ts");
    const code = await cli.runCli(args, runtime);
    if (code === undefined || code === null) {
      console.error(`relayr: unknown command ${JSON.stringify(first)} (try relayr --help)`);
      return 2;
    }
    return code;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`relayr: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
