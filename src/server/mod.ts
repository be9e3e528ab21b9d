/**
 * The TCP server: accept loop, connections, close reasons.
 *
 * @module
 */
export { type ClosedConnection, Server, type ServerOptions } from "./server.ts";
export { Connection } from "./connection.ts";
export { CloseReason } from "./close_reason.ts";
