/**
 * WebSocket test helpers below the `WebSocket` API: the RFC 6455 handshake and
 * frames written by hand over a real TCP socket, so a test can send any
 * `Origin`, read the status line of a refusal, and be a client that never
 * reads (which a `WebSocket` object cannot be).
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A hand-made WebSocket client connection after its handshake. */
export interface RawWebSocket {
  /** The HTTP status of the handshake answer (101 when upgraded). */
  status: number;
  /** The answer's head (status line and headers). */
  head: string;
  conn: Deno.Conn;
}

/**
 * Sends a WebSocket handshake for `path` with `headers` added; reads the
 * answer's head. With `caCert` (PEM): over TLS (`wss:`), trusting that CA.
 */
export async function rawHandshake(
  port: number,
  path = "/ws",
  headers: Record<string, string> = {},
  caCert?: string,
): Promise<RawWebSocket> {
  const conn = caCert === undefined
    ? await Deno.connect({ hostname: "127.0.0.1", port })
    : await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ];
  await writeAll(conn, encoder.encode(lines.join("\r\n")));
  // Read byte by byte up to the blank line, so no frame byte after it is taken.
  let head = "";
  const one = new Uint8Array(1);
  for (let i = 0; i < 16 * 1024 && !head.endsWith("\r\n\r\n"); i++) {
    const n = await conn.read(one);
    if (n === null) break;
    head += String.fromCharCode(one[0]);
  }
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, head, conn };
}

/** One masked client frame (`opcode` 1 text, 2 binary, 8 close). */
export function clientFrame(opcode: number, payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const n = body.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + n);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | (ext === 0 ? n : ext === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (ext === 2) view.setUint16(2, n);
  if (ext === 8) view.setBigUint64(2, BigInt(n));
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, 2 + ext);
  for (let i = 0; i < n; i++) out[2 + ext + 4 + i] = body[i] ^ mask[i & 3];
  return out;
}

/** Writes every byte. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads one unmasked server frame: its opcode and payload (text for the caller to decode). */
export async function readServerFrame(
  conn: Deno.Conn,
): Promise<{ opcode: number; payload: Uint8Array }> {
  const head = await readExactly(conn, 2);
  let n = head[1] & 0x7f;
  if (n === 126) n = new DataView((await readExactly(conn, 2)).buffer).getUint16(0);
  else if (n === 127) n = Number(new DataView((await readExactly(conn, 8)).buffer).getBigUint64(0));
  return { opcode: head[0] & 0x0f, payload: await readExactly(conn, n) };
}

/** The close code of a close frame's payload. */
export function closeCode(payload: Uint8Array): number {
  return payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
}

/** Text of a payload. */
export function text(payload: Uint8Array): string {
  return decoder.decode(payload);
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error(`the server closed after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}
