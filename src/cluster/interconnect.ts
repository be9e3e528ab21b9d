/**
 * `Interconnect`: topics across nodes, as NATS routes do it. Every node
 * dials every other member at its `--cluster-advertise` address and writes
 * only on the link it dialled; it reads what its peers send on the links
 * they dialled (link.ts).
 *
 * - **Interest.** A node tells each peer the patterns its local clients
 *   subscribe to (`SUB` on the first local subscriber of a pattern, `UNSUB`
 *   after the last), and all of them when a link opens. What a peer told us
 *   is dropped when its inbound link closes (it stopped, died, or was cut).
 * - **Forwarding.** A topic message a local client publishes is written to
 *   each peer that has a matching pattern, once per peer however many of
 *   its subscribers match; the peer delivers it to its local subscribers
 *   only (`Broker.publishFromPeer`) and never forwards it again, so a
 *   message crosses one link at most: no loops, no duplicates. One TCP
 *   connection per direction keeps each publisher's order.
 * - **Cut links.** A message for a peer whose link is not up is not
 *   queued: remote delivery is at most once across a cut, as NATS core.
 *
 * @module
 */
import type { TopicInterest } from "../broker/mod.ts";
import {
  CLUSTER_FIRST_LINE_TIMEOUT_MS,
  CLUSTER_INBOUND_PENDING_MAX,
  CLUSTER_LINK_PENDING_BYTES_MAX,
  CLUSTER_LINK_REDIAL_MS,
  CLUSTER_PEER_PATTERNS_MAX,
  CLUSTER_PEER_TOPIC_CACHE_MAX,
} from "../config/mod.ts";
import { hasWildcard, matches, type PubOptions } from "../protocol/mod.ts";
import type { Conn, Listener } from "../runtime/mod.ts";
import { type FirstLine, firstLine, NotClusterLineError, PrefixedConn } from "./first_line.ts";
import { encodeLine, type LinkFrame, LinkOutbound, LinkParser } from "./link.ts";
import type { MemberInfo } from "./node.ts";
import { RefusalLog } from "./refusal_log.ts";

/** What the interconnect needs from outside. */
export interface InterconnectOptions {
  readonly nodeId: string;
  /** The bound `--cluster-listen` listener. */
  readonly listener: Listener;
  readonly dial: (hostname: string, port: number) => Promise<Conn>;
  /**
   * Reads an accepted connection's first line: after the handshake when the
   * link is authenticated (`LinkAuth.accept`); undefined: refused, closed.
   * Absent: `firstLine`.
   */
  readonly firstLine?: (conn: Conn) => Promise<FirstLine | undefined>;
  /** Delivers a peer's message to local subscribers (`Broker.publishFromPeer`). */
  readonly deliver: (topic: string, payload: Uint8Array, o: PubOptions | undefined) => void;
  /** Called once per chunk read from a peer, before its frames: the broker reads the clock. */
  readonly tick: () => void;
  readonly log: (level: "info" | "warn", message: string) => void;
  /**
   * A peer's `PROXY <node-id>` connection (forwarded queue commands): served
   * as a client connection from here on (`Server.adoptProxy`). Without it,
   * such a connection is closed.
   */
  readonly proxy?: (conn: Conn, fromNode: string) => void;
  /**
   * A peer's `REPL <node-id>` connection (replication of the queues it
   * leads, replication.ts): served by replication from here on.
   */
  readonly repl?: (conn: Conn, fromNode: string) => void;
}

/** One link in `/api/cluster`. */
export interface LinkStats {
  node: string;
  advertise: string;
  /** Our link to it is up. */
  out: boolean;
  /** Its link to us is up. */
  in: boolean;
  /** Patterns it has subscribers to. */
  patterns: number;
  forwarded_msgs: number;
  received_msgs: number;
}

/** A peer: our outbound link to it, and what it told us on its inbound link. */
class Peer {
  readonly id: string;
  advertise: string;
  conn: Conn | undefined;
  dialing = false;
  /** The last dial failed (logged once). */
  failing = false;
  gone = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Frames waiting for the next write. */
  out = new LinkOutbound();
  writing = false;
  /** Its patterns, counted by its inbound links (a link may briefly overlap its successor). */
  patterns = new Set<string>();
  inbound = 0;
  /** Topic name to "does it want it", cleared when its patterns change. */
  wants = new Map<string, boolean>();
  forwarded = 0;
  received = 0;

  constructor(id: string, advertise: string) {
    this.id = id;
    this.advertise = advertise;
  }

