/**
 * Every error the client raises, in one registry.
 *
 * Broker errors (`ERR <CODE> <text>`) become one class per code, all extending
 * {@linkcode BrokerReplyError}, so callers can catch one code
 * (`err instanceof QueueFullError`) or all of them
 * (`err instanceof BrokerReplyError`). The style guide asks for the nearest
 * built-in as a base class; we take one common base instead because "any
 * broker refusal" is the check callers write most, and `code` carries the
 * finer meaning. One explicit class per code (rather than a factory) keeps the
 * types explicit for `deno doc` and JSR.
 *
 * The codes and whether each is fatal come from the protocol's `ERROR_CODES`
 * (src/protocol/errors.ts), not from a copy: `BROKER_ERRORS` must name a class
 * for every code there (a compile error otherwise), and each class reads its
 * `fatal` from it.
 *
 * The client-side errors extend the nearest built-in where there is one
 * (`BufferFullError` a `RangeError`, `BrokerProtocolError` a `SyntaxError`);
 * timeouts, lost connections and draining have none, so they extend `Error`.
 *
 * The names differ from the server's classes on purpose (the broker has its
 * own `BrokerError`): a client `BrokerReplyError` is what the broker *sent*.
 *
 * @module
 */
import { ERROR_CODES, type ErrorCode } from "../protocol/mod.ts";

/** Whether the broker closes the connection after `code`; false for a code this client does not know. */
function isFatal(code: string): boolean {
  return Object.hasOwn(ERROR_CODES, code) && ERROR_CODES[code as ErrorCode];
}

/** Base of every broker `ERR` line: `code` is the wire code, `fatal` whether the broker closed the connection. */
export class BrokerReplyError extends Error {
  /** The `CODE` token of the `ERR` line, e.g. `"QUEUE_FULL"`. */
  readonly code: string;
  /** True when the broker closes the connection after this error. */
  readonly fatal: boolean;
  /**
   * Makes the error of one of the protocol's codes; `fatal` is what the
   * protocol says of it. The per-code classes call this, so none can name a
   * code the protocol does not have.
   *
   * @example
   * ```ts
   * import { BrokerReplyError } from "./errors.ts";
   * console.assert(new BrokerReplyError("SHUTTING_DOWN").fatal);
   * ```
   */
  constructor(code: ErrorCode, text?: string);
  /**
   * Makes the error of any code, e.g. one from a newer broker.
   *
   * @example
   * ```ts
   * import { BrokerReplyError } from "./errors.ts";
   * const err = new BrokerReplyError("SOME_CODE", "something went wrong", false);
   * console.assert(err.code === "SOME_CODE" && !err.fatal);
   * ```
   */
  constructor(code: string, text: string, fatal: boolean);
  constructor(code: string, text = "", fatal: boolean = isFatal(code)) {
    super(text === "" ? code : `${code}: ${text}`);
    this.name = "BrokerReplyError";
    this.code = code;
    this.fatal = fatal;
  }
}

/** `UNKNOWN_COMMAND`: the broker did not know the verb. */
export class UnknownCommandError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNKNOWN_COMMAND", text);
    this.name = "UnknownCommandError";
  }
}

/** `BAD_ARGUMENT`: a missing, extra, malformed, out-of-range or unknown option or argument. */
export class BadArgumentError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_ARGUMENT", text);
    this.name = "BadArgumentError";
  }
}

/** `BAD_DESTINATION`: not `queue:`/`topic:`, a bad name, too long, or a misplaced wildcard. */
export class BadDestinationError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_DESTINATION", text);
    this.name = "BadDestinationError";
  }
}

/** `BAD_JSON`: the `CONNECT` argument is not a JSON object. */
export class BadJsonError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_JSON", text);
    this.name = "BadJsonError";
  }
}

/** `BAD_VERSION`: the broker does not speak the requested protocol version. */
export class BadVersionError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_VERSION", text);
    this.name = "BadVersionError";
  }
}

/** `BAD_HEADERS`: the header block is malformed or larger than 64 KiB. */
export class BadHeadersError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_HEADERS", text);
    this.name = "BadHeadersError";
  }
}

/** `DUPLICATE_SUB_ID`: the subscription id is already used on this connection. */
export class DuplicateSubIdError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("DUPLICATE_SUB_ID", text);
    this.name = "DuplicateSubIdError";
  }
}

