/**
 * A raw TLS test client over `node:tls` (a TLS stack apart from the broker's
 * rustls listener): send lines, read lines, see the server certificate's CN,
 * and learn whether the server ended the connection.
 */
import tls from "node:tls";

/** Options of `tlsDial`: paths of PEM files. */
export interface DialFiles {
  ca: string;
  cert?: string;
  key?: string;
}

/** A connected TLS test client. */
export interface TlsTestClient {
  /** CN of the certificate the server presented. */
  readonly serverCn: string;
  send(text: string): void;
  /** The next line, or null once the server closed (bounded by `timeoutMs`). */
  line(timeoutMs?: number): Promise<string | null>;
  close(): void;
}

/**
 * Dials 127.0.0.1:`port`; resolves after the handshake. Under TLS 1.3 the
 * client's handshake ends before the server has checked the client
 * certificate, so a refused client certificate shows as a close on `line()`.
 */
export function tlsDial(port: number, files: DialFiles): Promise<TlsTestClient> {
  const socket = tls.connect({
    host: "127.0.0.1",
    port,
    ca: Deno.readTextFileSync(files.ca),
    cert: files.cert && Deno.readTextFileSync(files.cert),
    key: files.key && Deno.readTextFileSync(files.key),
  });
  let buf = "";
  let ended = false;
  let wake: () => void = () => {};
  socket.on("data", (d: Uint8Array) => {
    buf += new TextDecoder().decode(d);
    wake();
  });
  const end = () => {
    ended = true;
    wake();
  };
  socket.on("close", end);
  socket.on("error", end);
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      socket.off("error", reject);
      resolve({
        serverCn: String(socket.getPeerCertificate().subject?.CN),
        send: (text) => void socket.write(text),
        async line(timeoutMs = 3000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const nl = buf.indexOf("\r\n");
            if (nl >= 0) {
              const l = buf.slice(0, nl);
              buf = buf.slice(nl + 2);
              return l;
            }
            if (ended) return null;
            const left = deadline - Date.now();
            if (left <= 0) throw new Error("timed out waiting for a line");
            let timer: ReturnType<typeof setTimeout> | undefined;
            await new Promise<void>((r) => {
              wake = r;
              timer = setTimeout(r, left);
            });
            clearTimeout(timer);
          }
        },
        close: () => void socket.destroy(),
      });
    });
  });
}
