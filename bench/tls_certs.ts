/**
 * Certificates made at run time with `openssl` (3.0 here), for the tests and
 * the TLS bench runs: a test CA, a second "wrong" CA, server leaves signed by the CA (SAN 127.0.0.1 and
 * localhost), client leaves signed by the CA, by the wrong CA, and one
 * expired, plus the mistake rustls refuses: a self-signed `CA:TRUE`
 * certificate used as the server's. `openssl x509` of 3.0 has no
 * `-not_before`, so the expired certificate comes from `openssl ca` with
 * `-startdate`/`-enddate` in the past.
 */

/** Paths of the files `makeCerts` wrote. */
export interface TestCerts {
  dir: string;
  ca: string;
  caKey: string;
  wrongCa: string;
  /** Server leaf `CN=relayr-1`, and its key. */
  serverCert: string;
  serverKey: string;
  /** A second server leaf `CN=relayr-2` (for reload tests), and its key. */
  serverCert2: string;
  serverKey2: string;
  /** Client leaf `CN=alice,O=Acme` signed by the CA. */
  clientCert: string;
  clientKey: string;
  /** The same key, certified by the wrong CA. */
  wrongClientCert: string;
  /** The same key, certified by the CA, valid only in January 2020. */
  expiredClientCert: string;
  /** Self-signed CA:TRUE certificate with SAN 127.0.0.1, and its key. */
  selfSignedCa: string;
  selfSignedCaKey: string;
  /** Removes the directory. */
  remove(): void;
}

const EXTENSIONS = `[server]
basicConstraints=CA:FALSE
subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth
[client]
basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth
`;

const CA_CONFIG = `[ca]
default_ca=tca
[tca]
database=db/index.txt
new_certs_dir=db
rand_serial=yes
default_md=sha256
policy=any
unique_subject=no
x509_extensions=client
[any]
commonName=supplied
organizationName=optional
[client]
basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth
`;

/** Runs `openssl` in `dir`; throws with its stderr when it fails. */
export async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** `openssl req` flags for a fresh P-256 key, unencrypted. */
export const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** Makes the certificates in a fresh temporary directory. */
export async function makeCerts(): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "relayr-tls-" });
  await Deno.writeTextFile(`${dir}/ext.cnf`, EXTENSIONS);
  await Deno.writeTextFile(`${dir}/ca.cnf`, CA_CONFIG);
  await Deno.mkdir(`${dir}/db`);
  await Deno.writeTextFile(`${dir}/db/index.txt`, "");
  const selfSigned = (name: string, cn: string, extra: string[] = []) =>
    openssl(
      dir,
      ["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`]
        .concat(["-days", "2", "-subj", `/CN=${cn}`, ...extra]),
    );
  const csr = (name: string, subj: string) =>
    openssl(dir, ["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj]);
  const sign = (name: string, out: string, ca: string, ext: string) =>
    openssl(
      dir,
      ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`]
        .concat(["-out", `${out}.pem`, "-days", "2", "-extfile", "ext.cnf", "-extensions", ext]),
    );
  await Promise.all([
    selfSigned("ca", "Relayr Test CA"),
    selfSigned("wrong-ca", "Wrong CA"),
    selfSigned("self-ca", "localhost", ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]),
    csr("server", "/CN=relayr-1"),
    csr("server2", "/CN=relayr-2"),
    csr("client", "/CN=alice/O=Acme"),
  ]);
  await sign("server", "server", "ca", "server");
  await sign("server2", "server2", "ca", "server");
  await sign("client", "client", "ca", "client");
  await sign("client", "client-wrong", "wrong-ca", "client");
  await openssl(
    dir,
    ["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key"]
      .concat(["-in", "client.csr", "-out", "client-expired.pem", "-notext"])
      .concat(["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]),
  );
  const p = (f: string) => `${dir}/${f}`;
  return {
    dir,
    ca: p("ca.pem"),
    caKey: p("ca.key"),
    wrongCa: p("wrong-ca.pem"),
    serverCert: p("server.pem"),
    serverKey: p("server.key"),
    serverCert2: p("server2.pem"),
    serverKey2: p("server2.key"),
    clientCert: p("client.pem"),
    clientKey: p("client.key"),
    wrongClientCert: p("client-wrong.pem"),
    expiredClientCert: p("client-expired.pem"),
    selfSignedCa: p("self-ca.pem"),
    selfSignedCaKey: p("self-ca.key"),
    remove: () => Deno.removeSync(dir, { recursive: true }),
  };
}

/** `serve` flags for TLS with `certs` (the CA-signed leaf), and with mTLS also the CA. */
export function serverTlsArgs(certs: TestCerts, mtls = false): string[] {
  const args = ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey];
  return mtls ? [...args, "--tls-ca", certs.ca] : args;
}

/** Client flags for mTLS with `certs` (the CA, the client leaf and its key). */
export function clientTlsArgs(certs: TestCerts): string[] {
  return ["--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey];
}
