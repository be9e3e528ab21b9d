/**
 * The Relayr client SDK: one API over TCP and WebSocket, on the server runtimes and in the browser.
 *
 * ```ts ignore
 * import { connect } from "@relayr/relayr/client";
 *
 * const client = await connect("localhost:9092"); // TCP; or "ws://localhost:8222/ws"
 * await client.publish("queue:orders", new TextEncoder().encode('{"order_id":"12345"}'));
 *
 * const sub = await client.subscribe("topic:events");
 * for await (const msg of sub) {
 *   console.log(new TextDecoder().decode(msg.body));
 *   await msg.ack();
 * }
 * ```
 *
 * - `publish` resolves with the broker's msg id; `publishNoWait` does not wait
 *   (the fast path: no promise, and no `OK` from the broker); `batch()`
 *   settles many publishes with one promise.
 * - `subscribe` returns an async iterable; `ack()`, `nack({ delayMs })` and
 *   `respond(body)` settle or answer a message.
 * - `request` does request/reply over `reply_to` + `correlation_id`.
 * - `declare` gives a topic retention; `subscribe` with `start` replays it,
 *   with `durable` resumes where a named subscription left off.
 * - The client reconnects with jittered exponential back-off, renews its
 *   subscriptions, and buffers publishes while reconnecting (bounded).
 * - Every broker `ERR` code has its own error class (see `errors.ts`).
 *
 * - `connect("ws://host:8222/ws")` goes over a WebSocket instead of TCP,
 *   with the same API; browsers import `web.ts` (served as `/client.js`).
 *
 * See docs/CLIENT.md for the full guide.
 *
 * @module
 */
export * from "./api.ts";
export { connect } from "./connect.ts";
export { type Dialer, tcpDialer, webSocketDialer } from "./dialer.ts";
export type { TlsOptions } from "./tls.ts";
export type { Conn, HttpServer, Listener, Runtime } from "../runtime/mod.ts";
export { type Codec, codecOf, CONTENT_TYPES, decodeBody, encodeBody, isCodec } from "./codec.ts";
export { type Address, parseAddress } from "./address.ts";
export { decodeEnvelope, encodeEnvelope, type Envelope } from "../protocol/mod.ts";
export { type FrameHandler, FrameParser, type MsgFrame } from "./parser.ts";