/** `UNKNOWN_SUB_ID`: `UNSUB` of an id that is not in use. */
export class UnknownSubIdError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNKNOWN_SUB_ID", text);
    this.name = "UnknownSubIdError";
  }
}

/** `UNKNOWN_MSG_ID`: `ACK`/`NACK` of a message not in flight to this connection. */
export class UnknownMsgIdError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNKNOWN_MSG_ID", text);
    this.name = "UnknownMsgIdError";
  }
}

/** `QUEUE_FULL`: the queue is at its limit; the message was not accepted. */
export class QueueFullError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("QUEUE_FULL", text);
    this.name = "QueueFullError";
  }
}

/** `LIMIT`: too many subscriptions on the connection or destinations on the broker. */
export class LimitError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("LIMIT", text);
    this.name = "LimitError";
  }
}

/**
 * `STORE_FAILED`: the broker could not make the message durable: treat it as
 * not sent (it may still be delivered); or a `DECLARE` or durable position
 * could not be stored (it holds in memory and is written again with the next).
 */
export class StoreFailedError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("STORE_FAILED", text);
    this.name = "StoreFailedError";
  }
}

/**
 * `NOT_DECLARED`: a subscription with `durable` or `start` on a topic that is
 * not declared; `Client.declare` the topic first.
 *
 * @example
 * ```ts
 * import { brokerError, NotDeclaredError } from "./errors.ts";
 * console.assert(brokerError("NOT_DECLARED", "topic:orders") instanceof NotDeclaredError);
 * ```
 */
export class NotDeclaredError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("NOT_DECLARED", text);
    this.name = "NotDeclaredError";
  }
}

/**
 * `DURABLE_IN_USE`: another live subscription (on any connection) uses this
 * durable name on the topic; only one may at a time.
 *
 * @example
 * ```ts
 * import { brokerError, DurableInUseError } from "./errors.ts";
 * console.assert(brokerError("DURABLE_IN_USE", "billing") instanceof DurableInUseError);
 * ```
 */
export class DurableInUseError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("DURABLE_IN_USE", text);
    this.name = "DurableInUseError";
  }
}

/**
 * Base of the authentication refusals (`AUTH_REQUIRED`, `AUTH_FAILED`,
 * `AUTH_TIMEOUT`, `AUTH_REVOKED`): catch `AuthError` to handle any of them.
 *
 * @example
 * ```ts
 * import { AuthError, brokerError } from "./errors.ts";
 * console.assert(brokerError("AUTH_FAILED", "") instanceof AuthError);
 * ```
 */
export class AuthError extends BrokerReplyError {
  /**
   * Makes the error of one authentication code.
   *
   * @param code one of the `AUTH_*` codes
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(
    code: "AUTH_REQUIRED" | "AUTH_FAILED" | "AUTH_TIMEOUT" | "AUTH_REVOKED",
    text = "",
  ) {
    super(code, text);
    this.name = "AuthError";
  }
}

/** `AUTH_REQUIRED`: the broker wants a successful `CONNECT` before this command. */
export class AuthRequiredError extends AuthError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("AUTH_REQUIRED", text);
    this.name = "AuthRequiredError";
  }
}

/** `AUTH_FAILED` (fatal): the credentials of the `CONNECT` were refused. */
export class AuthFailedError extends AuthError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("AUTH_FAILED", text);
    this.name = "AuthFailedError";
  }
}

/** `AUTH_TIMEOUT` (fatal): no successful `CONNECT` within the broker's auth timeout. */
export class AuthTimeoutError extends AuthError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("AUTH_TIMEOUT", text);
    this.name = "AuthTimeoutError";
  }
}

/** `AUTH_REVOKED` (fatal): the connection's user was removed by a reload. */
export class AuthRevokedError extends AuthError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("AUTH_REVOKED", text);
    this.name = "AuthRevokedError";
  }
}

/** `PERMISSION_DENIED`: the user may not do this to that destination; the connection goes on. */
export class PermissionError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line (the destination)
   */
  constructor(text = "") {
    super("PERMISSION_DENIED", text);
    this.name = "PermissionError";
  }
}

/**
 * `BAD_FILTER`: the `filter` selector does not parse or is over a limit; the
 * text says where (`at <offset>: ...`).
 *
 * @example
 * ```ts
 * import { BadFilterError, brokerError } from "./errors.ts";
 * console.assert(brokerError("BAD_FILTER", "at 3: expected NULL") instanceof BadFilterError);
 * ```
 */
export class BadFilterError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_FILTER", text);
    this.name = "BadFilterError";
  }
}

