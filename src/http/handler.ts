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
 * | `/api/cluster` | JSON: members, queue leaders, links (`--cluster-etcd`; else 404)  |
 * | `/`          | the console (dashboard); `/api` lists the API                       |
 * | `/api/stream`| live stats deltas (Server-Sent Events, src/http/stream.ts)          |
 * | `/api/...`   | admin actions and console lists (src/http/admin.ts)                 |
 * | `/client.js` | the browser client, one ES module (see static.ts)                   |
 *
 * With authentication on, all but `/`, `/healthz`, `/readyz` and the
 * built-in assets (`/client.js`) need a credential (access.ts).
 *
 * @module
 */
import { STATS_CLOSED_DEFAULT, STATS_LIMIT_DEFAULT, STATS_LIMIT_MAX } from "../config/mod.ts";
import type { ClusterNode } from "../cluster/mod.ts";
import type { GrpcStats } from "../grpc/mod.ts";
import type { Server, StatsOptions } from "../server/mod.ts";
import { refusal } from "./access.ts";
import { ASSETS, serveAsset } from "./static.ts";
import { EXPOSITION_CONTENT_TYPE } from "./exposition.ts";
import { renderMetrics } from "./metrics.ts";
import { adminRoutes } from "./admin.ts";
import { BadRequest, intParam } from "./params.ts";
import { StatsStream } from "./stream.ts";

/**
 * A request handler (asynchronous only when it checks a credential); `peer`
 * is the client's address, where failed logins are counted.
 */
export type Handler = (request: Request, peer?: string) => Response | Promise<Response>;

const INDEX = [
  "Relayr monitoring",
  "",
  "/            the console (dashboard)",
  "/healthz     200 while the process runs",
  "/readyz      200 when the server accepts connections, else 503",
  "/metrics     Prometheus metrics",
  "/api/stats   JSON stats; ?limit=N&offset=N (connections, queues, topics),",
  "             ?closed=N (closed connections), ?subs=false (no subscription lists)",
  '/client.js   the browser client: import { connect } from "/client.js"',
  "/ws          the wire protocol over WebSocket (unless --no-ws)",
  "/api/stream  live stats, one delta a second (Server-Sent Events)",
  "/api/cluster JSON: cluster members, queue leaders (?limit=N&offset=N), links",
  "/api/queues, /api/topics, /api/connections",
  "             sorted, filtered pages: ?q=&sort=&order=asc|desc&offset=&limit=",
  "POST   /api/queues/<name>/purge          remove the waiting messages",
  "GET    /api/queues/<name>/peek?n=10      the next messages, not taken",
  "POST   /api/queues/<name>/replay-dlq     move <name>.dlq back to <name>",
  "DELETE /api/queues/<name>                delete an empty queue",
  "DELETE /api/topics/<name>/durables/<d>   delete a durable",
  "POST   /api/connections/<id>/close       close a connection (ADMIN_CLOSED)",
  "",
].join("\n");

/**
 * Builds the handler over a live server (and its broker). `stream` serves
 * `/api/stream`; whoever puts the handler on a port closes it before the
 * port (the HTTP server waits for open responses). `cluster` serves
 * `/api/cluster` (with `--cluster-etcd`).
 */
export function createHandler(
  server: Server,
  grpc?: () => GrpcStats,
  stream: StatsStream = new StatsStream(server),
  cluster?: ClusterNode,
): Handler {
  const admin = adminRoutes(server);
  return (request, peer) => {
    const url = new URL(request.url);
    // Built-in assets (the client, the console's files) are code that holds
    // no data, so no credential; a no-cache ETag makes an upgrade show at once.
    const pub = ASSETS.get(url.pathname);
    if (pub !== undefined && (request.method === "GET" || request.method === "HEAD")) {
      return serveAsset(request, pub);
    }
    const auth = server.auth;
    if (auth === undefined) return dispatch(request, url);
    return refusal(request, url.pathname, auth, peer).then((no) => no ?? dispatch(request, url));
  };

  function dispatch(request: Request, url: URL): Response | Promise<Response> {
    const routed = admin(request, url);
    if (routed !== undefined) return routed;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, "method not allowed\n", { Allow: "GET, HEAD" });
    }
    try {
      switch (url.pathname) {
        case "/api":
          return text(200, INDEX);
        case "/api/stream":
          return stream.open();
        case "/healthz":
          return text(200, "ok\n");
        case "/readyz":
          return server.ready ? text(200, "ready\n") : text(503, "not ready\n");
        case "/metrics":
          return new Response(renderMetrics(server, grpc, cluster), {
            headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" },
          });
        case "/api/stats":
          return json(200, {
            ...server.stats(statsOptions(url.searchParams)),
            ...(grpc === undefined ? {} : { grpc: grpc() }),
          });
        case "/api/cluster":
          return cluster === undefined
            ? json(404, { error: "not clustered: this broker runs without --cluster-etcd" })
            : json(200, cluster.stats(statsOptions(url.searchParams)));
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
