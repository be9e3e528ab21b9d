/**
 * Why a connection closed: one typed reason per close, counted in metrics and
 * kept in a bounded ring for the admin API (as nats-server's `/connz?state=closed`).
 *
 * @module
 */

/** Every close reason. */
export const CloseReason = {
  CLIENT_CLOSED: "CLIENT_CLOSED",
  PROTOCOL_ERROR: "PROTOCOL_ERROR",
  SLOW_CONSUMER: "SLOW_CONSUMER",
  STALE_CONNECTION: "STALE_CONNECTION",
  TOO_MANY_CONNECTIONS: "TOO_MANY_CONNECTIONS",
  READ_ERROR: "READ_ERROR",
  WRITE_ERROR: "WRITE_ERROR",
  SERVER_SHUTDOWN: "SERVER_SHUTDOWN",
  /** A bug in the server while handling this connection; logged as an error. */
  INTERNAL_ERROR: "INTERNAL_ERROR",
} as const;
/** One close reason. */
export type CloseReason = typeof CloseReason[keyof typeof CloseReason];
