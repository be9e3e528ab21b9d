/**
 * The broker: queues (competing consumers) and topics (fan-out over one shared
 * message list), independent of sockets and of the store behind them.
 *
 * @module
 */
export { Broker, type BrokerCounters, clock, type Subscription } from "./broker.ts";
export { Queue, QueueConsumer } from "./queue.ts";
export { Durable, type Retention, Topic, TopicSubscription } from "./topic.ts";
export { STATE_QUEUE, type TopicStateRecord } from "./topic_state.ts";
export { LATENCY_BUCKETS_S, LatencyHistogram } from "./latency.ts";
export { IdGenerator } from "./ids.ts";
export {
  type Acker,
  BrokerError,
  type BrokerOptions,
  type Client,
  type QueueOverflow,
  type SlowConsumerPolicy,
} from "./types.ts";
