/**
 * TLS of the inter-node link (docs/CLUSTERING.md), resolved once at start-up:
 * `--cluster-tls-cert`, `--cluster-tls-key` and `--cluster-tls-ca` (flags,
 * `RELAYR_CLUSTER_TLS_*`, or `cluster-tls-*` keys of `--config`) read into
 * PEM text and checked, so that a mistake is one line naming the flag and the
 * node exits 2 before it listens or touches etcd.
 *
 * Mutual TLS only, as nats-server's cluster TLS with `verify`: the one
 * certificate is this node's server certificate (peers dial it) and its
 * client certificate (it dials peers), and every peer's must chain to the
 * CA. So the three go together; one or two of them is refused rather than
 * run half-verified.
 *
 * @module
 */
import type { TlsFiles, TlsProblem } from "../runtime/mod.ts";
import { type Config, ConfigError } from "./config.ts";
import { readPemFile } from "./tls.ts";

/** The link's TLS, resolved: PEM text, and the name a dialler checks. */
export interface ClusterTlsConfig extends Required<TlsFiles> {
  /** `--cluster-tls-server-name`: the name every node's certificate carries; undefined: each node's host. */
  serverName?: string;
}

/** What `readClusterTls` needs from outside: file reading and the runtime seam's certificate checks. */
export interface ClusterTlsSources {
  readFile: (path: string) => string;
  check: (files: TlsFiles, certFlag: string) => TlsProblem | undefined;
  /** What is wrong with the node's certificate for peers (not signed by the CA, lacks the name). */
  checkLink: (cert: string, ca: string, name: string) => string | undefined;
}

const FLAGS = {
  cert: "--cluster-tls-cert",
  key: "--cluster-tls-key",
  ca: "--cluster-tls-ca",
} as const;

/**
 * Reads and checks the link's TLS files of `config`; undefined when none is
 * given. Throws `ConfigError` naming the flag and what to do.
 */
export function readClusterTls(
  config: Config,
  src: ClusterTlsSources,
): ClusterTlsConfig | undefined {
  const paths = {
    cert: config["cluster-tls-cert"],
    key: config["cluster-tls-key"],
    ca: config["cluster-tls-ca"],
  };
  const serverName = config["cluster-tls-server-name"];
  const given = (Object.keys(FLAGS) as (keyof typeof FLAGS)[]).filter((f) =>
    paths[f] !== undefined
  );
  if (given.length === 0) {
    if (serverName !== undefined) {
      throw new ConfigError("--cluster-tls-server-name needs --cluster-tls-cert, -key and -ca");
    }
    return undefined;
  }
  if (config["cluster-etcd"] === undefined) {
    throw new ConfigError(`${FLAGS[given[0]]} needs --cluster-etcd (it secures the cluster port)`);
  }
  if (given.length < 3) {
    const missing = (Object.keys(FLAGS) as (keyof typeof FLAGS)[]).filter((f) =>
      !given.includes(f)
    );
    throw new ConfigError(
      `${given.map((f) => FLAGS[f]).join(" and ")} ${given.length === 1 ? "needs" : "need"} ${
        missing.map((f) => FLAGS[f]).join(" and ")
      }: the link's TLS is mutual (each node presents its certificate and checks its peer's ` +
        "against the CA), so give all three",
    );
  }
  if (serverName !== undefined && !/^[A-Za-z0-9.*-]{1,253}$/.test(serverName)) {
    throw new ConfigError(
      `--cluster-tls-server-name must be a DNS name, got ${JSON.stringify(serverName)}`,
    );
  }
  const text = (file: keyof typeof FLAGS) => readPemFile(src.readFile, FLAGS[file], paths[file]!);
  const files = { cert: text("cert"), key: text("key"), ca: text("ca") };
  const problem = src.check(files, FLAGS.cert);
  if (problem !== undefined) {
    throw new ConfigError(
      `${FLAGS[problem.file]} ${JSON.stringify(paths[problem.file])} ${problem.message}`,
    );
  }
  const link = src.checkLink(files.cert, files.ca, serverName ?? dialledHost(config));
  if (link !== undefined) {
    throw new ConfigError(`${FLAGS.cert} ${JSON.stringify(paths.cert)} ${link}`);
  }
  return { ...files, serverName };
}

/** The host peers dial: that of `--cluster-advertise`, else of `--cluster-listen`. */
function dialledHost(config: Config): string {
  const address = config["cluster-advertise"] ?? config["cluster-listen"] ?? "";
  return address.slice(0, address.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Whether two PEM CA bundles share a certificate: a cluster CA that also
 * signs client certificates (`--tls-ca`) would let any client dial the
 * cluster port as a node.
 */
export function sharesCertificate(a: string, b: string): boolean {
  const blocks = (pem: string) => (pem.match(CERT_BLOCK) ?? []).map((c) => c.replace(/\s+/g, ""));
  const mine = new Set(blocks(a));
  return blocks(b).some((c) => mine.has(c));
}
