/**
 * The seam between a connection and the cluster's forwarding of queue
 * commands (docs/CLUSTERING.md): in cluster mode each connection gets a
 * `QueueRouter`, which says, per command, whether the queue's leader is this
 * node (the connection runs it as on a single broker) or another (the router
 * forwards it and answers through the connection's replies). Single-node
 * mode has no router and asks nothing.
 *
 * @module
 */
import type { Broker, Client, InFlight, Subscription } from "../broker/mod.ts";
import type {
  DeclareFrame,
  ErrorCode,
  Frame,
  PubFrame,
  SubFrame,
  SubOptions,
} from "../protocol/mod.ts";
import type { Held } from "./replies.ts";

/**
 * Where a router answers the commands it forwards or refuses: a TCP
 * connection's `Replies` (in command order, on its wire), or `AnswerSlots`
 * (answers.ts) for front ends without a reply line of their own (gRPC, UDP).
 */
export interface RouterReplies {
  /** A slot answered later (`fill`, `fillOk`) by the leader's answer. */
  hold(): Held;
  /** Answers a slot with a whole reply line (`OK ...` or `ERR ...`). */
  fill(slot: Held, bytes: Uint8Array): void;
  /** Answers a slot with `OK` or `OK <arg>`. */
  fillOk(slot: Held, arg: string): void;
  /** Answers the command at hand now with a whole line (a refusal's `ERR`). */
  bytes(bytes: Uint8Array): void;
  /** Answers the command at hand now with `ERR <code> <text>`. */
  error(code: ErrorCode, text: string): void;
}

/** What a router may use of its connection. */
export interface RoutedConnection {
  readonly id: number;
  readonly client: Client;
  readonly broker: Broker;
  readonly replies: RouterReplies;
  readonly inflight: InFlight;
  /** Its subscriptions by sub id (a forwarded one is replaced by a local one when this node leads). */
  readonly subs: Map<string, Subscription>;
  isClosed(): boolean;
  /**
   * Whether its user may do what the frame asks to its destination, asked
   * before a queue is claimed for it: a refused command must not write to
   * etcd (one leader key per name it makes up).
   */
  mayClaim(f: PubFrame | SubFrame | DeclareFrame): boolean;
  /**
   * A subscription whose leader went could not be re-made within
   * `CLUSTER_RESUBSCRIBE_MS_MAX` (absent: only logged, as on TCP, whose
   * client sees no more deliveries on it): a gRPC stream ends.
   */
  lost?(sid: string, why: string): void;
}

/** One connection's router (see the module comment). */
export interface QueueRouter {
  /**
   * Called before each frame: a promise when the frame names a queue nobody
   * leads yet (this node claims it; the read loop waits for the outcome, so
   * the order of commands holds), else undefined.
   */
  ready(f: Frame): Promise<void> | undefined;
  /** A PUB: true when it was forwarded or refused (its reply is the router's), false: run it here. */
  pub(f: PubFrame): boolean;
  /**
   * A SUB: the subscription made at the leader (its reply is the router's),
   * null when refused (answered), or undefined: make it here.
   */
  sub(
    dest: string,
    sid: string,
    options: SubOptions,
    chosen: boolean,
  ): Subscription | null | undefined;
  /** A DECLARE of a queue: true when forwarded or refused. */
  declare(f: DeclareFrame): boolean;
  /** The connection closed: upstream connections close, their subscriptions end there. */
  close(): void;
}

/** Makes routers: the cluster's forwarding, given to the server by the app. */
export interface Routing {
  /** A router for a client connection; `proxyFrom`: a trusted proxy connection from that node. */
  open(c: RoutedConnection, proxyFrom: string | undefined): QueueRouter;
  /**
   * Where an admin action (purge, peek, delete...) on `dest` may run:
   * undefined here (this node serves it, or it is not led); else why not
   * (another node leads it, or it is between leaders). It claims a queue or
   * declared topic nobody leads, as a command for it does.
   */
  placeOf?(dest: string): Promise<Elsewhere | undefined>;
}

/** Why an admin action cannot run on this node (`Routing.placeOf`). */
export interface Elsewhere {
  /** NOT_LEADER: `leader` leads it (ask that node); UNAVAILABLE: nobody serves it now (retry). */
  readonly code: "NOT_LEADER" | "UNAVAILABLE";
  /** The node that leads it (NOT_LEADER). */
  readonly leader?: string;
  readonly message: string;
}
