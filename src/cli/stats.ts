/**
 * `relayr stats`: fetches `GET /api/stats` from the broker's monitoring
 * endpoint and prints it as JSON.
 *
 * @module
 */
import { parseAddress } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";
import {
  type CliIo,
  COMMON_HELP,
  type CommonValues,
  credentials,
  ExitCode,
  intFlag,
  positionalArgs,
  runCommand,
  serverAddress,
  UnreachableError,
  UsageError,
} from "./common.ts";
import { cliTls } from "./tls.ts";

/** Help of `relayr stats`. */
export const STATS_HELP = `Usage: relayr stats [options]

Prints the broker's statistics (GET /api/stats of its HTTP monitoring) as JSON.

Examples:
  relayr stats
  relayr stats --http broker.internal:8222 --compact

Options:
      --http <host:port>    monitoring address (default: $RELAYR_HTTP, or the
                            --server host on port 8222); https://host:port for
                            a broker with --http-tls (--tls-ca: its CA)
      --compact             one line of JSON instead of indented
      --timeout <ms>        give up after this long (default: 5000)
${COMMON_HELP}`;

/** Default port of the HTTP monitoring. */
const HTTP_PORT = 8222;

/** Runs `relayr stats`; returns the exit code. */
export function statsCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = {
    http: { type: "string" },
    compact: { type: "boolean" },
    timeout: { type: "string" },
  } as const;
  return runCommand({ name: "stats", help: STATS_HELP, flags }, args, io, async (parsed) => {
    const { values, positionals } = parsed;
    positionalArgs(positionals, []);
    const timeoutMs = intFlag("timeout", values.timeout, 5000, 1);
    const http = values.http ?? runtime.env("RELAYR_HTTP") ??
      `${parseAddress(serverAddress(runtime, values.server)).hostname}:${HTTP_PORT}`;
    const https = http.startsWith("https://");
    const { hostname, port } = parseAddress(http.replace(/^https?:\/\//, ""));
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    const url = `${https ? "https" : "http"}://${host}:${port}/api/stats`;
    const headers = await authorization(runtime, io, values);
    const ca = cliTls(runtime, values)?.ca;
    const caPem = ca === undefined ? undefined : readPem(runtime, ca);
    const fetchCa = (init: RequestInit) => runtime.fetchWithCa(url, { ...init, headers }, caPem);
    const stats = await fetchJson(url, timeoutMs, fetchCa);
    io.out(values.compact ? JSON.stringify(stats) : JSON.stringify(stats, null, 2));
    return ExitCode.OK;
  });
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
    if (!res.ok) throw new Error(`${url} answered ${res.status} ${res.statusText}`);
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${url} did not answer JSON`);
    }
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
