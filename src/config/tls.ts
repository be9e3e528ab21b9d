/**
 * TLS settings resolved once at start-up: the files of `--tls-cert`,
 * `--tls-key` and `--tls-ca` read into PEM text and checked, so that every
 * listener (TCP, HTTP, WebSocket, gRPC) takes the same `config.tls` and a
 * mistake is one line naming the flag before anything listens. SIGHUP calls
 * `readTls` again.
 *
 * @module
 */
import type { TlsFiles, TlsProblem } from "../runtime/mod.ts";
import { type Config, ConfigError } from "./config.ts";

/** TLS of the broker's listeners, resolved: PEM text, not paths. */
export interface TlsConfig extends TlsFiles {
  /** Whether the HTTP monitoring port serves HTTPS (`--http-tls`). */
  http: boolean;
}

/** What `resolveTls` needs from outside: file reading and the certificate checks of the runtime seam. */
export interface TlsSources {
  readFile: (path: string) => string;
  check: (files: TlsFiles) => TlsProblem | undefined;
}

const FLAG = { cert: "--tls-cert", key: "--tls-key", ca: "--tls-ca" } as const;

/**
 * Reads and checks the TLS files of `config`; undefined when TLS is off.
 * Throws `ConfigError` naming the flag and what to do.
 */
export function readTls(config: Config, src: TlsSources): TlsConfig | undefined {
  const cert = config["tls-cert"];
  const key = config["tls-key"];
  const ca = config["tls-ca"];
  if (cert === undefined && key === undefined) {
    if (ca !== undefined) {
      throw new ConfigError(
        "--tls-ca needs --tls-cert and --tls-key (mTLS is TLS plus client certificates)",
      );
    }
    if (config["http-tls"]) {
      throw new ConfigError(
        "--http-tls needs --tls-cert and --tls-key (it serves the same certificate)",
      );
    }
    return undefined;
  }
  if (cert === undefined || key === undefined) {
    throw new ConfigError(
      `${cert === undefined ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key"}: ` +
        "give the certificate and its private key",
    );
  }
  if (config["tls-required"] === "false") {
    // Sniffing the first byte (0x16: a ClientHello) could tell the two apart,
    // but with authentication on the server speaks first (INFO with a nonce),
    // before any client byte, and a port that also takes plain text lets an
    // attacker on the path strip TLS from any client not set to insist on it.
    throw new ConfigError(
      "--tls-required false is not offered: one port taking both TLS and plain text invites " +
        "TLS stripping; give every client the CA instead (relayr --tls-ca, connect(addr, { tls }))",
    );
  }
  const paths = { cert, key, ca };
  const text = (file: "cert" | "key" | "ca") => readPemFile(src.readFile, FLAG[file], paths[file]!);
  const files: TlsFiles = { cert: text("cert"), key: text("key") };
  if (ca !== undefined) files.ca = text("ca");
  const problem = src.check(files);
  if (problem !== undefined) {
    throw new ConfigError(
      `${FLAG[problem.file]} ${JSON.stringify(paths[problem.file])} ${problem.message}`,
    );
  }
  return { ...files, http: config["http-tls"] };
}

/** The text of the PEM file at `path` given by `flag`; a `ConfigError` naming both when it cannot be read. */
export function readPemFile(
  readFile: (path: string) => string,
  flag: string,
  path: string,
): string {
  try {
    return readFile(path);
  } catch (e) {
    const why = String((e as Error)?.message ?? e).split("\n")[0];
    throw new ConfigError(
      `cannot read ${flag} ${JSON.stringify(path)}: ${why} (give a PEM file the broker can read)`,
    );
  }
}
