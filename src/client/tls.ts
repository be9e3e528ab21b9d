/**
 * The client's TLS option: PEM text or file paths, resolved to PEM text once
 * when the client is made (a reconnect reuses it).
 *
 * @module
 */
import type { DialTls } from "../runtime/mod.ts";

/**
 * TLS of a connection (`connect(addr, { tls })`). Each of `ca`, `cert`, `key`
 * is PEM text (it contains `-----BEGIN`) or else the path of a PEM file.
 * Without `ca` the server certificate must chain to the system's roots.
 */
export interface TlsOptions {
  /** CA bundle the server certificate must chain to (PEM text or path). */
  ca?: string;
  /** Client certificate for mTLS (PEM text or path), with `key`. */
  cert?: string;
  /** Private key of `cert` (PEM text or path). */
  key?: string;
  /** Name the server certificate must carry; default: the host dialled. */
  serverName?: string;
}

/** `options` with every file read into PEM text; throws `TypeError` naming the option that failed. */
export function resolveTls(options: TlsOptions, readFile: (path: string) => string): DialTls {
  const pem = (name: "ca" | "cert" | "key"): string | undefined => {
    const v = options[name];
    if (v === undefined || v.includes("-----BEGIN")) return v;
    try {
      return readFile(v);
    } catch (e) {
      const why = String((e as Error)?.message ?? e).split("\n")[0];
      throw new TypeError(`Cannot read tls.${name} file ${JSON.stringify(v)}: ${why}`);
    }
  };
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError("tls.cert and tls.key go together: give both or neither");
  }
  return { ca: pem("ca"), cert: pem("cert"), key: pem("key"), serverName: options.serverName };
}
