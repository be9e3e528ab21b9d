/**
 * Static assets built into the broker (bundled by scripts/build_web.ts into
 * src/http/assets/*.ts, so nothing is read from disk at run time), served
 * with a strong `ETag` and `Cache-Control: no-cache`: a browser keeps its
 * copy and revalidates it with one cheap 304 per load, so an upgraded broker
 * is never answered with an old bundle.
 *
 * @module
 */
import clientJs from "./assets/client_js.ts";

/** One asset: its bytes as text, its content type and its validator. */
export interface Asset {
  readonly body: string;
  readonly contentType: string;
  readonly etag: string;
}

/** Makes an asset; the ETag is a hash of the text (computed once, at start). */
export function asset(body: string, contentType: string): Asset {
  // Two 32-bit FNV-1a hashes with different seeds: a validator, not a
  // security boundary, so a fast hash that changes with every edit is enough.
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");
  return { body, contentType, etag: `"${hex(a)}${hex(b)}-${body.length}"` };
}

/** The built-in assets by path. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/client.js", asset(clientJs, "text/javascript; charset=utf-8")],
]);

/** Answers a GET or HEAD for `a`: 304 when the browser's copy is current. */
export function serveAsset(request: Request, a: Asset): Response {
  const headers = {
    "content-type": a.contentType,
    "cache-control": "no-cache",
    etag: a.etag,
    // Public code: a page on an origin listed in --ws-allowed-origins may import it.
    "access-control-allow-origin": "*",
    "x-content-type-options": "nosniff",
  };
  const match = request.headers.get("if-none-match");
  if (match !== null && match.split(",").some((t) => t.trim() === a.etag)) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(request.method === "HEAD" ? null : a.body, { status: 200, headers });
}
