/**
 * The broker: queues (competing consumers) and topics (fan-out over one shared
 * message list), independent of sockets and of the store behind them. A
 * connection is a `Client`; what it subscribes is a `Subscription`; what it
 * has in flight is its `InFlight`.
 *
 * @module
 */
export { Broker } from "./broker.ts";
export { type ReplyWait, Subscription, type SubscriptionOptions } from "./subscription.ts";
export { Delivery, InFlight, type SubscriptionsView } from "./inflight.ts";
export { IdMap } from "./id_map.ts";
export type { Retention } from "./topic.ts";
export {
  type BoundCopies,
  BrokerError,
  type BrokerOptions,
  type Client,
  type SharedBindings,
  type SharedQueueDeclarations,
  storeFailed,
  type TopicInterest,
} from "./types.ts";
export type * from "./stats.ts";
export { page } from "./stats.ts";
export { LATENCY_BUCKETS_S } from "./latency.ts";
export { AdminError, AdminErrorKind, type PeekedMessage, queueName, topicName } from "./admin.ts";
