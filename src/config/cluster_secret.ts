/**
 * The cluster secret (docs/CLUSTERING.md): the key both ends of every
 * inter-node connection prove they hold (src/cluster/link_auth.ts). It comes
 * from a file (`--cluster-secret-file`, `RELAYR_CLUSTER_SECRET_FILE`,
 * `cluster-secret-file` in `--config`) or from `RELAYR_CLUSTER_SECRET`;
 * never from a flag's value, where `ps` and shell history would show it.
 * No message here quotes it.
 *
 * @module
 */
import { CLUSTER_SECRET_BYTES_MAX, CLUSTER_SECRET_BYTES_MIN } from "./limits.ts";
import { ConfigError } from "./config.ts";

/** The environment variable that holds the secret itself. */
export const CLUSTER_SECRET_ENV = "RELAYR_CLUSTER_SECRET";

/**
 * The secret's bytes (UTF-8, surrounding whitespace and the file's line end
 * dropped); undefined when none is given. Throws `ConfigError` when both
 * sources are given, the file cannot be read, or the secret is too short.
 */
export function readClusterSecret(
  file: string | undefined,
  env: (name: string) => string | undefined,
  readFile: (path: string) => string,
): Uint8Array | undefined {
  const fromEnv = env(CLUSTER_SECRET_ENV);
  if (file !== undefined && fromEnv !== undefined) {
    throw new ConfigError(`give --cluster-secret-file or ${CLUSTER_SECRET_ENV}, not both`);
  }
  let text = fromEnv;
  let from = CLUSTER_SECRET_ENV;
  if (file !== undefined) {
    from = `cluster secret file ${JSON.stringify(file)}`;
    try {
      text = readFile(file);
    } catch (e) {
      // The runtime's message names the path and the cause (not found, permission), never the contents.
      throw new ConfigError(`cannot read ${from}: ${(e as Error).message}`);
    }
  }
  if (text === undefined) return undefined;
  const secret = new TextEncoder().encode(text.trim());
  if (secret.length < CLUSTER_SECRET_BYTES_MIN) {
    throw new ConfigError(
      `${from} holds ${secret.length} bytes; a cluster secret needs at least ` +
        `${CLUSTER_SECRET_BYTES_MIN} (e.g. openssl rand -hex 32)`,
    );
  }
  if (secret.length > CLUSTER_SECRET_BYTES_MAX) {
    throw new ConfigError(`${from} holds over ${CLUSTER_SECRET_BYTES_MAX} bytes: not a secret`);
  }
  return secret;
}
