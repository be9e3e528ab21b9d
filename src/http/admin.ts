/**
 * The console's API: the admin actions (one call each into the broker or the
 * server, which hold the one implementation) and the sorted, filtered, paged
 * lists the dashboard scrolls through. The CLI (`relayr queue purge` ...)
 * and the page call exactly these routes.
 *
 * | route                                          | action                                  |
 * | ---------------------------------------------- | --------------------------------------- |
 * | `POST /api/queues/<name>/purge`                | `Broker.purgeQueue`                     |
 * | `GET /api/queues/<name>/peek?n=10`             | `Broker.peekQueue`                      |
 * | `POST /api/queues/<name>/replay-dlq?max=N`     | `Broker.replayDeadLetters`              |
 * | `DELETE /api/queues/<name>`                    | `Broker.deleteQueue`                    |
 * | `DELETE /api/topics/<name>/durables/<durable>` | `Broker.deleteDurable`                  |
 * | `POST /api/connections/<id>/close`             | `Server.closeConnection` (ADMIN_CLOSED) |
 * | `GET /api/queues`, `/api/topics`, `/api/connections` | lists: `?q=&sort=&order=&offset=&limit=` |
 * | `GET /api/console`                             | whether auth is on, limits, version     |
 *
 * Who may call them is decided before they run, in access.ts (`admin` for
 * actions, with auth on); `authorize` here refuses cross-site requests.
 *
 * In a cluster an action on a queue or a declared topic runs only on the node
 * that serves it (`Routing.placeOf`): on another node it is refused, `421`
 * with `code: "NOT_LEADER"` and the `leader`'s node id, or `503` with
 * `code: "UNAVAILABLE"` between leaders, before anything is done, so a purge
 * never answers success while the leader's queue stays as it was.
 *
 * @module
 */
import { AdminError, BrokerError, queueName, type QueueStats, topicName } from "../broker/mod.ts";
import { CONSOLE_ROWS_MAX, PEEK_MESSAGES_MAX, STREAM_INTERVAL_MS } from "../config/mod.ts";
import type { Server } from "../server/mod.ts";
import { BadRequest, intParam } from "./params.ts";

/** A route's answer: a Response now, or once the store has what the action wrote. */
type Answer = Response | Promise<Response>;

