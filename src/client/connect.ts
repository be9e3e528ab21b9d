/**
 * `connect` for Deno and Bun: TCP (`host:port`, `relayr://host:port`) through
 * the runtime seam, or a WebSocket (`ws://host:8222/ws`, `wss://...`).
 *
 * @module
 */
import { loadRuntime, type Runtime } from "../runtime/mod.ts";
import { parseAddress } from "./address.ts";
import { loadKeyFile } from "./auth.ts";
import { type Client, type ConnectOptions, openClient } from "./client.ts";
import { type Dialer, isWebSocketUrl, tcpDialer, webSocketDialer } from "./dialer.ts";
import { resolveTls } from "./tls.ts";
import * as L from "./limits.ts";

/**
 * Connects to a broker over TCP, or over a WebSocket for a `ws://` or
 * `wss://` URL. Fails with `ConnectError` when the first connection cannot
 * be made; later drops are reconnected on their own.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./mod.ts";
 * const client = await connect("localhost:9092"); // or "ws://localhost:8222/ws"
 * const id = await client.publish("queue:orders", '{"order_id":"12345"}');
 * console.log("accepted as", id);
 * await client.close();
 * ```
 */
export async function connect(
  address: string = L.DEFAULT_SERVER,
  options: ConnectOptions = {},
): Promise<Client> {
  const ws = isWebSocketUrl(address);
  // The runtime gives TCP sockets and reads key files; a WebSocket without a key needs neither.
  const runtime = ws && options.keyFile === undefined
    ? undefined
    : options.runtime ?? await loadRuntime();
  const key = options.keyFile === undefined
    ? undefined
    : await loadKeyFile(runtime!, options.keyFile);
  const dialer = ws ? webSocketDialer(address) : tcpDialerFor(address, options, runtime!);
  return await openClient(dialer, { ...options, key });
}

/** TCP, with TLS when the address says `tls://` or `options.tls` is given. */
function tcpDialerFor(address: string, options: ConnectOptions, runtime: Runtime): Dialer {
  const a = parseAddress(address);
  const tls = options.tls !== undefined || a.tls
    ? resolveTls(options.tls ?? {}, (path) => runtime.readTextFile(path))
    : undefined;
  return tcpDialer(a, runtime, tls);
}
