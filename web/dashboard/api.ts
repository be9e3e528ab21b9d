/**
 * The console's calls to the broker's HTTP API (the same routes `relayr
 * queue purge` and friends use; see docs/OPERATIONS.md).
 *
 * @module
 */

/** A page of a sorted, filtered list (`GET /api/queues` ...). */
export interface ListPage<T> {
  total: number;
  matched: number;
  offset: number;
  list: T[];
}

/** What a list request asks for. */
export interface ListQuery {
  q: string;
  sort: string;
  order: "asc" | "desc";
  offset: number;
  limit: number;
}

/** The broker asked for a credential (401): the page asks the operator for one. */
export class AuthRequired extends Error {}

const KEY = "relayr.credential";

/**
 * The `Authorization` header sent with every call, kept for this tab only
 * (sessionStorage): a token as a bearer, a user and password as Basic.
 */
export function credential(): string | null {
  return sessionStorage.getItem(KEY);
}

/** Sets (or with `token` empty, forgets) the credential of this tab. */
export function setCredential(token: string, user = ""): void {
  if (token === "") return sessionStorage.removeItem(KEY);
  const basic = () => {
    let bin = "";
    for (const b of new TextEncoder().encode(`${user}:${token}`)) bin += String.fromCharCode(b);
    return `Basic ${btoa(bin)}`;
  };
  sessionStorage.setItem(KEY, user === "" ? `Bearer ${token}` : basic());
}

/** The headers of a call: JSON, and the credential if there is one. */
export function headers(): Record<string, string> {
  const c = credential();
  return c === null
    ? { accept: "application/json" }
    : { accept: "application/json", authorization: c };
}

/** GETs JSON; throws with the server's error text on a non-2xx answer. */
export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: headers() });
  return await answer<T>(res);
}

/** A page of `/api/<kind>`. */
export function getList<T>(kind: string, q: ListQuery): Promise<ListPage<T>> {
  const p = new URLSearchParams({
    q: q.q,
    sort: q.sort,
    order: q.order,
    offset: String(q.offset),
    limit: String(q.limit),
  });
  return getJson<ListPage<T>>(`/api/${kind}?${p}`);
}

/** Runs an admin action (`POST`/`DELETE`); resolves with its JSON answer. */
export async function act<T>(method: "POST" | "DELETE", path: string): Promise<T> {
  const res = await fetch(path, { method, headers: headers() });
  return await answer<T>(res);
}

/** The path segment of a name (`queue:orders` stays readable, `/` and `%` are escaped). */
export function seg(name: string): string {
  return encodeURIComponent(name).replace(/%3A/g, ":");
}

async function answer<T>(res: Response): Promise<T> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.status === 401) throw new AuthRequired("the broker asks for a credential");
  if (res.status === 403 && body === undefined) throw new Error(text.trim());
  if (!res.ok) {
    const why = (body as { error?: string } | undefined)?.error ?? text.trim();
    throw new Error(why || `${res.status} ${res.statusText}`);
  }
  return body as T;
}
