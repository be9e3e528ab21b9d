/**
 * The WebSocket transport (conn.ts): a `Conn` over a standard WebSocket,
 * shared by the broker's runtime adapters (src/runtime/) and the client,
 * browser face included. Web APIs only, so both sides may import it.
 *
 * @module
 */
export {
  closeError,
  MessageInbox,
  webSocketConn,
  WS_CLOSE_NORMAL,
  WS_CLOSE_TOO_BIG,
} from "./conn.ts";
