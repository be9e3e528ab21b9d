/**
 * Limits and defaults of the client, `UPPER_SNAKE_CASE`, unit last. Broker
 * limits the client mirrors come from `src/config/` (through its `mod.ts`).
 *
 * @module
 */

/** Default port of the broker. */
export const DEFAULT_PORT = 9092;
/** Default address of the broker. */
export const DEFAULT_SERVER = "localhost:9092";

/** A server control line longer than this is a protocol error; bounds one unterminated line (INFO JSON may be longer than a MSG line). */
export const SERVER_LINE_BYTES_MAX = 16 * 1024;
/** Largest MSG payload accepted before the broker told us its `max_payload`. */
export const SERVER_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;

/** Outbound bytes above which the buffer is written at once instead of at the end of the tick. */
export const FLUSH_BYTES_HIGH = 64 * 1024;
/** Outbound bytes waiting for the socket above which `publish` fails with `BufferFullError` instead of growing memory. */
export const OUTBOUND_BYTES_MAX = 64 * 1024 * 1024;

/** Default bytes of publishes kept while reconnecting; more fail with `BufferFullError`. */
export const RECONNECT_BUFFER_BYTES_MAX = 8 * 1024 * 1024;
/** Default first reconnect delay; it doubles per attempt. */
export const RECONNECT_DELAY_MS = 100;
/** Default longest reconnect delay. */
export const RECONNECT_DELAY_MS_MAX = 2_000;
/** Default reconnect attempts before the client gives up and closes (about 4 minutes at the longest delay). */
export const RECONNECT_ATTEMPTS_MAX = 120;
/** Default time one TCP connect plus handshake may take. */
export const CONNECT_TIMEOUT_MS = 5_000;

/** Default interval of the client's keep-alive PINGs. */
export const CLIENT_PING_INTERVAL_MS = 30_000;
/** Unanswered keep-alive PINGs after which the client drops the connection and reconnects. */
export const CLIENT_PINGS_OUTSTANDING_MAX = 2;

/** Default messages one subscription buffers before it drops and reports a slow consumer. */
export const SUB_BUFFER_MESSAGES_MAX = 65_536;
/** Default payload bytes one subscription buffers before it drops and reports a slow consumer. */
export const SUB_BUFFER_BYTES_MAX = 64 * 1024 * 1024;

/** Default time `request()` waits for its reply. */
export const REQUEST_TIMEOUT_MS = 5_000;
/** Longest round trip `close()` waits for, so commands already sent get their answers. */
export const CLOSE_FLUSH_TIMEOUT_MS = 2_000;
/** Default time `drain()` waits for in-flight messages before it closes anyway. */
export const DRAIN_TIMEOUT_MS = 30_000;
/** Status events buffered per `status()` iterator that nobody reads; older ones are dropped. */
export const STATUS_EVENTS_BUFFERED_MAX = 256;
/**
 * Deliveries one explicit-ack subscription's ack window holds (a power of 2;
 * 9 bytes each): past it, e.g. behind one message held unacked for long, its
 * acks go by id until the connection ends (see `ack_window.ts`).
 */
export const ACK_WINDOW_ENTRIES_MAX = 65_536;
