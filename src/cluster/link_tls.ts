/**
 * TLS of the inter-node link (docs/CLUSTERING.md), as nats-server's cluster
 * TLS with `verify`: every connection on the cluster port (HELLO, PROXY,
 * REPL alike) is mutual TLS. The listener requires the dialler's
 * certificate and checks that it chains to `--cluster-tls-ca`; the dialler
 * checks the listener's against the same CA and for the host of the address
 * it dials (the peer's `--cluster-advertise`, an IP or DNS subjectAltName),
 * or for `--cluster-tls-server-name` when every node's certificate carries
 * that one name instead. Each node presents its one certificate both ways.
 *
 * Once the listener has accepted a connection (the dialler's certificate
 * checked), it says so first: `TLS OK\r\n`; the dial returns only after that
 * line. Under TLS 1.3 the dialler's handshake ends before the listener has
 * checked the dialler's certificate, so without it a refused dialler would
 * see its link come up and drop at once, again and again, and could not
 * tell why.
 *
 * With a cluster secret too, the HMAC handshake (link_auth.ts) runs inside
 * the TLS connection, after that line: a peer must pass both (deny wins).
 *
 * A refused handshake closes that connection only; it is counted
 * (`tls_failures`, `tls_dial_failures`) and logged at most once a second per
 * peer host, with a reason and no key material.
 *
 * @module
 */
import {
  CLUSTER_TLS_HANDSHAKE_TIMEOUT_MS,
  CLUSTER_TLS_HANDSHAKES_PENDING_MAX,
  type ClusterTlsConfig,
} from "../config/mod.ts";
import type { Conn, Listener, Runtime } from "../runtime/mod.ts";
import type { Dial } from "./link_auth.ts";
import { PrefixedConn, readLine } from "./first_line.ts";
import { RefusalLog } from "./refusal_log.ts";

const GREETING_LINE = "TLS OK";
/** What the listener writes first on each connection it accepted. */
const GREETING = new TextEncoder().encode(GREETING_LINE + "\r\n");
const EMPTY = new Uint8Array(0);

/** What `LinkTls` is given. */
export interface LinkTlsOptions {
  readonly tls: ClusterTlsConfig;
  readonly log: (level: "warn", message: string) => void;
}

/** TLS handshake failures of the link, for `/api/cluster`. */
export interface LinkTlsStats {
  /** Connections on our cluster port whose TLS handshake failed. */
  tls_failures: number;
  /** Our dials whose TLS handshake failed (the peer's certificate refused, or not TLS). */
  tls_dial_failures: number;
}

/** A dial whose TLS handshake failed: the message says with whom and the likely cause. */
export class ClusterTlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClusterTlsError";
  }
}

/** One node's TLS on the link, both directions (see the module comment). */
export class LinkTls {
  /** The files in force: new connections either way get them (`reload`). */
  #tls: ClusterTlsConfig;
  readonly #refusals: RefusalLog;
  #listener: Listener | undefined;
  #failures = 0;
  #dialFailures = 0;

  constructor(options: LinkTlsOptions) {
    this.#tls = options.tls;
    this.#refusals = new RefusalLog(options.log);
  }

  /**
   * New files (SIGHUP, a certificate rotated): the listener and every later
   * dial use them; open connections keep theirs. Throws when the listener
   * cannot take them (the old stay).
   */
  async reload(tls: ClusterTlsConfig): Promise<void> {
    await this.#listener?.reloadTls?.(tls);
    this.#tls = tls;
  }

