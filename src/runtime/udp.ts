/**
 * UDP datagrams in, for the UDP ingest (`--udp-port`). `node:dgram` works the
 * same on Deno and Bun (Deno's own `Deno.listenDatagram` still needs an
 * unstable flag), so one implementation serves both runtimes.
 *
 * @module
 */
import dgram from "node:dgram";

/** A bound UDP socket handing each datagram to a callback. */
export interface UdpListener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops receiving; resolves once the socket is closed. */
  close(): Promise<void>;
}

/**
 * Binds `hostname:port` and calls `onDatagram` with each datagram's bytes
 * (owned by the callee: the runtime never reuses them). Rejects when the
 * address cannot be bound (the error keeps its `code`, e.g. `EADDRINUSE`).
 */
export function listenUdp(
  options: { hostname: string; port: number },
  onDatagram: (bytes: Uint8Array) => void,
): Promise<UdpListener> {
  const type = options.hostname.includes(":") ? "udp6" : "udp4";
  const socket = dgram.createSocket({ type });
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.on("message", (msg: Uint8Array) => onDatagram(msg));
    socket.bind(options.port, options.hostname, () => {
      socket.off("error", reject);
      // After the bind, a socket error (ICMP noise) must not kill the process.
      socket.on("error", () => {});
      let closed: Promise<void> | undefined;
      resolve({
        port: socket.address().port,
        close: () => closed ??= new Promise<void>((r) => socket.close(() => r())),
      });
    });
  });
}
