/**
 * Who may read the monitoring endpoints and act through the admin API, in
 * one place. With auth off everything is open, as before. With auth
 * on, `/healthz`, `/readyz` and the index stay open (probes carry no
 * credentials); everything else needs `Authorization: Bearer <auth-token>`
 * (the token holder has every role), or `Basic` with the `user:password` of
 * a password user with the `monitor` (or `admin`) role. Key and certificate
 * users have no HTTP credential of their own; a monitoring system uses a
 * password user (docs/SECURITY.md).
 *
 * @module
 */
import { Action, type Authenticator, permissionsOf, type Role } from "../auth/mod.ts";

/**
 * Open paths: the probes, and the console's page, files and auth question
 * (`/api/console`), which hold no data: the page asks for a credential and
 * sends it with each call.
 */
const OPEN = new Set([
  "/",
  "/index.html",
  "/dashboard.js",
  "/dashboard.css",
  "/healthz",
  "/readyz",
  "/api",
  "/api/console",
]);

/**
 * The role a request needs; undefined: open to all. The admin actions
 * (src/http/admin.ts: every `POST` and `DELETE`, and a peek, which shows
 * message bodies) need `admin`; reads need `monitor`.
 */
export function roleFor(pathname: string, method = "GET"): Role | undefined {
  if (OPEN.has(pathname)) return undefined;
  if (method === "POST" || method === "DELETE" || pathname.endsWith("/peek")) return "admin";
  return "monitor";
}

/**
 * The destination an admin action names in its path (`/api/queues/<q>/...`,
 * `/api/topics/<t>/...`), with its prefix; undefined for one that names none
 * (closing a connection) or an undecodable one (the route answers 400).
 */
export function actionDestination(pathname: string): string | undefined {
  const m = /^\/api\/(queues|topics)\/([^/]+)/.exec(pathname);
  if (m === null) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(m[2]);
  } catch {
    return undefined;
  }
  const prefix = m[1] === "queues" ? "queue:" : "topic:";
  return name.startsWith(prefix) ? name : prefix + name;
}

/**
 * Undefined when `request` may go on to `pathname`, else the 401 (no or
 * wrong credentials) or 403 (authenticated, without the role) to answer.
 */
export async function refusal(
  request: Request,
  pathname: string,
  auth: Authenticator,
  peer = "",
): Promise<Response | undefined> {
  const role = roleFor(pathname, request.method);
  if (role === undefined) return undefined;
  const p = await auth.httpPrincipal(request.headers.get("authorization"), peer);
  if (p === undefined) {
    return new Response("authentication required\n", {
      status: 401,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "www-authenticate": 'Bearer realm="relayr", Basic realm="relayr"',
      },
    });
  }
  if (p.roles.includes(role) || p.roles.includes("admin")) {
    // An action on a destination also needs the user's `admin` permission on it (deny wins).
    const dest = role === "admin" ? actionDestination(pathname) : undefined;
    if (dest === undefined || p.entry === undefined) return undefined;
    if (permissionsOf(p.entry).may(Action.ADMIN, dest)) return undefined;
    return new Response(`user ${JSON.stringify(p.user)} may not act on ${dest}\n`, {
      status: 403,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  return new Response(`user ${JSON.stringify(p.user)} lacks the ${role} role\n`, {
    status: 403,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
