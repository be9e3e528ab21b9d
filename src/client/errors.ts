/**
 * Every error the client raises, in one registry.
 *
 * Broker errors (`ERR <CODE> <text>`) become one class per code, all extending
 * {@linkcode BrokerError}, so callers can catch one code
 * (`err instanceof QueueFullError`) or all of them (`err instanceof BrokerError`).
 * The style guide asks for the nearest built-in as a base class; we take one
 * common base instead because "any broker refusal" is the check callers write
 * most, and `code` carries the finer meaning. One explicit class per code
 * (rather than a factory) keeps the types explicit for `deno doc` and JSR.
 *
 * @module
 */

/** Base of every broker `ERR` reply: `code` is the wire code, `fatal` whether the broker closed the connection. */
export class BrokerError extends Error {
  /** The `CODE` token of the `ERR` line, e.g. `"QUEUE_FULL"`. */
  readonly code: string;
  /** True when the broker closes the connection after this error. */
  readonly fatal: boolean;
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { BrokerError } from "./errors.ts";
   * const err = new BrokerError("SOME_CODE", "something went wrong", false);
   * console.assert(err.code === "SOME_CODE" && !err.fatal);
   * ```
   */
  constructor(code: string, text: string, fatal: boolean) {
    super(text === "" ? code : `${code}: ${text}`);
    this.name = "BrokerError";
    this.code = code;
    this.fatal = fatal;
  }
}

/** `UNKNOWN_COMMAND`: the broker did not know the verb. */
export class UnknownCommandError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNKNOWN_COMMAND", text, false);
    this.name = "UnknownCommandError";
  }
}

/** `BAD_ARGUMENT`: a missing, extra, malformed, out-of-range or unknown option or argument. */
export class BadArgumentError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_ARGUMENT", text, false);
    this.name = "BadArgumentError";
  }
}

/** `BAD_DESTINATION`: not `queue:`/`topic:`, a bad name, too long, or a misplaced wildcard. */
export class BadDestinationError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_DESTINATION", text, false);
    this.name = "BadDestinationError";
  }
}

/** `BAD_JSON`: the `CONNECT` argument is not a JSON object. */
export class BadJsonError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_JSON", text, false);
    this.name = "BadJsonError";
  }
}

/** `BAD_VERSION`: the broker does not speak the requested protocol version. */
export class BadVersionError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_VERSION", text, false);
    this.name = "BadVersionError";
  }
}

/** `BAD_HEADERS`: the header block is malformed or larger than 64 KiB. */
export class BadHeadersError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_HEADERS", text, false);
    this.name = "BadHeadersError";
  }
}

/** `DUPLICATE_SUB_ID`: the subscription id is already used on this connection. */
export class DuplicateSubIdError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("DUPLICATE_SUB_ID", text, false);
    this.name = "DuplicateSubIdError";
  }
}

/** `UNKNOWN_SUB_ID`: `UNSUB` of an id that is not in use. */
export class UnknownSubIdError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNKNOWN_SUB_ID", text, false);
    this.name = "UnknownSubIdError";
  }
}

/** `UNKNOWN_MSG_ID`: `ACK`/`NACK` of a message not in flight to this connection. */
export class UnknownMsgIdError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("UNKNOWN_MSG_ID", text, false);
    this.name = "UnknownMsgIdError";
  }
}

/** `QUEUE_FULL`: the queue is at its limit; the message was not accepted. */
export class QueueFullError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("QUEUE_FULL", text, false);
    this.name = "QueueFullError";
  }
}

/** `LIMIT`: too many subscriptions on the connection or destinations on the broker. */
export class LimitError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("LIMIT", text, false);
    this.name = "LimitError";
  }
}

/**
 * `STORE_FAILED`: the broker could not make the message durable: treat it as
 * not sent (it may still be delivered); or a `DECLARE` or durable position
 * could not be stored (it holds in memory and is written again with the next).
 */
export class StoreFailedError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("STORE_FAILED", text, false);
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
export class NotDeclaredError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("NOT_DECLARED", text, false);
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
export class DurableInUseError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("DURABLE_IN_USE", text, false);
    this.name = "DurableInUseError";
  }
}

/** `BAD_FRAME` (fatal): the size token or the payload line end was wrong. */
export class BadFrameError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("BAD_FRAME", text, true);
    this.name = "BadFrameError";
  }
}

/** `CONTROL_LINE_TOO_LONG` (fatal): a control line over 4096 bytes. */
export class ControlLineTooLongError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("CONTROL_LINE_TOO_LONG", text, true);
    this.name = "ControlLineTooLongError";
  }
}

/** `PAYLOAD_TOO_LARGE` (fatal): a payload over the broker's `max_payload` (raised before sending when the client can tell). */
export class PayloadTooLargeError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("PAYLOAD_TOO_LARGE", text, true);
    this.name = "PayloadTooLargeError";
  }
}

/** `SLOW_CONSUMER` (fatal): the client read too slowly and was disconnected. */
export class SlowConsumerError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("SLOW_CONSUMER", text, true);
    this.name = "SlowConsumerError";
  }
}

/** `STALE_CONNECTION` (fatal): the peer did not answer PINGs. */
export class StaleConnectionError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("STALE_CONNECTION", text, true);
    this.name = "StaleConnectionError";
  }
}

/** `TOO_MANY_CONNECTIONS` (fatal): the broker is at its connection limit. */
export class TooManyConnectionsError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("TOO_MANY_CONNECTIONS", text, true);
    this.name = "TooManyConnectionsError";
  }
}

/** `SHUTTING_DOWN` (fatal): the broker is stopping. */
export class ShuttingDownError extends BrokerError {
  /**
   * Makes the error from the broker's text.
   *
   * @param text the human-readable text after the code on the `ERR` line
   */
  constructor(text = "") {
    super("SHUTTING_DOWN", text, true);
    this.name = "ShuttingDownError";
  }
}

/** The registry: wire code to class. */
export const BROKER_ERRORS: Readonly<Record<string, new (text?: string) => BrokerError>> = {
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
  BAD_FRAME: BadFrameError,
  CONTROL_LINE_TOO_LONG: ControlLineTooLongError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  SLOW_CONSUMER: SlowConsumerError,
  STALE_CONNECTION: StaleConnectionError,
  TOO_MANY_CONNECTIONS: TooManyConnectionsError,
  SHUTTING_DOWN: ShuttingDownError,
};

/**
 * Fatal codes the broker sends on its own, not as the answer to a command.
 * They must not be matched to the oldest pending command, or every later
 * reply would be matched to the wrong one.
 */
export const UNSOLICITED_CODES: ReadonlySet<string> = new Set([
  "SLOW_CONSUMER",
  "STALE_CONNECTION",
  "TOO_MANY_CONNECTIONS",
  "SHUTTING_DOWN",
]);

/**
 * Turns an `ERR` line into its typed error; an unknown code (a newer broker)
 * becomes a plain non-fatal `BrokerError`.
 *
 * @example
 * ```ts
 * import { brokerError, QueueFullError } from "./errors.ts";
 * const err = brokerError("QUEUE_FULL", "queue:orders is full");
 * console.assert(err instanceof QueueFullError);
 * ```
 */
export function brokerError(code: string, text: string): BrokerError {
  const cls = Object.hasOwn(BROKER_ERRORS, code) ? BROKER_ERRORS[code] : undefined;
  return cls ? new cls(text) : new BrokerError(code, text, false);
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

/** The broker sent bytes that are not valid protocol; the client drops the connection and reconnects. */
export class ProtocolError extends SyntaxError {
  /**
   * Makes the error.
   *
   * @example
   * ```ts
   * import { ProtocolError } from "./errors.ts";
   * console.assert(new ProtocolError("bad frame") instanceof SyntaxError);
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}
