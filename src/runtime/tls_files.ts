/**
 * Checks of TLS material before a listener uses it, with `node:crypto`'s
 * `X509Certificate` (the same on Deno and Bun): the runtimes' own errors for
 * these mistakes come late (a mismatched key fails inside `listenTls` as
 * "keys may not be consistent") or only on the client (rustls refuses a
 * `CA:TRUE` server certificate with `CaUsedAsEndEntity`), so the broker
 * checks at start-up and says which file is wrong and what to do.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { subjectOfDer } from "./cert_subject.ts";
import type { TlsFiles } from "./types.ts";

/** What is wrong with a set of TLS files, or undefined when they look usable. */
export interface TlsProblem {
  /** Which of the files: `cert`, `key` or `ca`. */
  file: "cert" | "key" | "ca";
  /** What is wrong and what to do, one line, no key material. */
  message: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle (empty when there is none). */
function certificates(pem: string): string[] {
  return pem.match(CERT_BLOCK) ?? [];
}

/**
 * Finds the first problem of a server's TLS files: no certificate, a
 * private key that is not PEM or does not belong to the certificate, a
 * self-signed CA certificate used as the server's, a CA bundle without a
 * certificate or with an unreadable one. `certFlag` names the certificate's
 * flag in the key's message.
 */
export function checkTlsFiles(files: TlsFiles, certFlag = "--tls-cert"): TlsProblem | undefined {
  const chain = certificates(files.cert);
  if (chain.length === 0) {
    return { file: "cert", message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)" };
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chain[0]);
  } catch (e) {
    return { file: "cert", message: `is not a readable certificate (${firstLine(e)})` };
  }
  if (leaf.ca) {
    return {
      file: "cert",
      message: "is a CA certificate (CA:TRUE); clients refuse it as a server certificate " +
        "(rustls: CaUsedAsEndEntity). Sign a leaf certificate (CA:FALSE, with the server's names " +
        "in subjectAltName) with this CA and use the leaf; give the CA to clients",
    };
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(files.key)) {
    return { file: "key", message: "holds no PEM private key (-----BEGIN PRIVATE KEY-----)" };
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(files.key));
  } catch (e) {
    return { file: "key", message: `is not a readable private key (${firstLine(e)})` };
  }
  if (!matches) {
    return {
      file: "key",
      message: `does not belong to the certificate of ${certFlag} (give the key it was made with)`,
    };
  }
  if (files.ca !== undefined) {
    const cas = certificates(files.ca);
    if (cas.length === 0) {
      return { file: "ca", message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)" };
    }
    for (const pem of cas) {
      try {
        new X509Certificate(pem);
      } catch (e) {
        return { file: "ca", message: `holds an unreadable certificate (${firstLine(e)})` };
      }
    }
  }
  return undefined;
}

/**
 * The subject of a DER or PEM certificate as one line, attributes in the
 * certificate's order joined by commas, values escaped as RFC 4514 says:
 * `CN=alice,O=Acme` (cert_subject.ts). This is the form
 * `Conn.peerCertSubject` carries and users files match.
 */
export function certSubject(cert: Uint8Array | string): string | undefined {
  try {
    return subjectOfDer(typeof cert === "string" ? new X509Certificate(cert).raw : cert);
  } catch {
    return undefined;
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0];
}