  want(topic: string): boolean {
    let w = this.wants.get(topic);
    if (w !== undefined) return w;
    w = this.patterns.has(topic);
    if (!w) {
      for (const p of this.patterns) {
        if (hasWildcard(p) && matches(p, topic)) {
          w = true;
          break;
        }
      }
    }
    if (this.wants.size >= CLUSTER_PEER_TOPIC_CACHE_MAX) this.wants.clear();
    this.wants.set(topic, w);
    return w;
  }
}

/** What the link counts since the start (over every link, past ones too). */
export interface LinkTotals {
  /** Topic messages written to peers. */
  forwarded: number;
  /** Topic messages read from peers. */
  received: number;
  /** Connections closed on arrival: `CLUSTER_INBOUND_PENDING_MAX` others had not sent their first line. */
  inboundRefused: number;
  /** Connections refused for their first bytes: not a cluster line (a TLS handshake, say). */
  firstLineRefused: number;
}

/** The inter-node link of one node (see the module comment). */
export class Interconnect implements TopicInterest {
  readonly #o: InterconnectOptions;
  /** Local topic subscriptions per pattern. */
  #local = new Map<string, number>();
  #peers = new Map<string, Peer>();
  #inbound = new Set<Conn>();
  /** Inbound connections before their first line (see `CLUSTER_INBOUND_PENDING_MAX`). */
  #pending = 0;
  /** Inbound connections closed at once because `CLUSTER_INBOUND_PENDING_MAX` were pending. */
  #refusedPending = 0;
  /** Inbound connections refused for what they sent first (not a cluster line: TLS, HTTP...). */
  #refusedLines = 0;
  /** Their log: a peer redialling every `CLUSTER_LINK_REDIAL_MS` is one line a second. */
  readonly #refusals: RefusalLog;
  /** The read loops of open links (each removes itself when its link ends). */
  #reading = new Set<Promise<void>>();
  #accepting: Promise<void>;
  #closed = false;
  #forwarded = 0;
  #received = 0;

  constructor(options: InterconnectOptions) {
    this.#o = options;
    this.#refusals = new RefusalLog(options.log);
    this.#accepting = this.#accept();
  }

  /** Inbound connections that have not sent their first line yet. */
  get pendingInbound(): number {
    return this.#pending;
  }

  /** The bound port of `--cluster-listen`. */
  get port(): number {
    return this.#o.listener.port;
  }

