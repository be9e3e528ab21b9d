/**
 * Composition: builds the broker, store, server and monitoring from a
 * configuration, and runs the `relayr` command line. `main.ts` only picks the
 * runtime and calls `main`.
 *
 * @module
 */
import { authConfigFrom, Authenticator } from "./auth/mod.ts";
import { Broker } from "./broker/mod.ts";
import {
  type Cluster,
  type ClusterNode,
  joinCluster,
  LinkTls,
  replicatedStore,
  splitHostPort,
} from "./cluster/mod.ts";
import {
  CLUSTER_SECRET_ENV,
  type ClusterTlsSources,
  type Config,
  ConfigError,
  loadConfig,
  readClusterTls,
  readTls,
  serveHelp,
  sharesCertificate,
} from "./config/mod.ts";
import type { GrpcFront } from "./grpc/mod.ts";
import type { Monitoring } from "./http/mod.ts";
import { logger, setupLogging } from "./log/mod.ts";
import {
  checkLinkCert,
  checkTlsFiles,
  type Conn,
  type Runtime,
  systemClock,
} from "./runtime/mod.ts";
import { Server } from "./server/mod.ts";
import { LogStore, type Store } from "./storage/mod.ts";
import { VERSION } from "./version.ts";
import {
  checkGrpcTls,
  grpcPortOf,
  listenFailed,
  logListening,
  logRecovery,
  openStore,
  startGrpc,
  startHttp,
  startUdp,
  startWs,
  webSocketOptions,
} from "./app/mod.ts";

export { grpcPortOf } from "./app/mod.ts";

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
  /** Reads the TLS files again (the client port's and the link's); new connections get them (SIGHUP). Throws `ConfigError`. */
  reloadTls(): Promise<void>;
}

/** Starts a broker with a resolved configuration (used by `serve` and by tests). */
export async function startBroker(runtime: Runtime, config: Config): Promise<Running> {
  const log = logger("server");
  // Read and checked before anything binds: a bad file is one line, exit 2.
  config.tls ??= readTls(config, tlsSources(runtime));
  config.clusterTls ??= readClusterTls(config, clusterTlsSources(runtime));
  const grpcPort = grpcPortOf(config, runtime);
  checkGrpcTls(grpcPort, config, runtime);
  // Checked before anything opens, so a bad origin list leaves nothing to close.
  const webSocket = webSocketOptions(config, (conn) => server.adopt(conn));
  const clock = systemClock; // one clock for the store, the broker and the server
  const authConfig = authConfigFrom(config, (p) => runtime.readTextFile(p));
  const auth = authConfig.token === undefined && authConfig.users === undefined
    ? undefined
    : new Authenticator(authConfig, clock);
  checkClusterSecret(config, auth !== undefined || config.tls?.ca !== undefined);
  const linkTls = config.clusterTls &&
    new LinkTls({ tls: config.clusterTls, log: (level, m) => logger("cluster")[level](m) });
  // In a cluster, each queue is replicated (docs/CLUSTERING.md).
  const local = openStore(config, clock);
  const store = config["cluster-etcd"] === undefined ? local : replicatedStore(local, config.fsync);
  const broker = new Broker({
    store,
    clock,
    maxDeliveries: config["max-deliveries"],
    queueMessagesMax: config["queue-max-messages"],
    queueBytesMax: config["queue-max-bytes"],
    queueOverflow: config["queue-overflow"] as "reject" | "drop-oldest",
    slowConsumer: config["slow-consumer"] as "disconnect" | "drop-oldest" | "block",
    slowConsumerBlockMs: config["slow-consumer-block-ms"],
    ledTopics: config["cluster-etcd"] !== undefined,
    subPendingMessagesMax: config["sub-pending-messages"],
    subPendingBytesMax: config["sub-pending-bytes"],
    ackTimeoutMs: config["ack-timeout"],
    prefetch: config["prefetch"],
  });
  if (local instanceof LogStore) logRecovery(local, broker, config);
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
    cluster = await startCluster(
      runtime,
      config,
      broker,
      (conn, from) => server.adoptProxy(conn, from),
      linkTls,
    );
    server.routing = cluster?.forwarding;
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
  let grpc: GrpcFront | undefined;
  try {
    await startUdp(server, config, auth !== undefined);
    grpc = grpcPort === undefined ? undefined : await startGrpc(broker, server, config, grpcPort);
  } catch (e) {
    await server.shutdown();
    await cluster?.stop();
    await store.close();
    throw e;
  }
  let http: Monitoring | undefined;
  let ws: Monitoring | undefined;
  try {
    http = startHttp(runtime, config, server, {
      grpc,
      webSocket,
      cluster: cluster?.node,
    });
  } catch (e) {
    await grpc?.shutdown();
    await cluster?.stop();
    await server.shutdown();
    await store.close();
    throw e;
  }
  try {
    ws = startWs(runtime, config, webSocket);
  } catch (e) {
    await grpc?.shutdown();
    await server.shutdown();
    await http?.close();
    await cluster?.stop();
    await store.close();
    throw e;
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
      // The link's files first: a mistake in them changes nothing anywhere.
      const link = linkTls && readClusterTls(config, clusterTlsSources(runtime));
      const tls = readTls(config, tlsSources(runtime));
      if (linkTls !== undefined && link !== undefined) {
        await linkTls.reload(link);
        config.clusterTls = link;
      }
      if (tls === undefined) return;
      await server.reloadTls(tls);
      config.tls = tls;
      if (tls.http) await http?.reloadTls(tls);
      await ws?.reloadTls(tls);
    },
  };
}

