/**
 * `CopyLink`: one connection from this node to another node that leads
 * queues this node's bindings feed (bindings.ts). The node a topic message
 * is published on applies the bindings; each copy for a queue another node
 * leads is a `PUB <queue>` on this link, and the publisher's reply waits for
 * the leader's answer, as it waits for a local copy's store.
 *
 * It is a proxy connection (`PROXY <node-id>`, docs/CLUSTERING.md): the
 * leader serves it with the ordinary client protocol as a trusted peer, so a
 * copy is stored, replicated and consumed like any PUB of that queue. One
 * link per leader node, shared by every publisher of this node: copies are
 * written in publish order, and the leader answers in order, so answers are
 * matched to a FIFO of waiting copies (no ids on the wire).
 *
 * When the connection breaks, every copy waiting for an answer fails with
 * `UNAVAILABLE` (the leader may have stored it: the outcome is unknown), and
 * a copy after `CLUSTER_LINK_REDIAL_MS` dials again (the publishes between are
 * refused before anything is done: no dial per publish to a dead leader).
 *
 * @module
 */
import { BrokerError } from "../broker/mod.ts";
import { type FrameHandler, FrameParser, type MsgFrame } from "../client/mod.ts";
import { CLUSTER_PROXY_PENDING_BYTES_MAX } from "../config/mod.ts";
import { ERROR_CODES, type ErrorCode } from "../protocol/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import { ProxyConn, type ProxyConnOwner } from "./proxy_conn.ts";
import type { ProxyOut } from "./proxy_wire.ts";

/** A copy waiting for its leader's answer. */
interface Waiting {
  readonly queue: string;
  resolve(): void;
  reject(e: unknown): void;
}

/** One link to a leader node (see the module comment). */
export class CopyLink implements FrameHandler, ProxyConnOwner {
  readonly node: string;
  readonly #link: ProxyConn;
  readonly #out: ProxyOut;
  #why = "";
  /** When it died (`Date.now()`): the bindings dial again only `CLUSTER_LINK_REDIAL_MS` later. */
  diedAt = 0;
  #parser: FrameParser;
  #waiting: Waiting[] = [];
  #head = 0;

  constructor(
    node: string,
    selfId: string,
    dial: () => Promise<Conn>,
  ) {
    this.node = node;
    this.#parser = new FrameParser(this);
    this.#link = new ProxyConn(selfId, dial, this);
    this.#out = this.#link.out;
  }

  /** Copies waiting for an answer. */
  get pending(): number {
    return this.#waiting.length - this.#head;
  }

  /** Whether it is broken or closed. */
  get dead(): boolean {
    return this.#link.dead;
  }

  /** Why it died. */
  get why(): string {
    return this.#why;
  }

  /**
   * Sends a copy of topic message `msg` to `queue` (led by this link's node):
   * its payload, priority, TTL, header block and properties. The TTL counts
   * again from the leader's accept, as a PUB's would.
   */
  send(queue: string, msg: Message): Promise<void> {
    if (this.#link.dead) return Promise.reject(unavailable(this.#why, false));
    let line = `PUB ${queue}`;
    if (msg.priority !== 0) line += ` priority:${msg.priority}`;
    const o = msg.opts;
    if (o !== undefined) {
      if (o.ttlMs !== 0) line += ` ttl:${o.ttlMs}`;
      if (o.correlationId !== undefined) line += ` correlation_id:${o.correlationId}`;
      if (o.replyTo !== undefined) line += ` reply_to:${o.replyTo}`;
      if (o.contentType !== undefined) line += ` content_type:${o.contentType}`;
      if (o.hdrBytes !== 0) line += ` hdr:${o.hdrBytes}`;
    }
    this.#out.text(`${line} ${msg.len}\r\n`);
    this.#out.payload(msg.buf, msg.off, msg.len);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waiting.push({ queue, resolve, reject });
    if (this.#out.size > CLUSTER_PROXY_PENDING_BYTES_MAX) {
      this.#link.fail(`over CLUSTER_PROXY_PENDING_BYTES_MAX bytes waiting for ${this.node}`);
    } else this.#link.flushSoon();
    return promise;
  }

  /** Closes it (the node leaves, or the leader left the cluster): what waits fails `UNAVAILABLE`. */
  close(why = "this node is stopping"): Promise<void> {
    this.#link.fail(why);
    return this.#link.done;
  }

  // --- ProxyConnOwner: the connection ---

  /** The leader, as texts name it. */
  get leader(): string {
    return `the queue's leader ${this.node}`;
  }

  received(chunk: Uint8Array): undefined {
    this.#parser.push(chunk);
  }

  /** It broke or closed: every copy waiting fails `UNAVAILABLE`. */
  ended(why: string, sent: boolean): void {
    this.#why = why;
    this.diedAt = Date.now();
    const e = unavailable(why, sent);
    for (let i = this.#head; i < this.#waiting.length; i++) this.#waiting[i].reject(e);
    this.#waiting = [];
    this.#head = 0;
  }

  #take(): Waiting | undefined {
    const i = this.#head;
    if (i >= this.#waiting.length) return undefined;
    const w = this.#waiting[i];
    this.#head = i + 1;
    if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
      this.#waiting.splice(0, this.#head);
      this.#head = 0;
    }
    return w;
  }

  // --- FrameHandler: what the leader sends ---

  onOk(_arg: string): void {
    this.#take()?.resolve();
  }

  onErr(code: string, text: string): void {
    // A fatal code is the leader closing this connection, not an answer: the close follows.
    if (ERROR_CODES[code as ErrorCode] === true) return;
    const w = this.#take();
    if (w === undefined) return;
    // NOT_LEADER: the copy was not stored (the leader changed); the publisher may send again.
    const c = code === "NOT_LEADER" ? "UNAVAILABLE" : code as ErrorCode;
    w.reject(
      new BrokerError(c, `the copy for ${w.queue} was refused by its leader ${this.node}: ${text}`),
    );
  }

  onPing(): void {
    this.#out.text("PONG\r\n");
    this.#link.flushSoon();
  }

  onMsg(_f: MsgFrame): void {}
  onPong(): void {}
  onInfo(_json: string): void {}
}

/** A copy's refusal: unknown once something was written, else not stored (`sent` false). */
function unavailable(why: string, sent: boolean): BrokerError {
  const outcome = sent ? "the outcome of the bound copy is unknown" : "the bound copy was not sent";
  return new BrokerError("UNAVAILABLE", `${why}: ${outcome}`);
}