  /** The figures for `/api/cluster`. */
  stats(): LinkTlsStats {
    return { tls_failures: this.#failures, tls_dial_failures: this.#dialFailures };
  }

  /** Binds the cluster port as a TLS listener that requires a certificate signed by the CA. */
  async listen(runtime: Runtime, hostname: string, port: number): Promise<Listener> {
    const { cert, key, ca } = this.#tls;
    const inner = this.#listener = await runtime.listenTls({
      hostname,
      port,
      tls: {
        cert,
        key,
        ca, // set: a client certificate is required and must chain to it
        handshakeTimeoutMs: CLUSTER_TLS_HANDSHAKE_TIMEOUT_MS,
        handshakesPendingMax: CLUSTER_TLS_HANDSHAKES_PENDING_MAX,
        onHandshakeFailure: (addr, reason) => {
          this.#failures++;
          this.#refusals.refused(addr, `TLS handshake failed: ${explain(reason)}`);
        },
      },
    });
    return {
      port: inner.port,
      close: () => inner.close(),
      async accept(): Promise<Conn | undefined> {
        for (;;) {
          const conn = await inner.accept();
          if (conn === undefined) return undefined;
          try {
            // A few bytes into a fresh socket's send buffer: done at once, whatever the peer reads.
            await conn.write(GREETING);
            return conn;
          } catch {
            conn.close(); // gone already: the next one
          }
        }
      },
    };
  }

  /** Dials with TLS: our certificate, the CA, and the name to check (see the module comment). */
  dialer(connect: Runtime["connect"]): Dial {
    return async (hostname: string, port: number): Promise<Conn> => {
      const { cert, key, ca, serverName } = this.#tls;
      let conn: Conn;
      try {
        conn = await connect({ hostname, port, tls: { ca, cert, key, serverName } });
      } catch (e) {
        const reason = String((e as Error)?.message ?? e).split("\n")[0];
        // Not reachable is not a TLS failure: the link's usual redial handles it.
        if (/refused|unreachable|ECONNREFUSED|EHOSTUNREACH/i.test(reason)) throw e;
        this.#dialFailures++;
        throw new ClusterTlsError(`TLS with ${hostname}:${port} failed: ${explain(reason)}`);
      }
      return await this.#greeted(conn, `${hostname}:${port}`);
    };
  }

  /** Waits for the listener's `TLS OK` (see the module comment); the conn is returned with what came behind it. */
  async #greeted(conn: Conn, address: string): Promise<Conn> {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      conn.close();
    }, CLUSTER_TLS_HANDSHAKE_TIMEOUT_MS);
    try {
      const got = await readLine(conn, EMPTY, GREETING.length, "TLS greeting");
      if (got?.line === GREETING_LINE) {
        return got.rest.length > 0 ? new PrefixedConn(conn, got.rest) : conn;
      }
      throw new Error(got === undefined ? "closed" : "another line");
    } catch (e) {
      conn.close();
      this.#dialFailures++;
      const why = late
        ? `no answer within ${CLUSTER_TLS_HANDSHAKE_TIMEOUT_MS} ms`
        : (e as Error).message === "another line"
        ? "it sent something else than TLS OK (not a Relayr node with link TLS?)"
        : "it closed the connection after the TLS handshake: it refused our certificate " +
          "(its --cluster-tls-ca is another?)";
      throw new ClusterTlsError(`TLS with ${address} failed: ${why}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * What a runtime's handshake error (rustls' words on Deno's dialler,
 * OpenSSL's codes and reasons under `node:tls` and Bun) most likely means,
 * first match wins.
 */
const CAUSES: [RegExp, string][] = [
  [
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR)|alert (unknown ca|bad cert)/i,
    "the peer refused our certificate (its --cluster-tls-ca is another?)",
  ],
  [
    /WRONG_VERSION|HTTP_REQUEST|UNKNOWN_PROTOCOL|PACKET_LENGTH|InvalidContentType|corrupt message/i,
    "not TLS (a node without --cluster-tls-*?)",
  ],
  [
    /UnknownIssuer|UNKNOWN_CA|UNABLE_TO_VERIFY|unable to (get|verify)|self[- ]signed|BadSignature/i,
    "a certificate not signed by our --cluster-tls-ca",
  ],
  [
    /NotValidForName|ALTNAME|Hostname|is not in the cert|does not match certificate/i,
    "the certificate does not name the address dialled (see --cluster-tls-server-name)",
  ],
  [
    /CERTIFICATE_REQUIRED|RETURN_A_CERTIFICATE|NoCertificatesPresented|did not return a cert/i,
    "no client certificate",
  ],
  [/expired|NotValidYet|not yet valid/i, "an expired or not yet valid certificate"],
  [
    /unexpected end of file|disconnected before secure|ECONNRESET|reset by peer/i,
    "the handshake broke off (a certificate of another CA, on either side, or not TLS?)",
  ],
];

/** A handshake error with its likely cause, for the log. */
export function explain(reason: string): string {
  const cause = CAUSES.find(([re]) => re.test(reason));
  return cause === undefined ? reason : `${cause[1]} (${reason})`;
}