/**
 * Deny wins: with clients authenticated, an open cluster port would let
 * anyone past it (a PROXY connection is a fully trusted client), so a node
 * with client authentication joins a cluster only with link authentication:
 * a cluster secret, or mutual TLS (each peer proves a key certified by the
 * cluster CA). A cluster CA that also certifies clients (`--tls-ca`) would
 * let any client in as a node: refused, unless a secret is needed too.
 */
function checkClusterSecret(config: Config, clientAuth: boolean): void {
  if (config["cluster-etcd"] === undefined || config.clusterSecret !== undefined) return;
  const link = config.clusterTls;
  if (
    link !== undefined && config.tls?.ca !== undefined && sharesCertificate(link.ca, config.tls.ca)
  ) {
    throw new ConfigError(
      "--cluster-tls-ca trusts a CA of client certificates (--tls-ca): any client could join " +
        "as a node; give the cluster a CA of its own, or set a cluster secret too",
    );
  }
  if (!clientAuth || link !== undefined) return; // joinCluster warns when the port is open
  throw new ConfigError(
    "client authentication is on but the cluster port is not: set --cluster-secret-file " +
      `<file> (or ${CLUSTER_SECRET_ENV}) on every node, the same secret of 32+ bytes, ` +
      "or mutual TLS (--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca)",
  );
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
  proxy: (conn: Conn, fromNode: string) => void,
  tls: LinkTls | undefined,
): Promise<Cluster | undefined> {
  const listen = config["cluster-listen"];
  if (config["cluster-etcd"] === undefined || listen === undefined) return undefined;
  const [hostname, port] = splitHostPort(listen);
  let listener;
  try {
    listener = tls === undefined
      ? runtime.listen({ hostname, port })
      : await tls.listen(runtime, hostname, port);
  } catch (e) {
    throw listenFailed(e, "--cluster-listen", hostname, port);
  }
  try {
    return await joinCluster({ config, broker, listener, hostname, runtime, proxy, linkTls: tls });
  } catch (e) {
    throw new ConfigError(`cluster: ${(e as Error).message}`);
  }
}

function tlsSources(runtime: Runtime) {
  return { readFile: (p: string) => runtime.readTextFile(p), check: checkTlsFiles };
}

function clusterTlsSources(runtime: Runtime): ClusterTlsSources {
  return { ...tlsSources(runtime), checkLink: checkLinkCert };
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
  logListening(log, runtime, config, running);
  // SIGHUP re-reads the configuration (flags and environment as at start; files anew).
  const removeHup = runtime.onSignal("SIGHUP", () => {
    try {
      running.reload(configFrom(runtime, args).config);
    } catch (e) {
      log.error(`SIGHUP: nothing reloaded: ${(e as Error).message.split("\n")[0]}`);
    }
    if (config.tls === undefined && config.clusterTls === undefined) return;
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
