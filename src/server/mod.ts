/**
 * The TCP server: accept loop, connections, close reasons, and the server's
 * admin data.
 *
 * @module
 */
export { Server, type ServerOptions } from "./server.ts";
export type {
  Elsewhere,
  QueueRouter,
  RoutedConnection,
  RouterReplies,
  Routing,
} from "./routing.ts";
export { type Answers, AnswerSlots, PublishingClient, replyOf } from "./answers.ts";
export { PublishRoute } from "./publish_route.ts";
export type { Held, Replies } from "./replies.ts";
export { Connection } from "./connection.ts";
export { userDurable } from "./commands.ts";
export { CloseReason } from "./close_reason.ts";
export { LOOP_LAG_WINDOW_MS } from "./loop_lag.ts";
export type * from "./stats.ts";
export type { UdpStats } from "./udp.ts";
