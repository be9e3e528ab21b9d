/**
 * The WebSocket front: `/ws` on the HTTP port (and any path on `--ws-port`)
 * upgrades to a WebSocket that carries the wire protocol unchanged. The
 * socket becomes a `Conn` behind the runtime seam and goes to the same
 * `Server` as TCP sockets; this file only decides who may upgrade.
 *
 * Cross-site WebSocket hijacking: a browser sends cookies and
 * `Origin` with every WebSocket handshake but lets any page open one, so the
 * handshake is refused (403) unless its `Origin` is the broker's own (same
 * host and port as the `Host` header) or listed in `--ws-allowed-origins`. A
 * handshake without `Origin` comes from a non-browser client, which could
 * send any header it likes anyway, and is let in.
 *
 * @module
 */
import { CONTROL_LINE_BYTES_MAX, WS_MESSAGE_BYTES_MIN } from "../config/mod.ts";
import type { Conn, WebSocketUpgrade } from "../runtime/mod.ts";
import { text } from "./handler.ts";

/** WebSocket settings of the broker. */
export interface WebSocketOptions {
  /** Origins allowed besides the broker's own (`scheme://host[:port]`), or `*` for any. */
  allowedOrigins: readonly string[];
  /** Largest inbound WebSocket message. */
  messageBytesMax: number;
  /** Takes each opened socket (the server's `adopt`). */
  onConn: (conn: Conn) => void;
  /**
   * Set: every upgrade is refused (403) with this text. With TLS on, plain
   * connections are refused on every listener, so a plain-HTTP `/ws` too.
   */
  refusal?: string;
}

/** The path of the WebSocket endpoint on the HTTP port. */
export const WS_PATH = "/ws";

/** Largest WebSocket message for a payload limit: see `WS_MESSAGE_BYTES_MIN`. */
export function wsMessageBytesMax(payloadBytesMax: number): number {
  return Math.max(WS_MESSAGE_BYTES_MIN, 2 * payloadBytesMax + CONTROL_LINE_BYTES_MAX);
}

/**
 * Parses `--ws-allowed-origins`: a comma-separated list of origins, each
 * normalised (`HTTPS://App.Example.com:443` is `https://app.example.com`);
 * throws `TypeError` naming a bad entry.
 */
export function parseAllowedOrigins(list: string | undefined): string[] {
  if (list === undefined) return [];
  const out: string[] = [];
  for (const raw of list.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    if (raw === "*" || raw === "null") {
      out.push(raw);
      continue;
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new TypeError(`${JSON.stringify(raw)} is not an origin (scheme://host[:port])`);
    }
    if (url.origin === "null" || url.pathname !== "/" || url.search !== "" || url.hash !== "") {
      throw new TypeError(`${JSON.stringify(raw)} is not an origin (scheme://host[:port])`);
    }
    out.push(url.origin);
  }
  return out;
}

/** Whether a WebSocket handshake may proceed, by its `Origin` (see the module comment). */
export function originAllowed(request: Request, allowed: readonly string[]): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return true;
  if (allowed.includes("*")) return true;
  if (origin === "null") return allowed.includes("null");
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const host = request.headers.get("host");
  if (host !== null && url.host === host.toLowerCase()) return true;
  return allowed.includes(url.origin);
}

/**
 * Answers a request for the WebSocket endpoint: 426 without an upgrade, 403
 * for a foreign origin, else the upgrade (the opened socket goes to `onConn`).
 */
export function upgradeRequest(
  request: Request,
  upgrade: WebSocketUpgrade,
  options: WebSocketOptions,
): Response {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return text(426, "this endpoint speaks WebSocket: send Upgrade: websocket\n", {
      upgrade: "websocket",
    });
  }
  if (options.refusal !== undefined) return text(403, `${options.refusal}\n`);
  if (!originAllowed(request, options.allowedOrigins)) {
    return text(403, "origin not allowed (see --ws-allowed-origins)\n");
  }
  if (request.method !== "GET") return text(405, "method not allowed\n", { Allow: "GET" });
  return upgrade(request, options.onConn);
}
