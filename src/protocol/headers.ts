/**
 * The header block of a payload: `Key: Value\r\n` lines, then `\r\n`.
 * Shared by the server (validation) and the client (encode/decode).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function isKeyByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d || c === 0x5f || c === 0x2e;
}

/**
 * Checks a header block without building anything; returns why it is bad, or
 * undefined. Runs on the publish path only when a message has headers.
 */
export function headerBlockError(block: Uint8Array): string | undefined {
  const n = block.length;
  if (n < 2 || block[n - 2] !== 0x0d || block[n - 1] !== 0x0a) {
    return "header block must end with an empty line (\\r\\n)";
  }
  let i = 0;
  while (i < n - 2) {
    const keyStart = i;
    while (i < n && isKeyByte(block[i])) i++;
    if (i === keyStart) return "header line without a key";
    if (block[i] !== 0x3a) return "header key must be followed by ':'";
    i++;
    while (i < n && block[i] !== 0x0d && block[i] !== 0x0a) i++;
    if (i + 1 >= n || block[i] !== 0x0d || block[i + 1] !== 0x0a) {
      return "header line must end with \\r\\n";
    }
    i += 2;
  }
  return i === n - 2 ? undefined : "header block must end with an empty line (\\r\\n)";
}

/** Decodes a valid header block into ordered pairs (a key may repeat). */
export function decodeHeaders(block: Uint8Array): [string, string][] {
  const text = decoder.decode(block);
  const out: [string, string][] = [];
  for (const line of text.split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    out.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return out;
}

/** A valid header block as a map of each key's first value (what a filter reads). */
export function headerMap(block: Uint8Array): Map<string, string> {
  const m = new Map<string, string>();
  for (const [key, value] of decodeHeaders(block)) if (!m.has(key)) m.set(key, value);
  return m;
}

/** Encodes headers as a block; throws TypeError on a key or value that cannot be sent. */
export function encodeHeaders(headers: Iterable<[string, string]>): Uint8Array {
  let text = "";
  for (const [key, value] of headers) {
    if (key.length === 0 || ![...key].every((ch) => isKeyByte(ch.charCodeAt(0)))) {
      throw new TypeError(`Header key ${JSON.stringify(key)} must be A-Z a-z 0-9 - _ .`);
    }
    if (/[\r\n]/.test(value)) {
      throw new TypeError(`Header value of ${JSON.stringify(key)} must not hold a line end`);
    }
    text += `${key}: ${value}\r\n`;
  }
  return encoder.encode(text + "\r\n");
}