/**
 * `DECLARE_CONFLICT`: the queue is already declared with other settings; a
 * declaration is idempotent only with the same settings.
 *
 * @example
 * ```ts
 * import { brokerError, DeclareConflictError } from "./errors.ts";
 * console.assert(brokerError("DECLARE_CONFLICT", "queue:jobs") instanceof DeclareConflictError);
 * ```
 */
export class DeclareConflictError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("DECLARE_CONFLICT", text);
    this.name = "DeclareConflictError";
  }
}

/** `BAD_FRAME` (fatal): the size token or the payload line end was wrong. */
export class BadFrameError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_FRAME", text);
    this.name = "BadFrameError";
  }
}

/** `CONTROL_LINE_TOO_LONG` (fatal): a control line over 4096 bytes. */
export class ControlLineTooLongError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("CONTROL_LINE_TOO_LONG", text);
    this.name = "ControlLineTooLongError";
  }
}

/** `PAYLOAD_TOO_LARGE` (fatal): a payload over the broker's `max_payload` (raised before sending when the client can tell). */
export class PayloadTooLargeError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("PAYLOAD_TOO_LARGE", text);
    this.name = "PayloadTooLargeError";
  }
}

/** `SLOW_CONSUMER` (fatal): the client read too slowly and was disconnected. */
export class SlowConsumerError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("SLOW_CONSUMER", text);
    this.name = "SlowConsumerError";
  }
}

/**
 * `LEADER_CHANGED` (fatal, cluster): the node no longer leads a queue this
 * connection consumed; the client reconnects and its subscriptions reach
 * the new leader.
 */
export class LeaderChangedError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("LEADER_CHANGED", text);
    this.name = "LeaderChangedError";
  }
}

/** `STALE_CONNECTION` (fatal): the peer did not answer PINGs. */
export class StaleConnectionError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("STALE_CONNECTION", text);
    this.name = "StaleConnectionError";
  }
}

/** `TOO_MANY_CONNECTIONS` (fatal): the broker is at its connection limit. */
export class TooManyConnectionsError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("TOO_MANY_CONNECTIONS", text);
    this.name = "TooManyConnectionsError";
  }
}

/** `SHUTTING_DOWN` (fatal): the broker is stopping. */
export class ShuttingDownError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("SHUTTING_DOWN", text);
    this.name = "ShuttingDownError";
  }
}

/** `ADMIN_CLOSED` (fatal): an operator closed the connection. */
export class AdminClosedError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("ADMIN_CLOSED", text);
    this.name = "AdminClosedError";
  }
}

/**
 * `NOT_LEADER` (cluster): the node asked is not the queue's leader; nothing
 * was done, so the command may be sent again (a node forwards a client's
 * commands to the leader itself: a client sees this only in a leader change).
 */
export class NotLeaderError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("NOT_LEADER", text);
    this.name = "NotLeaderError";
  }
}

/**
 * `UNAVAILABLE` (cluster): the queue's leader could not be reached or lost
 * its leadership while the command was in flight. For a `PUB` the outcome is
 * unknown: it may or may not have been stored; resend with a `dedup_id`.
 */
export class UnavailableError extends BrokerReplyError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNAVAILABLE", text);
    this.name = "UnavailableError";
  }
}

/**
 * The registry: wire code to class, one for every code of the protocol's
 * `ERROR_CODES` (`satisfies` makes a missing or an extra code a compile
 * error). Typed by string, as the codes arrive from the wire.
 */
export const BROKER_ERRORS: Readonly<Record<string, new (text?: string) => BrokerReplyError>> = {
  UNKNOWN_COMMAND: UnknownCommandError,
  BAD_ARGUMENT: BadArgumentError,
  BAD_DESTINATION: BadDestinationError,
  BAD_JSON: BadJsonError,
  BAD_VERSION: BadVersionError,
  BAD_HEADERS: BadHeadersError,
  DUPLICATE_SUB_ID: DuplicateSubIdError,
  UNKNOWN_SUB_ID: UnknownSubIdError,
  UNKNOWN_MSG_ID: UnknownMsgIdError,
  QUEUE_FULL: QueueFullError,
  LIMIT: LimitError,
  STORE_FAILED: StoreFailedError,
  NOT_DECLARED: NotDeclaredError,
  DURABLE_IN_USE: DurableInUseError,
  DECLARE_CONFLICT: DeclareConflictError,
  NOT_LEADER: NotLeaderError,
  UNAVAILABLE: UnavailableError,
  AUTH_REQUIRED: AuthRequiredError,
  PERMISSION_DENIED: PermissionError,
  AUTH_FAILED: AuthFailedError,
  AUTH_TIMEOUT: AuthTimeoutError,
  AUTH_REVOKED: AuthRevokedError,
  BAD_FILTER: BadFilterError,
  BAD_FRAME: BadFrameError,
  CONTROL_LINE_TOO_LONG: ControlLineTooLongError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  SLOW_CONSUMER: SlowConsumerError,
  STALE_CONNECTION: StaleConnectionError,
  TOO_MANY_CONNECTIONS: TooManyConnectionsError,
  SHUTTING_DOWN: ShuttingDownError,
  ADMIN_CLOSED: AdminClosedError,
  LEADER_CHANGED: LeaderChangedError,
} satisfies Record<ErrorCode, new (text?: string) => BrokerReplyError>;

