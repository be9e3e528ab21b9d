/**
 * What the parts of the gRPC listener share: its settings, the broker, the
 * per-user state, the stop flag, the close counters and the client ids. The
 * listener (server.ts) owns one `Front`; the call gate (calls.ts), the
 * publish side (publishing.ts) and the subscribe side (subscribing.ts) read
 * and count through it, so each piece of state has one owner.
 *
 * @module
 */
import type { Authenticator, AuthzCounters } from "../auth/mod.ts";
import type { Broker } from "../broker/mod.ts";
import type { TlsFiles } from "../runtime/mod.ts";
import type { CloseReason, Routing, ServerStats } from "../server/mod.ts";
import type { Principal } from "./auth.ts";
import { UserStates } from "./limits.ts";

/** Settings of the gRPC listener. */
export interface GrpcOptions {
  hostname: string;
  port: number;
  payloadBytesMax: number;
  /** The broker's authenticator (the TCP server's); undefined: authentication is off. */
  auth?: Authenticator;
  /** The TCP port's certificate (`--tls-cert`, `--tls-key`, `--tls-ca`): the gRPC port serves it too. */
  tls?: TlsFiles;
  /** The server's authorization counters (`relayr_permission_denied_total` counts gRPC refusals too). */
  authz?: AuthzCounters;
  /**
   * HTTP/2 PING interval (`--ping-interval`): a client that answers none
   * within `GRPC_KEEPALIVE_TIMEOUT_MS` loses its connection, and its
   * Subscribe streams give their unacked messages back, as a stale TCP
   * connection does.
   */
  pingIntervalMs: number;
  /**
   * Cluster mode: the node's forwarding of queue commands to their leaders
   * (the TCP server's), through which publishes and Subscribe streams on
   * queues led elsewhere go (routed.ts); undefined on a single node.
   */
  routing?: Routing;
  /** The TCP server's figures, for the Stats call. */
  serverStats: () => ServerStats;
  log?: (
    level: "debug" | "info" | "warn" | "error",
    message: string,
    props?: Record<string, unknown>,
  ) => void;
}

/** The RPCs, for per-method counters. */
export const GRPC_METHODS = [
  "Publish",
  "PublishStream",
  "Subscribe",
  "Request",
  "Declare",
  "Unsubscribe",
  "Stats",
] as const;
/** One RPC name. */
export type GrpcMethod = typeof GRPC_METHODS[number];

/** Ids of the broker `Client`s of this listener start here: apart from TCP connection ids. */
export const CLIENT_ID_BASE = 2 ** 40;

/**
 * A reload's verdict on an open stream's principal: null, the user is gone;
 * a principal, its new rules; undefined, nothing changed.
 */
export type Verdict = (p: Principal) => Principal | null | undefined;

/** The listener's shared state (see the module comment). */
export class Front {
  readonly broker: Broker;
  readonly options: GrpcOptions;
  /** Per-user limits, buckets and grants (limits.ts): a user's, across the listener. */
  readonly users: UserStates;
  /** Ended Subscribe and PublishStream streams, by close reason. */
  readonly closedByReason: Partial<Record<CloseReason, number>> = {};
  /** Set once by the listener's shutdown: new streams are refused, waits end. */
  stopping = false;
  #nextId = CLIENT_ID_BASE;

  constructor(broker: Broker, options: GrpcOptions) {
    this.broker = broker;
    this.options = options;
    this.users = new UserStates(options.payloadBytesMax);
  }

  /** The next broker client id of the listener. */
  nextId(): number {
    return this.#nextId++;
  }

  /** Counts an ended stream by its close reason. */
  countClose(reason: CloseReason): void {
    this.closedByReason[reason] = (this.closedByReason[reason] ?? 0) + 1;
  }
}
