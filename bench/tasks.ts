/**
 * What the coordinator (`scenario.ts`) asks a worker (`worker.ts`) to do and
 * what it gets back, plus the layout of the shared control array through
 * which receivers report progress and publishers honour their window.
 *
 * @module
 */
import type { Kind, Protocol } from "./drivers/types.ts";

/** Index of the progress counter receivers bump after every read (publishers wait on it). */
export const CTL_TICK = 0;
/** Index of the publisher's count of messages written. */
export const CTL_SENT = 1;
/** Index of receiver 0's count of messages received; receiver i is at CTL_RECV + i. */
export const CTL_RECV = 2;

/** Fields of every task. */
interface TaskBase {
  protocol: Protocol;
  /** Server (or sink) port on 127.0.0.1. */
  port: number;
  /** TLS: the CA (PEM) the server's certificate chains to; undefined: plain TCP. */
  tls?: string;
  /** The server's WebSocket URL, for systems measured over WebSocket: dialled instead of `port`. */
  ws?: string;
  /** Bench-local name of the run; every destination derives from it. */
  name: string;
  /** Payload bytes. */
  size: number;
  /** Credentials for the driver's `CONNECT` (a server with authentication on). */
  auth?: Record<string, string>;
}

/**
 * Relayr routing runs: `filter`, a topic whose 4 subscribers each select
 * every 4th message by `priority` (the publisher cycles it); `bind`, a topic
 * bound to 4 queues, one consumer each.
 */
export type Route = "filter" | "bind";
/** Subscribers of a `filter` run, each taking one message in this many. */
export const FILTER_STRIDE = 4;

/** Flood `count` messages, at most `window` ahead of the receivers, then PING/PONG. */
export interface PublishTask extends TaskBase {
  role: "publish";
  route?: Route;
  kind: Kind;
  count: number;
  stampEvery: number;
  /** Most messages published and not yet received: none, by the slowest subscriber, or by all consumers together. */
  windowMode: "none" | "min" | "sum";
  window: number;
  receivers: number;
  /** Extra PUB options (Relayr's `delay:<ms>`), or none. */
  options?: string;
}

/** Subscribe to the topic (or consume the queue) and check every message. */
export interface ReceiveTask extends TaskBase {
  role: "receive";
  route?: Route;
  kind: Kind;
  index: number;
  /** Messages published in the run (all of them go to a topic subscriber). */
  count: number;
  stampEvery: number;
  prefetch: number;
  /** Relayr consumers: one cumulative `ACK sub_id:<sid> upto:<id>` per read instead of ids (`--ack upto`). */
  ackUpto: boolean;
  /** Ask the sink to stream `count` deliveries instead of subscribing to a server. */
  source: boolean;
}

/** Send `warmup + count` requests one at a time, timing the last `count`. */
export interface RequestTask extends TaskBase {
  role: "request";
  count: number;
  warmup: number;
}

/** Answer every request until stopped. */
export interface RespondTask extends TaskBase {
  role: "respond";
}

/** Anything a worker runs. */
export type Task = PublishTask | ReceiveTask | RequestTask | RespondTask;

/** A publisher's report; times are on the shared clock, ms. */
export interface PublishResult {
  role: "publish";
  t0: number;
  tEnd: number;
  sent: number;
  /** Plain acknowledgements the server sent (Redis integer replies). */
  replies: number;
  pong: boolean;
  errors: string[];
}

/** A receiver's report. */
export interface ReceiveResult {
  role: "receive";
  /** When the receiver asked the sink to start streaming (source mode), else 0. */
  t0: number;
  /** When the last message arrived. */
  tLast: number;
  count: number;
  /** Messages out of order (topics: not the next sequence number; queues: not increasing). */
  orderErrors: number;
  firstOrderError: string;
  /** Queue consumers: a bit per sequence number seen; null for topics. */
  seen: Uint8Array | null;
  duplicates: number;
  /** Milliseconds from send to receive of the stamped messages. */
  latencies: Float64Array;
  errors: string[];
}

/** A requester's report. */
export interface RequestResult {
  role: "request";
  t0: number;
  tEnd: number;
  count: number;
  /** Replies that did not match the request (sequence number or correlation id). */
  mismatches: number;
  /** Round-trip times in ms. */
  rtts: Float64Array;
  errors: string[];
}

/** A responder's report. */
export interface RespondResult {
  role: "respond";
  count: number;
  errors: string[];
}

/** Anything a worker reports. */
export type TaskResult = PublishResult | ReceiveResult | RequestResult | RespondResult;

/** Coordinator to worker. */
export type ToWorker = { type: "run"; task: Task; ctl: SharedArrayBuffer } | { type: "stop" };
/** Worker to coordinator. */
export type FromWorker =
  | { type: "ready" }
  | { type: "done"; result: TaskResult }
  | { type: "failed"; error: string };
