/**
 * The start-up check of a node's link certificate (src/runtime/link_cert.ts)
 * on certificates made by `openssl`: signed by the cluster CA directly or
 * through an intermediate the chain carries, with the dialled name as an IP
 * or DNS subjectAltName (wildcards as TLS matches them); and the causes the
 * link's log gives the runtimes' handshake errors (link_tls.ts).
 */
import assert from "node:assert/strict";
import { EC, openssl } from "../../bench/tls_certs.ts";
import { checkLinkCert } from "../../src/runtime/mod.ts";
import { explain } from "../../src/cluster/link_tls.ts";

const EXT = `[inter]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
[wild]
basicConstraints=CA:FALSE
subjectAltName=DNS:*.nodes.example
extendedKeyUsage=serverAuth,clientAuth
[ip]
basicConstraints=CA:FALSE
subjectAltName=IP:10.0.0.1
extendedKeyUsage=serverAuth,clientAuth
`;

Deno.test("checkLinkCert: chains through an intermediate, matches IP and wildcard DNS names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-link-cert-" });
  try {
    await Deno.writeTextFile(`${dir}/ext.cnf`, EXT);
    await openssl(
      dir,
      ["req", "-x509", ...EC, "-keyout", "root.key", "-out", "root.pem"].concat(
        ["-days", "2", "-subj", "/CN=root"],
      ),
    );
    const sign = async (name: string, ca: string, ext: string) => {
      await openssl(
        dir,
        ["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`].concat(
          ["-subj", `/CN=${name}`],
        ),
      );
      await openssl(
        dir,
        ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`].concat(
          ["-CAkey", `${ca}.key`, "-out", `${name}.pem`, "-days", "2", "-extfile", "ext.cnf"],
          ["-extensions", ext],
        ),
      );
    };
    await sign("inter", "root", "inter");
    await sign("wild", "inter", "wild");
    await sign("ip", "root", "ip");
    const read = (f: string) => Deno.readTextFileSync(`${dir}/${f}`);
    const [root, inter, wild, ip] = ["root.pem", "inter.pem", "wild.pem", "ip.pem"].map(read);
    const chain = wild + inter;

    assert.equal(checkLinkCert(chain, root, "n1.nodes.example"), undefined);
    assert.equal(checkLinkCert(chain, root, "N1.Nodes.Example"), undefined);
    assert.match(checkLinkCert(chain, root, "a.n1.nodes.example")!, /does not name/);
    assert.match(checkLinkCert(chain, root, "nodes.example")!, /does not name .* add DNS:/);
    // The leaf alone does not reach the root; with the intermediate in the bundle it does.
    assert.match(checkLinkCert(wild, root, "n1.nodes.example")!, /is not signed by a CA/);
    assert.equal(checkLinkCert(wild, root + inter, "n1.nodes.example"), undefined);
    assert.equal(checkLinkCert(ip, root, "10.0.0.1"), undefined);
    assert.match(checkLinkCert(ip, root, "10.0.0.2")!, /does not name "10\.0\.0\.2" .* add IP:/);
    assert.match(checkLinkCert(ip, inter, "10.0.0.1")!, /is not signed by a CA/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("explain: the runtimes' handshake errors get their likely cause", () => {
  const cases: [string, RegExp][] = [
    ["ERR_SSL_WRONG_VERSION_NUMBER", /^not TLS/],
    ["WRONG_VERSION_NUMBER", /^not TLS/],
    ["invalid peer certificate: UnknownIssuer", /^a certificate not signed by our/],
    ["self signed certificate in certificate chain", /^a certificate not signed by our/],
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", /^a certificate not signed by our/],
    ["ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", /^the peer refused our certificate/],
    ["invalid peer certificate: NotValidForName", /^the certificate does not name/],
    ["ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE", /^no client certificate/],
    ["PEER_DID_NOT_RETURN_A_CERTIFICATE", /^no client certificate/],
    ["invalid peer certificate: Expired", /^an expired/],
    ["ECONNRESET", /^the handshake broke off/],
  ];
  for (const [reason, want] of cases) {
    const text = explain(reason);
    assert.match(text, want, reason);
    assert.ok(text.endsWith(`(${reason})`), text);
  }
  assert.equal(explain("something new"), "something new");
});
