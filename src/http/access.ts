/**
 * Who may read the monitoring endpoints, in one place (admin actions add
 * their role here). With auth off everything is open, as before. With auth
 * on, `/healthz`, `/readyz` and the index stay open (probes carry no
 * credentials); everything else needs `Authorization: Bearer <auth-token>`
 * (the token holder has every role), or `Basic` with the `user:password` of
 * a password user with the `monitor` (or `admin`) role. Key and certificate
 * users have no HTTP credential of their own; a monitoring system uses a
 * password user (docs/SECURITY.md).
 *
 * @module
 */
import type { Authenticator, Role } from "../auth/mod.ts";

const OPEN = new Set(["/", "/healthz", "/readyz"]);

/** The role a path needs; undefined: open to all. */
export function roleFor(pathname: string): Role | undefined {
  return OPEN.has(pathname) ? undefined : "monitor";
}

/**
 * Undefined when `request` may go on to `pathname`, else the 401 (no or
 * wrong credentials) or 403 (authenticated, without the role) to answer.
 */
export async function refusal(
  request: Request,
  pathname: string,
  auth: Authenticator,
): Promise<Response | undefined> {
  const role = roleFor(pathname);
  if (role === undefined) return undefined;
  const p = await auth.httpPrincipal(request.headers.get("authorization"));
  if (p === undefined) {
    return new Response("authentication required\n", {
      status: 401,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "www-authenticate": 'Bearer realm="relayr", Basic realm="relayr"',
      },
    });
  }
  if (p.roles.includes(role) || p.roles.includes("admin")) return undefined;
  return new Response(`user ${JSON.stringify(p.user)} lacks the ${role} role\n`, {
    status: 403,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
