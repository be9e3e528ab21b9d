/**
 * The Relayr client for browsers: the same client as `mod.ts` over a
 * WebSocket, with no runtime code (nothing of the runtime seam anywhere in
 * its imports), bundled into the `/client.js` the broker serves.
 *
 * ```js ignore
 * import { connect } from "/client.js";
 *
 * const client = await connect(); // ws(s)://<this page's host>/ws
 * const sub = await client.subscribe("topic:events");
 * await client.publish("topic:events", "hello");
 * for await (const msg of sub) console.log(msg.text());
 * ```
 *
 * @module
 */
import { type Client, type ConnectOptions, openClient } from "./client.ts";
import { isWebSocketUrl, webSocketDialer } from "./dialer.ts";

export * from "./api.ts";

/**
 * Connects to a broker over a WebSocket. `url` defaults to `/ws` on the host
 * that served the page (`wss:` on an `https:` page); a path alone (`/ws`) is
 * taken relative to the page too. Browsers cannot open TCP sockets, so a
 * `host:port` address is a `TypeError`.
 */
export function connect(url?: string, options: ConnectOptions = {}): Promise<Client> {
  if (options.keyFile !== undefined) {
    // A page has no files: a token or a user and password authenticate it.
    return Promise.reject(
      new TypeError("keyFile is not available in a browser: use token or user"),
    );
  }
  return openClient(webSocketDialer(resolveUrl(url)), options);
}

/** A full `ws(s)://` URL for `url`, relative to the page when there is one. */
export function resolveUrl(url: string | undefined): string {
  if (url !== undefined && isWebSocketUrl(url)) return url;
  const page = (globalThis as { location?: { href: string } }).location?.href;
  if (url !== undefined && !url.startsWith("/")) {
    throw new TypeError(
      `Browsers connect over WebSocket: use ws://host:port/ws or wss://..., not ${
        JSON.stringify(url)
      }`,
    );
  }
  if (page === undefined) throw new TypeError("No page to connect relative to: pass a ws:// URL");
  const u = new URL(url ?? "/ws", page);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}