  /** The members as etcd has them now: dials the new ones, drops the gone ones. */
  membersChanged(members: readonly MemberInfo[]): void {
    if (this.#closed) return;
    const live = new Set<string>();
    for (const m of members) {
      if (m.id === this.#o.nodeId) continue;
      live.add(m.id);
      let p = this.#peers.get(m.id);
      if (p === undefined) this.#peers.set(m.id, p = new Peer(m.id, m.advertise));
      p.gone = false;
      if (p.advertise !== m.advertise) {
        p.advertise = m.advertise; // restarted elsewhere: dial the new address
        p.conn?.close();
      }
      if (p.conn === undefined && !p.dialing && p.timer === undefined) this.#dial(p);
    }
    for (const [id, p] of this.#peers) {
      if (live.has(id)) continue;
      p.gone = true;
      clearTimeout(p.timer);
      p.conn?.close();
      if (p.inbound === 0) this.#peers.delete(id);
    }
  }

  added(pattern: string): void {
    const n = this.#local.get(pattern) ?? 0;
    this.#local.set(pattern, n + 1);
    if (n === 0) this.#broadcast(encodeLine("SUB", pattern));
  }

  removed(pattern: string): void {
    const n = this.#local.get(pattern);
    if (n === undefined) return;
    if (n > 1) return void this.#local.set(pattern, n - 1);
    this.#local.delete(pattern);
    this.#broadcast(encodeLine("UNSUB", pattern));
  }

  published(
    dest: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): void {
    // Encoded once, into the first interested peer's buffer; copied from there to the others.
    let first: LinkOutbound | undefined;
    let start = 0;
    let bytes = 0;
    for (const p of this.#peers.values()) {
      if (p.conn === undefined || p.patterns.size === 0 || !p.want(dest)) continue;
      if (!this.#fits(p, first === undefined ? len + dest.length * 3 + 64 : bytes)) continue;
      if (first === undefined) [start, bytes] = (first = p.out).appendMsg(dest, buf, off, len, o);
      else p.out.appendFrom(first, start, bytes);
      p.forwarded++;
      this.#forwarded++;
      this.#flushSoon(p);
    }
  }

  /** What the link counted since the start (see `LinkTotals`). */
  totals(): LinkTotals {
    return {
      forwarded: this.#forwarded,
      received: this.#received,
      inboundRefused: this.#refusedPending,
      firstLineRefused: this.#refusedLines,
    };
  }

  /** The links, for `/api/cluster`. */
  stats(): LinkStats[] {
    return [...this.#peers.values()].filter((p) => !p.gone).sort((a, b) => a.id < b.id ? -1 : 1)
      .map((p) => ({
        node: p.id,
        advertise: p.advertise,
        out: p.conn !== undefined,
        in: p.inbound > 0,
        patterns: p.patterns.size,
        forwarded_msgs: p.forwarded,
        received_msgs: p.received,
      }));
  }

  /** Closes the listener and every link. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#o.listener.close();
    for (const p of this.#peers.values()) {
      p.gone = true;
      clearTimeout(p.timer);
      p.conn?.close();
    }
    for (const c of this.#inbound) c.close();
    await this.#accepting;
    await Promise.all([...this.#reading]);
  }

  #broadcast(frame: Uint8Array): void {
    for (const p of this.#peers.values()) if (p.conn !== undefined) this.#send(p, frame);
  }

  /** Queues a control frame. */
  #send(p: Peer, frame: Uint8Array): void {
    if (!this.#fits(p, frame.length)) return;
    p.out.append(frame);
    this.#flushSoon(p);
  }

  /** Whether `bytes` more fit in the peer's buffer; if not, the link is cut (a stalled peer). */
  #fits(p: Peer, bytes: number): boolean {
    if (p.out.size + bytes <= CLUSTER_LINK_PENDING_BYTES_MAX) return true;
    this.#o.log("warn", `link to ${p.id} over CLUSTER_LINK_PENDING_BYTES_MAX: cut`);
    p.conn?.close();
    return false;
  }

  /** One write per tick per peer carries everything appended in it. */
  #flushSoon(p: Peer): void {
    if (p.writing) return;
    p.writing = true;
    queueMicrotask(() => this.#flush(p));
  }

  async #flush(p: Peer): Promise<void> {
    while (p.out.size > 0 && p.conn !== undefined) {
      const conn = p.conn;
      try {
        await conn.write(p.out.take());
      } catch {
        conn.close();
        this.#linkDown(p, conn);
      }
    }
    p.out.clear();
    p.writing = false;
  }

  #dial(p: Peer): void {
    p.dialing = true;
    const [hostname, port] = splitHostPort(p.advertise);
    this.#o.dial(hostname, port).then((conn) => {
      p.dialing = false;
      if (p.gone || this.#closed) return conn.close();
      p.conn = conn;
      p.out.clear(); // nothing of an earlier link: a new link starts with HELLO
      // HELLO, then every pattern we have subscribers to: the peer's view of us starts complete.
      this.#send(p, encodeLine("HELLO", this.#o.nodeId));
      for (const pattern of this.#local.keys()) this.#send(p, encodeLine("SUB", pattern));
      this.#o.log("info", `link to ${p.id} at ${p.advertise} up`);
      // A link that closes from the other side ends this read.
      this.#track(this.#drain(conn).then(() => this.#linkDown(p, conn)));
      p.failing = false;
    }, (e) => {
      p.dialing = false;
      // Said once until a dial succeeds: a peer that stays unreachable must not flood the log.
      if (!p.failing && !p.gone && !this.#closed) {
        this.#o.log(
          "warn",
          `cannot dial ${p.id} at ${p.advertise}: ${(e as Error).message}; retrying`,
        );
      }
      p.failing = true;
      this.#redial(p);
    });
  }

