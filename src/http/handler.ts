/**
 * The monitoring HTTP handler: a pure `(Request) => Response`, testable
 * without a socket (`handler(new Request("http://x/metrics"))`). Only the
 * runtime adapter puts it on a port.
 *
 * | path         | answer                                                              |
 * | ------------ | ------------------------------------------------------------------- |
 * | `/healthz`   | 200 while the process runs                                          |
 * | `/readyz`    | 200 when the server accepts connections, 503 while starting/stopping |
 * | `/metrics`   | Prometheus text exposition                                          |
 * | `/api/stats` | JSON: server, connections, queues, topics, closed connections       |
 * | `/client.js` | the browser client, one ES module (see static.ts)                   |
 *
 * With authentication on, all but `/`, `/healthz`, `/readyz` and the
 * built-in assets (`/client.js`) need a credential (access.ts).
 *
 * @module
 */
import { STATS_CLOSED_DEFAULT, STATS_LIMIT_DEFAULT, STATS_LIMIT_MAX } from "../config/mod.ts";
import type { GrpcStats } from "../grpc/mod.ts";
import type { Server, StatsOptions } from "../server/mod.ts";
import { refusal } from "./access.ts";
import { ASSETS, serveAsset } from "./static.ts";
import { EXPOSITION_CONTENT_TYPE } from "./exposition.ts";
import { renderMetrics } from "./metrics.ts";

/** A request handler (asynchronous only when it checks a credential). */
export type Handler = (request: Request) => Response | Promise<Response>;

const INDEX = [
  "Relayr monitoring",
  "",
  "/healthz     200 while the process runs",
  "/readyz      200 when the server accepts connections, else 503",
  "/metrics     Prometheus metrics",
  "/api/stats   JSON stats; ?limit=N&offset=N (connections, queues, topics),",
  "             ?closed=N (closed connections), ?subs=false (no subscription lists)",
  '/client.js   the browser client: import { connect } from "/client.js"',
  "/ws          the wire protocol over WebSocket (unless --no-ws)",
  "",
].join("\n");

/** A bad query parameter; answered with 400. */
class BadRequest extends RangeError {}

/** Builds the handler over a live server (and its broker). */
export function createHandler(server: Server, grpc?: () => GrpcStats): Handler {
  return (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, "method not allowed\n", { Allow: "GET, HEAD" });
    }
    const url = new URL(request.url);
    // Built-in assets are public code (the client holds no secret), so no credential.
    const asset = ASSETS.get(url.pathname);
    if (asset !== undefined) return serveAsset(request, asset);
    const auth = server.auth;
    if (auth === undefined) return route(url);
    return refusal(request, url.pathname, auth).then((no) => no ?? route(url));
  };

  function route(url: URL): Response {
    try {
      switch (url.pathname) {
        case "/":
          return text(200, INDEX);
        case "/healthz":
          return text(200, "ok\n");
        case "/readyz":
          return server.ready ? text(200, "ready\n") : text(503, "not ready\n");
        case "/metrics":
          return new Response(renderMetrics(server, grpc), {
            headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" },
          });
        case "/api/stats":
          return json(200, {
            ...server.stats(statsOptions(url.searchParams)),
            ...(grpc === undefined ? {} : { grpc: grpc() }),
          });
        default:
          return text(404, `no such endpoint ${JSON.stringify(url.pathname)}; try /\n`);
      }
    } catch (e) {
      if (e instanceof BadRequest) return json(400, { error: e.message });
      throw e;
    }
  }
}

function statsOptions(q: URLSearchParams): StatsOptions {
  return {
    limit: intParam(q, "limit", STATS_LIMIT_DEFAULT, 1, STATS_LIMIT_MAX),
    offset: intParam(q, "offset", 0, 0, Number.MAX_SAFE_INTEGER),
    closed: intParam(q, "closed", STATS_CLOSED_DEFAULT, 0, STATS_CLOSED_DEFAULT),
    subs: boolParam(q, "subs", true),
  };
}

function intParam(q: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const raw = q.get(name);
  if (raw === null) return def;
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new BadRequest(
      `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

function boolParam(q: URLSearchParams, name: string, def: boolean): boolean {
  const raw = q.get(name);
  if (raw === null) return def;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new BadRequest(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** A plain-text answer, never cached. */
export function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}
