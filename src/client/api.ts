/**
 * What every face of the client exports besides its `connect`: `mod.ts` for
 * Deno and Bun (TCP and WebSocket), `web.ts` for browsers (WebSocket only).
 *
 * @module
 */
export { Client, type ConnectOptions, openClient } from "./client.ts";
export { type BatchResult, PublishBatch } from "./batch.ts";
export type { ServerInfo } from "./connection.ts";
export type { RequestOptions } from "./request.ts";
export type { SubscribeOptions } from "./subscriptions.ts";
export type {
  AckMode,
  BindOptions,
  DeclareOptions,
  PublishOptions,
  QueueOptions,
  StartPosition,
  SubWireOptions,
} from "./options.ts";
export { type AckOptions, Message, type NackOptions } from "./message.ts";
export { Subscription, type UnsubscribeOptions } from "./subscription.ts";
export type { StatusEvent, StatusListener } from "./status.ts";
export * from "./errors.ts";
