/**
 * Why a connection closed: one typed reason per close, counted in metrics and
 * kept in a bounded ring for the admin API (as nats-server's `/connz?state=closed`).
 *
 * @module
 */
import type { ErrorCode } from "../protocol/mod.ts";

/** Every close reason. */
export const CloseReason = {
  CLIENT_CLOSED: "CLIENT_CLOSED",
  /** A control line over `CONTROL_LINE_BYTES_MAX` (framing cannot resynchronise). */
  CONTROL_LINE_TOO_LONG: "CONTROL_LINE_TOO_LONG",
  /** A PUB announcing more than the payload limit (its bytes would have to be skipped blind). */
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  /** A frame that breaks the framing (a payload not followed by CRLF, a bad size). */
  BAD_FRAME: "BAD_FRAME",
  SLOW_CONSUMER: "SLOW_CONSUMER",
  STALE_CONNECTION: "STALE_CONNECTION",
  TOO_MANY_CONNECTIONS: "TOO_MANY_CONNECTIONS",
  READ_ERROR: "READ_ERROR",
  WRITE_ERROR: "WRITE_ERROR",
  SERVER_SHUTDOWN: "SERVER_SHUTDOWN",
  /** A `CONNECT` whose credentials were refused. */
  AUTH_FAILED: "AUTH_FAILED",
  /** No successful `CONNECT` within `--auth-timeout`. */
  AUTH_TIMEOUT: "AUTH_TIMEOUT",
  /** The connection's user was removed (or its credential changed) by a reload. */
  AUTH_REVOKED: "AUTH_REVOKED",
  /** Closed by an operator through the admin API or CLI. */
  ADMIN_CLOSED: "ADMIN_CLOSED",
  /** (cluster) The node stopped leading a queue the connection consumed: it reconnects to reach the new leader. */
  LEADER_CHANGED: "LEADER_CHANGED",
  /** A bug in the server while handling this connection; logged as an error. */
  INTERNAL_ERROR: "INTERNAL_ERROR",
} as const;
/** One close reason. */
export type CloseReason = typeof CloseReason[keyof typeof CloseReason];

/** The close reason of a fatal framing error the parser reported. */
export function closeReasonOf(code: ErrorCode): CloseReason {
  switch (code) {
    case "CONTROL_LINE_TOO_LONG":
      return CloseReason.CONTROL_LINE_TOO_LONG;
    case "PAYLOAD_TOO_LARGE":
      return CloseReason.PAYLOAD_TOO_LARGE;
    default:
      return CloseReason.BAD_FRAME;
  }
}

/** The ERR code a close for `reason` sends before it closes; undefined: none. */
export function closeCode(reason: CloseReason): ErrorCode | undefined {
  switch (reason) {
    case CloseReason.SLOW_CONSUMER:
      return "SLOW_CONSUMER";
    case CloseReason.STALE_CONNECTION:
      return "STALE_CONNECTION";
    case CloseReason.TOO_MANY_CONNECTIONS:
      return "TOO_MANY_CONNECTIONS";
    case CloseReason.SERVER_SHUTDOWN:
      return "SHUTTING_DOWN";
    case CloseReason.LEADER_CHANGED:
      return "LEADER_CHANGED";
    case CloseReason.AUTH_FAILED:
    case CloseReason.AUTH_TIMEOUT:
    case CloseReason.AUTH_REVOKED:
      return reason;
    case CloseReason.ADMIN_CLOSED:
      return "ADMIN_CLOSED";
    default:
      return undefined;
  }
}
