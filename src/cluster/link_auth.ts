/**
 * Authentication of the inter-node link (docs/CLUSTERING.md): every
 * connection on the cluster port (HELLO, PROXY, REPL alike) starts with a
 * mutual challenge-response over the cluster secret, before its first line.
 *
 * ```
 * acceptor -> AUTH <acceptor-id> <nonce-a>
 * dialer   -> AUTH <dialer-id> <nonce-d> <proof-d>
 * acceptor -> AUTH OK <proof-a>          (or AUTH ERR, then it closes)
 * dialer   -> HELLO|PROXY|REPL <dialer-id> ...   (the first line, as before)
 * ```
 *
 * `proof-d` = HMAC-SHA256(secret, "relayr-link-1 dial" ids nonces), `proof-a`
 * the same with "accept" and the roles swapped, base64url. The direction
 * word keeps a proof from being reflected back as the other side's; each
 * side's fresh nonce keeps a recorded proof from being replayed; the ids bind
 * the proof to who says it, and the first line must name the same node.
 * Proofs are compared in constant time. The secret itself never crosses the
 * wire nor appears in any message.
 *
 * The link is authenticated, not encrypted: what follows the handshake is
 * plain TCP, readable and (on a path an attacker controls) alterable.
 *
 * @module
 */
import {
  CLUSTER_AUTH_LINE_BYTES_MAX,
  CLUSTER_AUTH_NONCE_BYTES,
  CLUSTER_AUTH_TIMEOUT_MS,
} from "../config/mod.ts";
import { type Conn, hmacSha256, timingSafeEqual } from "../runtime/mod.ts";
import { type FirstLine, firstLine, PrefixedConn, readLine } from "./first_line.ts";
import { RefusalLog } from "./refusal_log.ts";

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const ID = /^[A-Za-z0-9_.-]{1,64}$/;
/** 16-64 random bytes, base64url: what either side accepts as the other's nonce. */
const NONCE = /^[A-Za-z0-9_-]{22,86}$/;

/** How a node dials another's cluster port. */
export type Dial = (hostname: string, port: number) => Promise<Conn>;

/** A dial whose handshake failed: the message says which node refused and why. */
export class ClusterAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClusterAuthError";
  }
}

/** What `LinkAuth` is given. */
export interface LinkAuthOptions {
  readonly nodeId: string;
  readonly secret: Uint8Array;
  readonly log: (level: "warn", message: string) => void;
}

/** Handshake failures, for `/api/cluster`. */
export interface LinkAuthStats {
  /** Connections on our cluster port whose handshake failed. */
  auth_failures: number;
  /** Our dials whose handshake failed (the peer refused us, or did not answer). */
  auth_dial_failures: number;
}

/** One node's side of the handshake, both directions (see the module comment). */
export class LinkAuth {
  readonly #o: LinkAuthOptions;
  #failures = 0;
  #dialFailures = 0;
  readonly #refusals: RefusalLog;

  constructor(options: LinkAuthOptions) {
    this.#o = options;
    this.#refusals = new RefusalLog(options.log);
  }

