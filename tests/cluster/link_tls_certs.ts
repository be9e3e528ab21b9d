/**
 * Certificates for the link's mutual TLS, made with `openssl` per run: a
 * cluster CA, one certificate per node (serverAuth and clientAuth, SAN
 * `IP:127.0.0.1` and `DNS:relayr-cluster`), a node certificate from another
 * CA, one signed by the cluster CA that names another host only, and a
 * client-port CA.
 */
import { EC, openssl } from "../../bench/tls_certs.ts";

/** Paths of the files `makeLinkCerts` wrote. */
export interface LinkCerts {
  dir: string;
  /** The cluster CA. */
  ca: string;
  /** `node(i)`: cert and key of node i (1-based), signed by the cluster CA. */
  node(i: number): { cert: string; key: string };
  /**
   * A node certificate and key signed by another CA, that CA, and a bundle of
   * that CA and the cluster CA (a node that trusts the cluster's nodes, but
   * whose certificate they refuse).
   */
  foreign: { cert: string; key: string; ca: string; caBoth: string };
  /** Signed by the cluster CA, naming only `DNS:elsewhere.example`. */
  misnamed: { cert: string; key: string };
  remove(): void;
}

const EXT = `[node]
basicConstraints=CA:FALSE
subjectAltName=IP:127.0.0.1,DNS:relayr-cluster
extendedKeyUsage=serverAuth,clientAuth
[misnamed]
basicConstraints=CA:FALSE
subjectAltName=DNS:elsewhere.example
extendedKeyUsage=serverAuth,clientAuth
`;

/** Makes the certificates in a fresh temporary directory. */
export async function makeLinkCerts(nodes = 3): Promise<LinkCerts> {
  const dir = await Deno.makeTempDir({ prefix: "relayr-link-tls-" });
  await Deno.writeTextFile(`${dir}/ext.cnf`, EXT);
  const ca = (name: string) =>
    openssl(
      dir,
      ["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`].concat(
        ["-days", "2", "-subj", `/CN=${name}`],
      ),
    );
  const leaf = async (name: string, signer: string, ext: string) => {
    await openssl(
      dir,
      ["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`].concat(
        ["-subj", `/CN=${name}`],
      ),
    );
    await openssl(
      dir,
      ["x509", "-req", "-in", `${name}.csr`, "-CA", `${signer}.pem`].concat(
        ["-CAkey", `${signer}.key`, "-out", `${name}.pem`, "-days", "2", "-extfile", "ext.cnf"],
        ["-extensions", ext],
      ),
    );
  };
  await Promise.all([ca("cluster-ca"), ca("other-ca")]);
  const names = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  await Promise.all([
    ...names.map((n) => leaf(n, "cluster-ca", "node")),
    leaf("foreign", "other-ca", "node"),
    leaf("misnamed", "cluster-ca", "misnamed"),
  ]);
  const p = (f: string) => `${dir}/${f}`;
  await Deno.writeTextFile(
    p("both-ca.pem"),
    (await Deno.readTextFile(p("other-ca.pem"))) + (await Deno.readTextFile(p("cluster-ca.pem"))),
  );
  return {
    dir,
    ca: p("cluster-ca.pem"),
    node: (i) => ({ cert: p(`n${i}.pem`), key: p(`n${i}.key`) }),
    foreign: {
      cert: p("foreign.pem"),
      key: p("foreign.key"),
      ca: p("other-ca.pem"),
      caBoth: p("both-ca.pem"),
    },
    misnamed: { cert: p("misnamed.pem"), key: p("misnamed.key") },
    remove: () => Deno.removeSync(dir, { recursive: true }),
  };
}

/** `serve` flags of node i's link TLS. */
export function linkTlsArgs(certs: LinkCerts, i: number): string[] {
  const { cert, key } = certs.node(i);
  return ["--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", certs.ca];
}