export function authorize(request: Request): Response | undefined {
  const site = request.headers.get("sec-fetch-site");
  const origin = request.headers.get("origin");
  const host = request.headers.get("host");
  const crossSite = (site !== null && site !== "same-origin" && site !== "none") ||
    (origin !== null && host !== null && originHost(origin) !== host);
  if (crossSite) return json(403, { error: "a cross-site request may not act on the broker" });
  return undefined;
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

/** The console API over `server`: answers its routes, undefined for any other path. */
export function adminRoutes(server: Server): (request: Request, url: URL) => Answer | undefined {
  const broker = server.broker;
  return (request, url) => {
    const path = url.pathname;
    if (!path.startsWith("/api/") || path === "/api/stats" || path === "/api/stream") return;
    const method = request.method;
    const q = url.searchParams;
    try {
      const parts = path.slice(5).split("/").map(decodeSegment);
      const [kind, name, action, sub] = parts;
      if (parts.length === 1) {
        if (method !== "GET" && method !== "HEAD") return notAllowed("GET, HEAD");
        switch (kind) {
          case "queues":
            return json(200, queueList(server, q));
          case "topics":
            return json(200, list(broker.topicStats(all).list, q, ["name"]));
          case "connections":
            return json(
              200,
              list(server.connectionStats({ ...all, subs: true }).list, q, CONNECTION_KEYS),
            );
          case "console":
            return json(200, {
              auth: server.auth === undefined ? "open" : "on",
              // Open even with auth on: the version only to whoever may read the rest.
              version: server.auth === undefined ? server.serverStats().version : null,
              stream_interval_ms: STREAM_INTERVAL_MS,
              peek_max: PEEK_MESSAGES_MAX,
              rows_max: CONSOLE_ROWS_MAX,
            });
        }
        return;
      }
      if (kind === "queues" && name !== undefined) {
        if (parts.length === 2) {
          if (method !== "DELETE") return notAllowed("DELETE");
          return act(request, () => {
            broker.deleteQueue(name);
            return { queue: name, deleted: true };
          }, queueName(name));
        }
        if (parts.length !== 3) return;
        switch (action) {
          case "peek": {
            if (method !== "GET") return notAllowed("GET");
            const n = intParam(q, "n", 10, 1, PEEK_MESSAGES_MAX);
            // Through `act` for `authorize`: a peek changes nothing but shows message bodies.
            return act(
              request,
              () => ({ queue: name, messages: broker.peekQueue(name, n) }),
              queueName(name),
            );
          }
          case "purge":
            if (method !== "POST") return notAllowed("POST");
            return act(
              request,
              () => ({ queue: name, purged: broker.purgeQueue(name) }),
              queueName(name),
            );
          case "replay-dlq": {
            if (method !== "POST") return notAllowed("POST");
            const max = intParam(q, "max", Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER);
            return act(
              request,
              () => ({ queue: name, ...broker.replayDeadLetters(name, max) }),
              queueName(name),
            );
          }
        }
        return;
      }
      if (kind === "topics" && action === "durables" && parts.length === 4) {
        if (method !== "DELETE") return notAllowed("DELETE");
        return act(request, async () => {
          await broker.deleteDurable(name, sub);
          return { topic: name, durable: sub, deleted: true };
        }, topicName(name));
      }
      if (kind === "connections" && action === "close" && parts.length === 3) {
        if (method !== "POST") return notAllowed("POST");
        const id = /^[1-9][0-9]{0,15}$/.test(name) ? Number(name) : NaN;
        if (!Number.isSafeInteger(id)) {
          throw new BadRequest(`bad connection id ${JSON.stringify(name)}`);
        }
        return act(request, () => {
          server.closeConnection(id);
          return { id, closed: true, reason: "ADMIN_CLOSED" };
        });
      }
      return;
    } catch (e) {
      return refusal(e);
    }
  };

  /**
   * Runs an action after `authorize` (on `dest`: in a cluster, only where it
   * is served), answering once what it wrote is as durable as a publish would
   * be (under `--fsync always`, on the device).
   */
  async function act(request: Request, run: () => unknown, dest?: string): Promise<Response> {
    const denied = authorize(request);
    if (denied !== undefined) return denied;
    try {
      const away = dest === undefined ? undefined : await server.routing?.placeOf?.(dest);
      if (away !== undefined) {
        return json(away.code === "NOT_LEADER" ? 421 : 503, {
          error: away.message,
          code: away.code,
          ...(away.leader === undefined ? {} : { leader: away.leader }),
        });
      }
      const result = await run();
      const store = broker.options.store;
      if (store.waitsForSync) await store.synced();
      return json(200, result);
    } catch (e) {
      return refusal(e);
    }
  }
}

const all = { offset: 0, limit: Number.MAX_SAFE_INTEGER };

/** A queue row of the console: its stats and its DLQ's depth (null: it has none now). */
type QueueRow = QueueStats & { dlq_depth: number | null };

/**
 * The queues page. Sorted by name (the console's default), the order and the
 * filter need only the names, and stats are built for the page's rows alone:
 * at 10,000 queues a page cost ~30 ms when every queue's stats were built.
 */
function queueList(server: Server, q: URLSearchParams): ListPage<QueueRow> {
  const queues = server.broker.queues;
  const row = (s: QueueStats): QueueRow => ({
    ...s,
    // Its own dead-letter queue (the `dlq` setting; `dlq:none` has none).
    dlq_depth: s.settings.dlq === null ? null : queues.get(s.settings.dlq)?.store.ready ?? null,
  });
  if ((q.get("sort") ?? "name") !== "name") {
    return list(server.broker.queueStats(all).list.map(row), q, ["name"]);
  }
  const names = list([...queues.keys()].map((name) => ({ name })), q, ["name"]);
  return { ...names, list: names.list.map(({ name }) => row(queues.get(name)!.stats())) };
}
const CONNECTION_KEYS = ["id", "client_id", "name", "remote_addr"] as const;

/** Sorted, filtered and paged rows: what a virtual table asks for as it scrolls. */
export interface ListPage<T> {
  /** Rows before the filter. */
  total: number;
  /** Rows that pass the filter. */
  matched: number;
  offset: number;
  list: T[];
}

/**
 * The rows of `rows` that `q` asks for: `q` (a case-insensitive substring
 * of one of `keys`), `sort` (a field of the rows; default the first key),
 * `order` (`asc`|`desc`), `offset`, `limit` (up to `CONSOLE_ROWS_MAX`).
 */
export function list<T extends object>(
  rows: T[],
  q: URLSearchParams,
  keys: readonly (keyof T)[],
): ListPage<T> {
  const filter = (q.get("q") ?? "").toLowerCase();
  const sort = q.get("sort") ?? String(keys[0]);
  const order = q.get("order") ?? "asc";
  if (order !== "asc" && order !== "desc") throw new BadRequest("order must be asc or desc");
  if (rows.length > 0 && !(sort in rows[0])) {
    throw new BadRequest(`cannot sort by ${JSON.stringify(sort)}`);
  }
  const offset = intParam(q, "offset", 0, 0, Number.MAX_SAFE_INTEGER);
  const limit = intParam(q, "limit", 100, 1, CONSOLE_ROWS_MAX);
  const hit = filter === ""
    ? rows
    : rows.filter((r) => keys.some((k) => String(r[k] ?? "").toLowerCase().includes(filter)));
  const field = sort as keyof T;
  const sign = order === "asc" ? 1 : -1;
  const sorted = [...hit].sort((a, b) => sign * compare(a[field], b[field]));
  return {
    total: rows.length,
    matched: hit.length,
    offset,
    list: sorted.slice(offset, offset + limit),
  };
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (Array.isArray(a) && Array.isArray(b)) return a.length - b.length;
  const x = String(a ?? "");
  const y = String(b ?? "");
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A path segment, decoded (`queue%3Aorders` is `queue:orders`). */
function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new BadRequest(`bad path segment ${JSON.stringify(s)}`);
  }
}

const STATUS: Record<string, number> = { NOT_FOUND: 404, CONFLICT: 409, BAD_REQUEST: 400 };

/** The answer to a refused action; anything else is a bug and is rethrown. */
function refusal(e: unknown): Response {
  if (e instanceof AdminError) return json(STATUS[e.kind], { error: e.message, code: e.kind });
  if (e instanceof BadRequest) return json(400, { error: e.message, code: "BAD_REQUEST" });
  if (e instanceof BrokerError) {
    // In a cluster a store refuses a write on a node that lost the queue's lead meanwhile.
    const status = e.code === "NOT_LEADER"
      ? 421
      : e.code === "STORE_FAILED" || e.code === "UNAVAILABLE"
      ? 503
      : 409;
    return json(status, { error: e.message, code: e.code });
  }
  throw e;
}

function notAllowed(allow: string): Response {
  return new Response(`method not allowed; use ${allow}\n`, {
    status: 405,
    headers: { allow, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

/** A compact JSON answer (the console's lists can be long; nobody reads them raw). */
export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}
