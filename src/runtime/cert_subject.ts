/**
 * The subject of a DER certificate as one unambiguous line, read from the
 * DER itself: attributes in the certificate's order joined by commas, the
 * attributes of one multi-valued RDN joined by `+`, each value escaped as
 * RFC 4514 says (`,` `+` `"` `\` `<` `>` `;`, a leading `#` or space, a
 * trailing space, control characters as `\XX`).
 *
 * Why not `X509Certificate.subject`: on Deno it does not escape, so a
 * certificate whose CN is `alice,O=Acme` printed as `CN=alice,O=Acme`, the
 * subject of another certificate, and a CA that signs the CN a requester
 * asks for would have let that requester log in as the user of the other
 * subject. Bun escapes (`CN=alice\,O=Acme`); this gives the same line on
 * both.
 *
 * @module
 */

/** Short names of the attribute types a subject usually holds (OpenSSL's); others print as dotted OIDs. */
const SHORT_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.4": "SN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "street",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.12": "title",
  "2.5.4.42": "GN",
  "1.2.840.113549.1.9.1": "emailAddress",
  "0.9.2342.19200300.100.1.1": "UID",
  "0.9.2342.19200300.100.1.25": "DC",
};

/** A DER element: its tag, where its contents start and end, and where the element ends. */
interface Tlv {
  tag: number;
  /** Where the element (its tag) starts. */
  at: number;
  start: number;
  end: number;
}

/** Thrown on DER that is not a certificate; `subjectOfDer` turns it into undefined. */
class BadDer extends SyntaxError {}

function tlv(der: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new BadDer("truncated");
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new BadDer("bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new BadDer("truncated");
  return { tag, at, start, end };
}

/** The children of a constructed element. */
function children(der: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = t.start; at < t.end;) {
    const c = tlv(der, at, t.end);
    out.push(c);
    at = c.end;
  }
  return out;
}

function oid(der: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new BadDer("not an OID");
  const first = der[t.start];
  const arc = Math.min(2, Math.floor(first / 40));
  const parts = [arc, first - 40 * arc];
  let n = 0;
  for (let i = t.start + 1; i < t.end; i++) {
    n = n * 128 + (der[i] & 0x7f);
    if ((der[i] & 0x80) === 0) {
      parts.push(n);
      n = 0;
    }
  }
  return parts.join(".");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf16 = new TextDecoder("utf-16be", { fatal: true });

/** An attribute value as text, or `#<hex of the whole element>` (RFC 4514) when it is not a string type. */
function valueText(der: Uint8Array, t: Tlv): string {
  const bytes = der.subarray(t.start, t.end);
  try {
    switch (t.tag) {
      case 0x0c: // UTF8String
      case 0x13: // PrintableString
      case 0x16: // IA5String
      case 0x1a: // VisibleString
        return escape(utf8.decode(bytes));
      case 0x14: // TeletexString: Latin-1 in practice
        return escape(String.fromCharCode(...bytes));
      case 0x1e: // BMPString
        return escape(utf16.decode(bytes));
    }
  } catch { /* not decodable: hex below */ }
  let hex = "#";
  for (const b of der.subarray(t.at, t.end)) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** RFC 4514 escaping, so that no value can read as a separator or another attribute. */
function escape(v: string): string {
  let out = "";
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    const code = v.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) out += "\\" + code.toString(16).padStart(2, "0");
    else if (',+"\\<>;'.includes(c)) out += "\\" + c;
    else if ((i === 0 && (c === "#" || c === " ")) || (i === v.length - 1 && c === " ")) {
      out += "\\" + c;
    } else out += c;
  }
  return out;
}

/**
 * The subject line of a DER certificate, or undefined when the bytes are
 * not one.
 *
 * @example
 * ```ts
 * import { subjectOfDer } from "./cert_subject.ts";
 * console.assert(subjectOfDer(new Uint8Array([1, 2, 3])) === undefined);
 * ```
 */
export function subjectOfDer(der: Uint8Array): string | undefined {
  try {
    const cert = tlv(der, 0, der.length);
    const tbs = children(der, cert)[0];
    if (tbs === undefined || tbs.tag !== 0x30) return undefined;
    const fields = children(der, tbs);
    // [0] version is optional; then serial, signature, issuer, validity, subject.
    const subject = fields[fields[0]?.tag === 0xa0 ? 5 : 4];
    if (subject === undefined || subject.tag !== 0x30) return undefined;
    return children(der, subject).map((rdn) => {
      if (rdn.tag !== 0x31) throw new BadDer("not an RDN");
      return children(der, rdn).map((atv) => {
        const [type, value] = children(der, atv);
        if (value === undefined) throw new BadDer("no value");
        const o = oid(der, type);
        return `${SHORT_NAMES[o] ?? o}=${valueText(der, value)}`;
      }).join("+");
    }).join(",");
  } catch (e) {
    if (e instanceof BadDer) return undefined;
    throw e;
  }
}
