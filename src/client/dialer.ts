/**
 * Where a client's connections come from: a TCP socket through the runtime
 * seam (Deno, Bun), or a standard `WebSocket` (browsers, Deno, Bun). The
 * client above sees a `Conn` either way, so every feature (subscribe
 * iterators, acks, request/reply, reconnect) works the same on both.
 *
 * This file imports no runtime code (the TCP dialer is handed its runtime),
 * so the browser face `web.ts` can take it.
 *
 * @module
 */
import { WS_SEND_BYTES_MAX } from "../config/limits.ts";
import type { Conn, DialTls, Runtime } from "../runtime/mod.ts";
import { webSocketConn } from "../websocket/mod.ts";
import type { Address } from "./address.ts";

/** Opens connections to one broker. */
export interface Dialer {
  /** The broker, for messages and `client.server` (`host:port` or the WebSocket URL). */
  readonly server: string;
  /** A new connection; rejects when it cannot be made. */
  dial(): Promise<Conn>;
}

/** Largest message the broker sends: it splits its writes at `WS_SEND_BYTES_MAX`. */
const WS_INBOUND_MESSAGE_BYTES_MAX = WS_SEND_BYTES_MAX;

/** Whether `address` is a WebSocket URL (`ws://` or `wss://`). */
export function isWebSocketUrl(address: string): boolean {
  return /^wss?:\/\//i.test(address.trim());
}

/** Dials TCP through the runtime seam; with `tls`, TLS over it. */
export function tcpDialer(address: Address, runtime: Runtime, tls?: DialTls): Dialer {
  const { hostname, port } = address;
  return {
    server: `${hostname}:${port}`,
    dial: () => runtime.connect({ hostname, port, tls }),
  };
}

/**
 * Dials a WebSocket with the global `WebSocket` (browsers, Deno, Bun).
 * Throws `TypeError` on a URL that is not `ws://` or `wss://`.
 */
export function webSocketDialer(url: string): Dialer {
  const parsed = new URL(url.trim());
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new TypeError(`Not a WebSocket URL ${JSON.stringify(url)} (ws:// or wss://)`);
  }
  const server = parsed.href;
  return {
    server,
    dial: () =>
      new Promise<Conn>((resolve, reject) => {
        let ws: WebSocket;
        try {
          ws = new WebSocket(server);
        } catch (err) {
          return reject(err);
        }
        const secure = parsed.protocol === "wss:";
        const conn = webSocketConn(ws, server, WS_INBOUND_MESSAGE_BYTES_MAX, secure);
        const opened = () => {
          ws.removeEventListener("close", failed);
          resolve(conn);
        };
        // Before `open`, a failure is a close (the error event says nothing more).
        const failed = (e: Event) => {
          ws.removeEventListener("open", opened);
          const code = (e as CloseEvent).code;
          reject(new Error(`WebSocket to ${server} failed (close code ${code})`));
        };
        ws.addEventListener("open", opened, { once: true });
        ws.addEventListener("close", failed, { once: true });
      }),
  };
}
