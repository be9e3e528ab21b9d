/**
 * What the broker sees of a client connection, its options, and its errors.
 *
 * @module
 */
import type { ErrorCode, MsgRun, PubOptions, QueueDeclareOptions } from "../protocol/mod.ts";
import type { Clock } from "../runtime/mod.ts";
import { type Message, type Store, StoreError } from "../storage/mod.ts";
import type { InFlight } from "./inflight.ts";

/** The broker's view of a connection: where MSG frames go. */
export interface Client {
  /** Connection id (unique per server run). */
  readonly id: number;
  /** The connection's deliveries awaiting ACK; subscriptions add and remove theirs. */
  readonly inflight: InFlight;
  /**
   * Whether the connection takes more messages now (its outbound buffer is
   * below the high mark). A "no" also asks for a drain: once the buffer is
   * written out, the connection activates its subscriptions again.
   */
  wantsMore(): boolean;
  /** Queues one MSG frame: the subscription's head, then the message's tail (for `delivery`) and payload. */
  sendMsg(head: Uint8Array, msg: Message, delivery: number): void;
  /** Asks the connection to close as a slow consumer (after the current batch). */
  slowConsumer(detail: string): void;
  /**
   * (cluster) This node stopped leading a queue the client consumes: the
   * connection closes with `LEADER_CHANGED`, so that its client reconnects
   * and its subscription reaches the new leader. Absent: a peer's proxy,
   * which follows the leader itself.
   */
  leaderChanged?(detail: string): void;
  /** Notes a message delivered without explicit acks, so that its ACK is a harmless no-op. */
  delivered(id: number): void;
  /**
   * Whether `bytes` more stay below the high mark (no drain is asked, as a
   * "no" from `wantsMore` would). With `sendRun`; absent: a topic's runs are
   * sent message by message.
   */
  roomFor?(bytes: number): boolean;
  /**
   * Queues the MSG frames of a run to a subscription without explicit acks,
   * `head` as each frame's head, `bytes` long (`run.bytesFor(head)`, which
   * `roomFor` said fit), and notes them delivered as `delivered` does.
   */
  sendRun?(head: Uint8Array, run: MsgRun, bytes: number): void;
  /**
   * Whether the connection's user may read `topic` (a concrete topic name).
   * Asked once when a wildcard subscription binds to a topic, never per
   * message; absent: everything (auth off).
   */
  mayRead?(topic: string): boolean;
  /**
   * Its user's `pending_bytes` limit, if any: a topic subscription of this
   * connection may also fall only this far behind (the broker's
   * `subPendingBytesMax` when lower); absent: no user limit.
   */
  readonly lagBytesMax?: number;
}

/** Policy for a full queue. */
export type QueueOverflow = "reject" | "drop-oldest";
/** Policy for a topic subscription that falls too far behind. */
export type SlowConsumerPolicy = "disconnect" | "drop-oldest" | "block";

/** Broker settings; every field has a default in `config/limits.ts`. */
export interface BrokerOptions {
  store: Store;
  maxDeliveries: number;
  queueMessagesMax: number;
  queueBytesMax: number;
  queueOverflow: QueueOverflow;
  slowConsumer: SlowConsumerPolicy;
  subPendingMessagesMax: number;
  subPendingBytesMax: number;
  /** Under the `block` policy, the longest publishers wait for a stalled subscriber before it is disconnected. */
  slowConsumerBlockMs?: number;
  ackTimeoutMs: number;
  prefetch: number;
  /** Where time comes from (default: the system clock); tests pass a fake one. */
  clock?: Clock;
  /** (cluster) Declared topics are led by one node each (src/cluster/topic_leader.ts). */
  ledTopics?: boolean;
}

/** A refused broker operation; becomes `ERR <code> <message>`. */
export class BrokerError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "BrokerError";
    this.code = code;
  }
}

/** `STORE_FAILED` for a message its store could not take. */
export function storeFailed(e: unknown): BrokerError {
  // A replicated store refuses with its own code (NOT_LEADER, UNAVAILABLE): passed on as it is.
  if (e instanceof BrokerError) return e;
  const why = e instanceof StoreError ? e.message : String(e);
  return new BrokerError("STORE_FAILED", `message not stored: ${why}`);
}

/**
 * (cluster) Bound copies for queues another node leads (src/cluster/bindings.ts):
 * in a cluster the node a topic message is published on applies the
 * bindings, and sends each copy to its queue's leader; the publisher's reply
 * waits for the leader's answer, as it waits for a local copy's store.
 */
export interface BoundCopies {
  /**
   * Whether another node leads `queue` (its copies are sent there, not stored
   * here); throws `BrokerError` when a copy for it cannot be taken now.
   */
  remote(queue: string): boolean;
  /** Sends a copy of topic message `msg` to the leader of `queue`; settles with its answer. */
  send(queue: string, msg: Message): Promise<void>;
}

/** (cluster) The cluster-wide bindings (etcd): BIND/UNBIND go there, every node applies them. */
export interface SharedBindings {
  /** Stores the binding for the whole cluster; resolves once stored and applied here. */
  bind(pattern: string, queue: string, filter: string | undefined): Promise<void>;
  /** Removes it for the whole cluster; resolves once stored and applied here. */
  unbind(pattern: string, queue: string): Promise<void>;
}

/** (cluster) Where a queue's declaration goes at its leader (src/cluster/queue_decls.ts). */
export interface SharedQueueDeclarations {
  /**
   * Stores the declaration for the whole cluster and applies it here; rejects
   * with `DECLARE_CONFLICT`, `LIMIT` or `UNAVAILABLE`.
   */
  declare(name: string, d: QueueDeclareOptions): Promise<void>;
}

/**
 * Topic interest and publishes as the cluster's inter-node link sees them
 * (src/cluster/): set on `Broker.interest` only with `--cluster-etcd`, so a
 * single node pays one undefined check per topic publish.
 */
export interface TopicInterest {
  /** A local topic subscription to `pattern` started (one call per subscription). */
  added(pattern: string): void;
  /** A local topic subscription to `pattern` ended (one call per subscription). */
  removed(pattern: string): void;
  /** A local client published `buf[off, off + len)` to topic `dest` (never called for a peer's message). */
  published(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): void;
}