/**
 * Fatal codes the broker sends on its own, not as the answer to a command.
 * They must not be matched to the oldest pending command, or every later
 * reply would be matched to the wrong one.
 */
export const UNSOLICITED_CODES: ReadonlySet<string> = new Set(
  [
    "SLOW_CONSUMER",
    "STALE_CONNECTION",
    "TOO_MANY_CONNECTIONS",
    "SHUTTING_DOWN",
    "AUTH_TIMEOUT",
    "AUTH_REVOKED",
    "ADMIN_CLOSED",
    "LEADER_CHANGED",
  ] satisfies ErrorCode[],
);

/**
 * Turns an `ERR` line into its typed error; an unknown code (a newer broker)
 * becomes a plain non-fatal `BrokerReplyError`.
 *
 * @example
 * ```ts
 * import { brokerError, QueueFullError } from "./errors.ts";
 * const err = brokerError("QUEUE_FULL", "queue:orders is full");
 * console.assert(err instanceof QueueFullError);
 * ```
 */
export function brokerError(code: string, text: string): BrokerReplyError {
  return Object.hasOwn(BROKER_ERRORS, code)
    ? new BROKER_ERRORS[code](text)
    : new BrokerReplyError(code, text, false);
}

/** A command, request or flush did not get its answer in time. */
export class TimeoutError extends Error {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { TimeoutError } from "./errors.ts";
   * console.assert(new TimeoutError("request timed out").name === "TimeoutError");
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** The client was closed (by `close()`, `drain()`, or after giving up reconnecting). */
export class ConnectionClosedError extends Error {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { ConnectionClosedError } from "./errors.ts";
   * console.assert(new ConnectionClosedError("client closed").name === "ConnectionClosedError");
   * ```
   */
  constructor(message = "Connection closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionClosedError";
  }
}

/**
 * The connection dropped before the broker answered: the command may or may
 * not have taken effect. The client reconnects on its own; retry if the
 * command is safe to repeat.
 */
export class ConnectionLostError extends Error {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { ConnectionLostError } from "./errors.ts";
   * console.assert(new ConnectionLostError().name === "ConnectionLostError");
   * ```
   */
  constructor(message = "Connection lost before the broker answered", options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionLostError";
  }
}

/** The first connection attempt failed (refused, unreachable, timed out, or rejected by the broker). */
export class ConnectError extends Error {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { ConnectError } from "./errors.ts";
   * console.assert(new ConnectError("cannot connect").name === "ConnectError");
   * ```
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectError";
  }
}

/** A client-side buffer is full: the reconnect buffer or the outbound buffer. Nothing was sent. */
export class BufferFullError extends RangeError {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { BufferFullError } from "./errors.ts";
   * console.assert(new BufferFullError("full") instanceof RangeError);
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "BufferFullError";
  }
}

/** The client is draining or closing and takes no new subscriptions. */
export class DrainingError extends Error {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { DrainingError } from "./errors.ts";
   * console.assert(new DrainingError().name === "DrainingError");
   * ```
   */
  constructor(message = "Client is draining") {
    super(message);
    this.name = "DrainingError";
  }
}

/**
 * The broker sent bytes that are not valid protocol, or a reply out of turn;
 * the client drops the connection and reconnects.
 */
export class BrokerProtocolError extends SyntaxError {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { BrokerProtocolError } from "./errors.ts";
   * console.assert(new BrokerProtocolError("bad frame") instanceof SyntaxError);
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "BrokerProtocolError";
  }
}