  #linkDown(p: Peer, conn: Conn): void {
    if (p.conn !== conn) return;
    p.conn = undefined;
    if (!p.gone && !this.#closed) {
      this.#o.log("warn", `link to ${p.id} down; dialling again`);
      this.#redial(p);
    }
  }

  #redial(p: Peer): void {
    if (p.gone || this.#closed) return;
    p.timer = setTimeout(() => {
      p.timer = undefined;
      if (p.conn === undefined && !p.dialing && !p.gone && !this.#closed) this.#dial(p);
    }, CLUSTER_LINK_REDIAL_MS);
  }

  #track(loop: Promise<void>): void {
    this.#reading.add(loop);
    const done = () => void this.#reading.delete(loop);
    loop.then(done, done);
  }

  /** Reads an outbound link until it closes (peers never write on it). */
  async #drain(conn: Conn): Promise<void> {
    try {
      for await (const _ of conn.readable) { /* nothing is sent this way */ }
    } catch { /* closed */ }
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Conn | undefined;
      try {
        conn = await this.#o.listener.accept();
      } catch {
        if (this.#closed) return;
        // Out of file descriptors, say: back off a little instead of spinning on the error.
        await new Promise((r) => setTimeout(r, CLUSTER_LINK_REDIAL_MS));
        continue;
      }
      if (conn === undefined) return;
      if (this.#pending >= CLUSTER_INBOUND_PENDING_MAX) {
        this.#refusedPending++;
        conn.close(); // a flood of connections that do not speak: the port stays usable for peers
        continue;
      }
      this.#inbound.add(conn);
      this.#track(this.#read(conn));
    }
  }

  /**
   * The first line of an inbound connection (after the handshake, with a secret), within
   * `CLUSTER_FIRST_LINE_TIMEOUT_MS`; counted among the `CLUSTER_INBOUND_PENDING_MAX` until then.
   */
  async #firstLine(conn: Conn): Promise<FirstLine | undefined> {
    this.#pending++;
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      conn.close();
    }, CLUSTER_FIRST_LINE_TIMEOUT_MS);
    try {
      const first = await (this.#o.firstLine ?? firstLine)(conn);
      return late ? undefined : first;
    } catch (e) {
      if (late) return undefined;
      throw e;
    } finally {
      clearTimeout(timer);
      this.#pending--;
    }
  }

  /** Reads a peer's link: its HELLO, its interest, its messages. */
  async #read(conn: Conn): Promise<void> {
    const parser = new LinkParser();
    let peer: Peer | undefined;
    let handedOn = false;
    try {
      const first = await this.#firstLine(conn);
      if (first === undefined) return;
      const [op, node] = first.line.split(" ");
      if (op !== "HELLO" && op !== "PROXY" && op !== "REPL") {
        throw new NotClusterLineError(new TextEncoder().encode(first.line));
      }
      if (op === "PROXY" && node !== undefined && this.#o.proxy !== undefined) {
        handedOn = true; // the server owns it now, and closes it
        return this.#o.proxy(new PrefixedConn(conn, first.rest), node);
      }
      if (op === "REPL" && node !== undefined && this.#o.repl !== undefined) {
        handedOn = true; // replication owns it now, and closes it
        return this.#o.repl(new PrefixedConn(conn, first.rest), node);
      }
      this.#o.tick();
      const head = new TextEncoder().encode(first.line + "\r\n");
      for (const f of parser.push(head)) peer = this.#frame(f, peer, conn);
      if (first.rest.length > 0) {
        for (const f of parser.push(first.rest)) peer = this.#frame(f, peer, conn);
      }
      for await (const chunk of conn.readable) {
        this.#o.tick();
        for (const f of parser.push(chunk)) peer = this.#frame(f, peer, conn);
      }
    } catch (e) {
      if (this.#closed) return;
      if (peer === undefined) {
        // Before a HELLO: nothing of ours spoke. A TLS node dialling a plain one redials every
        // CLUSTER_LINK_REDIAL_MS: counted, and logged at most once a second per peer host.
        this.#refusedLines++;
        this.#refusals.refused(conn.remoteAddr, (e as Error).message);
      } else this.#o.log("warn", `link from ${peer.id} cut: ${(e as Error).message}`);
    } finally {
      if (!handedOn) conn.close();
      this.#inbound.delete(conn);
      if (peer !== undefined && --peer.inbound === 0) {
        peer.patterns.clear(); // its subscribers are unreachable now: forward nothing to it
        peer.wants.clear();
        if (peer.gone) this.#peers.delete(peer.id);
      }
    }
  }

  #frame(f: LinkFrame, peer: Peer | undefined, conn: Conn): Peer {
    if (f.op === "HELLO") {
      if (peer !== undefined) throw new Error("a second HELLO");
      let p = this.#peers.get(f.node);
      if (p === undefined) {
        // It dialled before our watch saw it join: known now, dialled when etcd says so.
        this.#peers.set(f.node, p = new Peer(f.node, ""));
      }
      if (p.inbound++ === 0) p.patterns.clear();
      return p;
    }
    if (peer === undefined) throw new Error(`${f.op} before HELLO from ${conn.remoteAddr}`);
    if (f.op === "MSG") {
      peer.received++;
      this.#received++;
      this.#o.deliver(f.topic, f.payload, f.options);
    } else if (f.op === "SUB") {
      if (!peer.patterns.has(f.pattern) && peer.patterns.size >= CLUSTER_PEER_PATTERNS_MAX) {
        throw new Error("over CLUSTER_PEER_PATTERNS_MAX patterns");
      }
      peer.patterns.add(f.pattern);
      peer.wants.clear();
    } else {
      peer.patterns.delete(f.pattern);
      peer.wants.clear();
    }
    return peer;
  }
}

/** `host:port` (`[::1]:7101` too) to its parts. */
export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return [host, Number(address.slice(i + 1))];
}
