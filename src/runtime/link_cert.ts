/**
 * Checks of a node's certificate for the inter-node link's mutual TLS, with
 * `node:crypto`'s `X509Certificate` (the same on Deno and Bun): a node's one
 * certificate is its server certificate (peers dial it) and its client
 * certificate (it dials peers), and every peer checks it against the cluster
 * CA and, as a dialler, for the name it dials. A certificate that fails
 * either would be refused by every peer, so the node says so at start-up
 * instead of logging refused handshakes for ever.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * What is wrong with a node's link certificate (`cert`: its chain, leaf
 * first; `ca`: the cluster's CA bundle; `name`: the host or name peers check
 * when they dial it), one line without key material; undefined when peers
 * would take it. Run after `checkTlsFiles`, which checks that both parse.
 */
export function checkLinkCert(cert: string, ca: string, name: string): string | undefined {
  const chain = (cert.match(CERT_BLOCK) ?? []).map((pem) => new X509Certificate(pem));
  const cas = (ca.match(CERT_BLOCK) ?? []).map((pem) => new X509Certificate(pem));
  // Signed by a CA of the bundle, directly or through the intermediates the chain carries.
  const anchored = chain.some((c) =>
    cas.some((a) => c.fingerprint256 === a.fingerprint256 || (c.checkIssued(a) && verifies(c, a)))
  );
  if (!anchored) {
    return "is not signed by a CA of --cluster-tls-ca: every peer would refuse it " +
      "(sign each node's certificate with the cluster CA)";
  }
  if (!carriesName(chain[0], name)) {
    return `does not name ${JSON.stringify(name)} in its subjectAltName, the name peers check ` +
      `when they dial this node: add ${isIp(name) ? "IP" : "DNS"}:${name} (or set ` +
      "--cluster-tls-server-name to a name every node's certificate carries)";
  }
  return undefined;
}

function verifies(cert: X509Certificate, ca: X509Certificate): boolean {
  try {
    return cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/**
 * Whether the leaf's subjectAltName has `name` (an IP address, or a DNS
 * name, `*.` wildcards as TLS matches them). The subject's CN is not looked
 * at: rustls (Deno's dialler) ignores it, and Deno's `checkHost` falls back
 * to it whatever its options say.
 */
function carriesName(leaf: X509Certificate, name: string): boolean {
  if (isIp(name)) return leaf.checkIP(name) !== undefined;
  const want = name.toLowerCase();
  for (const entry of (leaf.subjectAltName ?? "").split(", ")) {
    if (!entry.startsWith("DNS:")) continue;
    const dns = entry.slice(4).toLowerCase();
    if (dns === want) return true;
    const label = want.slice(0, want.length - dns.length + 1); // what "*" stands for
    if (dns.startsWith("*.") && want.endsWith(dns.slice(1)) && /^[^.]+$/.test(label)) return true;
  }
  return false;
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}
