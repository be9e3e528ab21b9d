/**
 * The TLS flags every client subcommand takes (`--tls-ca`, `--tls-cert`,
 * `--tls-key`), with `RELAYR_TLS_CA`, `RELAYR_TLS_CERT`, `RELAYR_TLS_KEY` as
 * their environment fallbacks: paths of PEM files, passed to the SDK's `tls`
 * option (which reads them).
 *
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import type { TlsOptions } from "../client/mod.ts";
import type { Runtime } from "../runtime/mod.ts";

/** The TLS flags, as `parseArgs` takes them. */
export const TLS_OPTIONS = {
  "tls-ca": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** Help text of the TLS flags. */
export const TLS_HELP =
  `      --tls-ca <file>       dial TLS, trusting this CA for the broker ($RELAYR_TLS_CA)
      --tls-cert <file>     client certificate for mTLS ($RELAYR_TLS_CERT)
      --tls-key <file>      private key of --tls-cert ($RELAYR_TLS_KEY)`;

/** Parsed values of the TLS flags. */
export interface TlsFlags {
  "tls-ca"?: string;
  "tls-cert"?: string;
  "tls-key"?: string;
}

/** The SDK's `tls` option from the flags, then the environment; undefined when none is set (a `tls://` address still dials TLS). */
export function cliTls(runtime: Runtime, flags: TlsFlags): TlsOptions | undefined {
  const ca = flags["tls-ca"] ?? runtime.env("RELAYR_TLS_CA");
  const cert = flags["tls-cert"] ?? runtime.env("RELAYR_TLS_CERT");
  const key = flags["tls-key"] ?? runtime.env("RELAYR_TLS_KEY");
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  return { ca, cert, key };
}
