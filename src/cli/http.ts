/**
 * What the commands that talk to the HTTP port share (`stats` and the admin
 * commands): the `--http` address (`https://` for a broker with
 * `--http-tls`, trusting `--tls-ca`), the credential header, and one JSON
 * call with a timeout.
 *
 * @module
 */
import { parseAddress } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  type CommonValues,
  credentials,
  serverAddress,
  UnreachableError,
  UsageError,
} from "./common.ts";
import { cliTls } from "./tls.ts";

/** Default port of the HTTP monitoring. */
export const HTTP_PORT = 8222;

/** Help text of `--http` and `--timeout`. */
export const HTTP_HELP =
  `      --http <host:port>    HTTP address of the broker (default: $RELAYR_HTTP, or
                            the --server host on port 8222); https://host:port for
                            a broker with --http-tls (--tls-ca: its CA)
      --timeout <ms>        give up after this long (default: 5000)`;

/** The flags of `HTTP_HELP`. */
export const HTTP_FLAGS = {
  http: { type: "string" },
  timeout: { type: "string" },
} as const;

/** The flag values an HTTP call reads: `--http`, the credentials and the TLS flags. */
export type HttpValues = CommonValues & { http?: string };

/**
 * `http://host:port` (or `https://`) of the broker's HTTP port: `--http`,
 * `$RELAYR_HTTP`, or the `--server` host on 8222.
 */
export function httpBase(runtime: Runtime, http: string | undefined, server: string | undefined) {
  const addr = http ?? runtime.env("RELAYR_HTTP") ??
    `${parseAddress(serverAddress(runtime, server)).hostname}:${HTTP_PORT}`;
  const https = addr.startsWith("https://");
  const { hostname, port } = parseAddress(addr.replace(/^https?:\/\//, ""));
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return `${https ? "https" : "http"}://${host}:${port}`;
}

/**
 * Calls `path` of the broker's HTTP port with the credential flags (and the
 * CA of `--tls-ca` for https) and returns its JSON answer.
 */
export async function httpCall(
  runtime: Runtime,
  io: CliIo,
  values: HttpValues,
  req: { path: string; method?: string; timeoutMs: number },
): Promise<unknown> {
  const url = `${httpBase(runtime, values.http, values.server)}${req.path}`;
  const headers = await authorization(runtime, io, values);
  const ca = cliTls(runtime, values)?.ca;
  const caPem = ca === undefined ? undefined : readPem(runtime, ca);
  const method = req.method ?? "GET";
  return await fetchJson(
    url,
    req.timeoutMs,
    (init) => runtime.fetchWithCa(url, { ...init, method, headers }, caPem),
  );
}

/**
 * The `Authorization` header of the credential flags: the token as a
 * bearer, or a password user's Basic credentials (the monitoring port takes
 * no key: see docs/SECURITY.md).
 */
async function authorization(
  runtime: Runtime,
  io: CliIo,
  values: CommonValues,
): Promise<Record<string, string>> {
  const c = await credentials(runtime, io, values);
  if (c.keyFile !== undefined) {
    throw new UsageError("the monitoring port takes --token or a password, not --key");
  }
  if (c.token !== undefined) return { authorization: `Bearer ${c.token}` };
  if (c.pass !== undefined) {
    const basic = new TextEncoder().encode(`${c.user}:${c.pass}`).toBase64();
    return { authorization: `Basic ${basic}` };
  }
  return {};
}

/** PEM text, or the text of the file it names (as the SDK's `tls` option takes it). */
function readPem(runtime: Runtime, value: string): string {
  return value.includes("-----BEGIN") ? value : runtime.readTextFile(value);
}

/**
 * Calls `url` through `get` and returns its JSON. An unreachable port is an
 * `UnreachableError` (exit 3); a refusal is an `Error` with the server's own
 * words (`{"error": ...}`), e.g. "no queue queue:orders".
 */
async function fetchJson(
  url: string,
  timeoutMs: number,
  get: (init: RequestInit) => Promise<Response>,
): Promise<unknown> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    let res: Response;
    try {
      res = await get({ signal: abort.signal });
    } catch (err) {
      const why = abort.signal.aborted ? `no answer within ${timeoutMs} ms` : reason(err);
      throw new UnreachableError(`cannot reach monitoring at ${url}: ${why}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) {
      const said = (body as { error?: unknown } | undefined)?.error;
      throw new Error(
        typeof said === "string" ? said : `${url} answered ${res.status} ${res.statusText}`,
      );
    }
    if (body === undefined) throw new Error(`${url} did not answer JSON`);
    return body;
  } finally {
    clearTimeout(timer);
  }
}

/** The innermost message of a fetch error ("Connection refused", not "error sending request"). */
function reason(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  for (let i = 0; i < 5 && e?.cause; i++) e = e.cause as typeof e;
  return (e?.message ?? String(err)).split("\n")[0];
}
