/**
 * Broker addresses: `host:port`, `host`, `:port`, `[::1]:port`, optionally
 * prefixed with `relayr://` or `tcp://`, or with `tls://` for TLS.
 *
 * @module
 */
import { DEFAULT_PORT } from "./limits.ts";

/** A parsed broker address. */
export interface Address {
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** TCP port. */
  port: number;
  /** `tls://`: dial with TLS. */
  tls?: boolean;
}

/**
 * Parses a broker address; throws `TypeError` on a bad one.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./address.ts";
 * const a = parseAddress("localhost:9092");
 * console.assert(a.hostname === "localhost" && a.port === 9092);
 * console.assert(parseAddress("[::1]:4222").hostname === "::1");
 * ```
 */
export function parseAddress(address: string): Address {
  const tls = /^tls:\/\//.test(address.trim());
  let rest = address.trim().replace(/^(relayr|tcp|tls):\/\//, "").replace(/\/$/, "");
  let hostname: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw new TypeError(`Bad server address ${JSON.stringify(address)}`);
    hostname = rest.slice(1, close);
    rest = rest.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) {
      throw new TypeError(`Bad server address ${JSON.stringify(address)}`);
    }
    portText = rest === "" ? undefined : rest.slice(1);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon >= 0 && rest.indexOf(":") !== colon) {
      hostname = rest; // a bare IPv6 address without brackets or port
    } else if (colon >= 0) {
      hostname = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
    } else {
      hostname = rest;
    }
  }
  if (hostname === "") hostname = "localhost";
  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
      throw new TypeError(`Bad port in server address ${JSON.stringify(address)}`);
    }
  }
  return tls ? { hostname, port, tls } : { hostname, port };
}