  /** The figures for `/api/cluster`. */
  stats(): LinkAuthStats {
    return { auth_failures: this.#failures, auth_dial_failures: this.#dialFailures };
  }

  /**
   * The accept side: the handshake, then the first line (which must name the
   * node that proved itself). Undefined when the handshake failed (counted,
   * logged) or the connection ended: the caller closes it.
   */
  async accept(conn: Conn): Promise<FirstLine | undefined> {
    const timer = new Deadline(conn);
    let rest: Uint8Array;
    let node: string;
    try {
      const nonce = newNonce();
      await conn.write(encoder.encode(`AUTH ${this.#o.nodeId} ${nonce}\r\n`));
      const got = await readLine(conn, EMPTY, CLUSTER_AUTH_LINE_BYTES_MAX, "handshake line");
      if (got === undefined) return this.#refused(conn, "closed before its handshake");
      const [op, id, theirs, proof, extra] = got.line.split(" ");
      if (op !== "AUTH") {
        return this.#refused(conn, "no handshake, another line first (no cluster secret set?)");
      }
      if (!ID.test(id ?? "") || !NONCE.test(theirs ?? "") || !proof || extra !== undefined) {
        return this.#refused(conn, "malformed handshake line");
      }
      const want = this.#proof("dial", id, this.#o.nodeId, nonce, theirs);
      if (!sameProof(proof, want)) {
        await this.#tell(conn, "AUTH ERR\r\n");
        return this.#refused(conn, `node ${id}'s proof does not match: a different cluster secret`);
      }
      const ours = this.#proof("accept", this.#o.nodeId, id, theirs, nonce);
      await conn.write(encoder.encode(`AUTH OK ${b64url(ours)}\r\n`));
      rest = got.rest;
      node = id;
    } catch (e) {
      return this.#refused(conn, timer.expired ? "handshake timed out" : (e as Error).message);
    } finally {
      timer.cancel();
    }
    // Authenticated: the first line follows at once, as it did before there was a handshake.
    const first = await firstLine(conn, rest);
    if (first !== undefined && first.line.split(" ")[1] !== node) {
      return this.#refused(conn, `node ${node}'s first line names another node`);
    }
    return first;
  }

  /** The dial side: `dial`, then the handshake; the connection is returned ready for its first line. */
  dialer(dial: Dial): Dial {
    return async (hostname, port) => {
      const conn = await dial(hostname, port);
      const address = `${hostname}:${port}`;
      const timer = new Deadline(conn);
      try {
        return await this.#dialHandshake(conn, address);
      } catch (e) {
        conn.close();
        this.#dialFailures++;
        throw timer.expired
          ? new ClusterAuthError(
            `no handshake answer from ${address} within ${CLUSTER_AUTH_TIMEOUT_MS} ms ` +
              `(a node without a cluster secret?)`,
          )
          : e instanceof ClusterAuthError
          ? e
          : new ClusterAuthError(`handshake with ${address} failed: ${(e as Error).message}`);
      } finally {
        timer.cancel();
      }
    };
  }

  async #dialHandshake(conn: Conn, address: string): Promise<Conn> {
    const challenge = await readLine(conn, EMPTY, CLUSTER_AUTH_LINE_BYTES_MAX, "handshake line");
    if (challenge === undefined) {
      throw new ClusterAuthError(`${address} closed the connection before its handshake`);
    }
    const [op, peer, nonce, extra] = challenge.line.split(" ");
    if (op !== "AUTH" || !ID.test(peer ?? "") || !NONCE.test(nonce ?? "") || extra !== undefined) {
      throw new ClusterAuthError(`${address} sent no handshake (a node without a cluster secret?)`);
    }
    const ours = newNonce();
    const proof = this.#proof("dial", this.#o.nodeId, peer, nonce, ours);
    await conn.write(encoder.encode(`AUTH ${this.#o.nodeId} ${ours} ${b64url(proof)}\r\n`));
    const answer = await readLine(conn, challenge.rest, CLUSTER_AUTH_LINE_BYTES_MAX, "answer");
    if (answer === undefined) {
      throw new ClusterAuthError(
        `node ${peer} at ${address} closed the connection after our proof`,
      );
    }
    const [verdict, word, theirProof] = answer.line.split(" ");
    if (verdict !== "AUTH" || word === "ERR") {
      throw new ClusterAuthError(
        `node ${peer} at ${address} refused us: our cluster secrets differ`,
      );
    }
    const want = this.#proof("accept", peer, this.#o.nodeId, ours, nonce);
    if (word !== "OK" || !sameProof(theirProof ?? "", want)) {
      throw new ClusterAuthError(
        `node ${peer} at ${address} could not prove the cluster secret: our secrets differ`,
      );
    }
    return answer.rest.length > 0 ? new PrefixedConn(conn, answer.rest) : conn;
  }

  #proof(dir: "dial" | "accept", by: string, to: string, nonce1: string, nonce2: string) {
    return hmacSha256(
      this.#o.secret,
      encoder.encode(`relayr-link-1 ${dir} ${by} ${to} ${nonce1} ${nonce2}`),
    );
  }

  /** A word to the dialer before we close: a node with another secret then says so. */
  async #tell(conn: Conn, line: string): Promise<void> {
    try {
      await conn.write(encoder.encode(line));
    } catch { /* it is gone: nothing to tell */ }
  }

  /** Counts a failed handshake and logs it, at most once a second per peer host. */
  #refused(conn: Conn, reason: string): undefined {
    this.#failures++;
    this.#refusals.refused(conn.remoteAddr, reason);
    return undefined;
  }
}

/** Closes a connection whose handshake is not done within `CLUSTER_AUTH_TIMEOUT_MS`. */
class Deadline {
  expired = false;
  readonly #timer: ReturnType<typeof setTimeout>;

  constructor(conn: Conn) {
    this.#timer = setTimeout(() => {
      this.expired = true;
      conn.close();
    }, CLUSTER_AUTH_TIMEOUT_MS);
  }

  cancel(): void {
    clearTimeout(this.#timer);
  }
}

function newNonce(): string {
  return b64url(crypto.getRandomValues(new Uint8Array(CLUSTER_AUTH_NONCE_BYTES)));
}

function b64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Whether the base64url `text` is `want`, compared in constant time. */
function sameProof(text: string, want: Uint8Array): boolean {
  let got: Uint8Array;
  try {
    got = Uint8Array.fromBase64(text, { alphabet: "base64url" });
  } catch {
    return false;
  }
  return timingSafeEqual(got, want);
}
