/**
 * The `ERR` codes of the wire protocol (docs/PROTOCOL.md) and whether each one
 * ends the connection.
 *
 * @module
 */

/** Every `ERR` code, mapped to whether the server closes the connection after it. */
export const ERROR_CODES = {
  UNKNOWN_COMMAND: false,
  BAD_ARGUMENT: false,
  BAD_DESTINATION: false,
  BAD_JSON: false,
  BAD_VERSION: false,
  BAD_HEADERS: false,
  DUPLICATE_SUB_ID: false,
  UNKNOWN_SUB_ID: false,
  UNKNOWN_MSG_ID: false,
  QUEUE_FULL: false,
  LIMIT: false,
  STORE_FAILED: false,
  NOT_DECLARED: false,
  DURABLE_IN_USE: false,
  DECLARE_CONFLICT: false,
  NOT_LEADER: false,
  UNAVAILABLE: false,
  AUTH_REQUIRED: false,
  PERMISSION_DENIED: false,
  AUTH_FAILED: true,
  AUTH_TIMEOUT: true,
  AUTH_REVOKED: true,
  BAD_FILTER: false,
  BAD_FRAME: true,
  CONTROL_LINE_TOO_LONG: true,
  PAYLOAD_TOO_LARGE: true,
  SLOW_CONSUMER: true,
  STALE_CONNECTION: true,
  TOO_MANY_CONNECTIONS: true,
  SHUTTING_DOWN: true,
  ADMIN_CLOSED: true,
  LEADER_CHANGED: true,
} as const;

/** One `ERR` code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Shows at most 32 bytes of bad input, quoted and escaped, for error texts and logs. */
export function snippet(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 32);
  let s = "";
  for (const b of head) {
    s += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
      ? String.fromCharCode(b)
      : b === 0x0d
      ? "\\r"
      : b === 0x0a
      ? "\\n"
      : `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return `"${s}${bytes.length > 32 ? "..." : ""}"`;
}
