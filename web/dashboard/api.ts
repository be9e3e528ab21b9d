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

/** GETs JSON; throws with the server's error text on a non-2xx answer. */
export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { accept: "application/json" } });
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
  const res = await fetch(path, { method, headers: { accept: "application/json" } });
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
  if (!res.ok) {
    const why = (body as { error?: string } | undefined)?.error ?? text.trim();
    throw new Error(why || `${res.status} ${res.statusText}`);
  }
  return body as T;
}
