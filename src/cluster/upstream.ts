/**
 * `Upstream`: one proxy connection from a client connection to the leader of
 * some of its queues (one per client connection and leader node, opened on
 * the first command for it, closed when the client closes). It speaks the
 * client protocol after a first line `PROXY <node-id>`; the leader serves it
 * as a trusted client connection.
 *
 * The leader answers commands in order, so the answers are matched to a
 * FIFO of what was sent (no ids on the wire, no promise per command). A
 * forwarded PUB's reply is a held slot in the client connection's replies:
 * later replies wait behind it, so the client sees them in command order.
 *
 * When the connection breaks, every command waiting for an answer is
 * answered `ERR UNAVAILABLE` (a PUB's outcome is unknown: the leader may
 * have stored it; when the dial failed, nothing was sent and the text says
 * so), and its subscriptions are re-made at the new leader. The text names
 * the leader by what it leads for this connection: a queue, a topic, or both.
 *
 * @module
 */
import type { ReplyWait } from "../broker/mod.ts";
import { type FrameHandler, FrameParser, type MsgFrame } from "../client/mod.ts";
import { ACK_IDS_MAX, CLUSTER_PROXY_PENDING_BYTES_MAX } from "../config/mod.ts";
import {
  ascii,
  type DeclareFrame,
  errFrame,
  ERROR_CODES,
  type ErrorCode,
  type PubFrame,
} from "../protocol/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { Held, RoutedConnection } from "../server/mod.ts";
import { ProxyConn } from "./proxy_conn.ts";
import {
  declareQueueLine,
  declareTopicLine,
  type ProxyOut,
  pubLine,
  subLine,
} from "./proxy_wire.ts";
import type { RemoteSubscription, UpstreamPort } from "./remote_subscription.ts";

/** `q`, the first byte of a `queue:` destination. */
const Q = 0x71;
/** What an upstream has carried (`#carried`): commands for queues, for declared topics. */
const QUEUES = 1;
const TOPICS = 2;

/** What a command waiting for the leader's answer is. */
const Kind = { PUB: 0, SUB: 1, SETTLE: 2, UNSUB: 3, DECLARE: 4, ACKS: 5 } as const;
type Kind = typeof Kind[keyof typeof Kind];

/** What an upstream tells its router. */
export interface UpstreamOwner {
  readonly connection: RoutedConnection;
  /** The connection to `up` is gone; its subscriptions wait to be re-made. */
  broken(up: Upstream, subs: RemoteSubscription[]): void;
  /** The leader refused a command as not its queue's leader: routes are stale. */
  stale(): void;
  /** A SUB refused with NOT_LEADER: re-made at the new leader (`slot`: the client's reply). */
  resubscribe(sub: RemoteSubscription, slot: Held | undefined): void;
  /** A subscription the leader refused (any other ERR): it is not made. */
  refused(sub: RemoteSubscription): void;
}

/** One proxy connection to a leader (see the module comment). */
export class Upstream implements UpstreamPort, FrameHandler {
  readonly node: string;
  readonly #owner: UpstreamOwner;
  readonly #c: RoutedConnection;
  /** The connection (dial, writes, reads); `#out` is its outbound buffer. */
  readonly #link: ProxyConn;
  readonly #out: ProxyOut;
  #parser: FrameParser;
  /** The subscriptions living on it, by sub id (the same id on the client and the leader). */
  #subs = new Map<string, RemoteSubscription>();
  /** Commands waiting for an answer, oldest at `#head`: their kind, and their reply or subscription. */
  #kinds: Kind[] = [];
  #refs: unknown[] = [];
  /** The client-visible id of a settle, for the text of its error. */
  #ids: number[] = [];
  #head = 0;
  readonly #counter: { forwarded: number };
  /**
   * The ACK line being gathered: the deliveries of one client ACK line that
   * this leader made go as one line (their leader's ids), answered once;
   * written before anything else is, and at the end of the tick.
   */
  #batchReply: ReplyWait | undefined = undefined;
  #batchUids: number[] = [];
  #batchCids: number[] = [];
  /** QUEUES | TOPICS: the kinds of destination its commands were for (the leader's name in texts). */
  #carried = 0;
  /** Set while reading is paused for a full client connection. */
  #resume: (() => void) | undefined = undefined;

  constructor(
    owner: UpstreamOwner,
    node: string,
    selfId: string,
    dial: () => Promise<Conn>,
    /** Where every command sent is counted (the node's `forwarded_commands`). */
    counter: { forwarded: number },
  ) {
    this.#counter = counter;
    this.#owner = owner;
    this.#c = owner.connection;
    this.node = node;
    this.#parser = new FrameParser(this);
    this.#link = new ProxyConn(selfId, dial, this);
    this.#out = this.#link.out;
  }

  /** Commands waiting for the leader's answer. */
  get pending(): number {
    return this.#kinds.length - this.#head;
  }

  /** Whether it is broken or closed (a new one is made for the next command). */
  get dead(): boolean {
    return this.#link.dead;
  }

  /** "the queue's leader n1", "the topic's leader n1", or "the leader n1" (it carried both). */
  get leader(): string {
    const c = this.#carried;
    const who = c === QUEUES
      ? "the queue's leader"
      : c === TOPICS
      ? "the topic's leader"
      : "the leader";
    return `${who} ${this.node}`;
  }

  #carry(dest: string): void {
    this.#carried |= dest.charCodeAt(0) === Q ? QUEUES : TOPICS;
  }

  // --- commands ---

  pub(f: PubFrame, slot: Held): void {
    this.#closeBatch();
    this.#carry(f.dest);
    if (f.options !== undefined) {
      this.#out.text(pubLine(f.dest, f.options, f.len));
      this.#out.payload(f.buf, f.off, f.len);
    } else {
      // The parser hands a run of PUBs to one queue the same string: its prefix is encoded once.
      if (f.dest !== this.#pubDest) {
        this.#pubDest = f.dest;
        this.#pubPrefix = new TextEncoder().encode(`PUB ${f.dest} `);
      }
      this.#out.pubPlain(this.#pubPrefix, f.buf, f.off, f.len);
    }
    this.#expect(Kind.PUB, slot, 0);
  }
  #pubDest = "";
  #pubPrefix = new Uint8Array(0);

  sub(s: RemoteSubscription, slot: Held | undefined): void {
    s.upstream = this;
    this.#carry(s.destination);
    this.#subs.set(s.sid, s);
    this.#closeBatch();
    this.#out.text(subLine(s.destination, s.sid, s.options));
    this.#expect(Kind.SUB, [s, slot], 0);
  }

  declare(f: DeclareFrame, slot: Held): void {
    this.#closeBatch();
    this.#carry(f.dest);
    this.#out.text(
      f.queue === undefined
        ? declareTopicLine(f.dest, f.options)
        : declareQueueLine(f.dest, f.queue),
    );
    this.#expect(Kind.DECLARE, slot, 0);
  }

  ack(upstreamId: number, clientId: number, reply: ReplyWait): void {
    if (this.#link.dead) return reply.answer(this.#unavailable);
    if (reply !== this.#batchReply || this.#batchUids.length >= ACK_IDS_MAX) this.#closeBatch();
    this.#batchReply = reply;
    this.#batchUids.push(upstreamId);
    this.#batchCids.push(clientId);
    this.#link.flushSoon();
  }

  /** Writes the gathered ACK line, one command waiting for one answer on behalf of its ids. */
  #closeBatch(): void {
    const reply = this.#batchReply;
    if (reply === undefined) return;
    const uids = this.#batchUids;
    let line = "ACK";
    for (let i = 0; i < uids.length; i++) line += ` msg_id:${uids[i]}`;
    this.#out.text(`${line}\r\n`);
    this.#batchReply = undefined;
    this.#batchUids = [];
    this.#expect(Kind.ACKS, [reply, uids, this.#batchCids], 0);
    this.#batchCids = [];
  }

  nack(upstreamId: number, clientId: number, delayMs: number, reply: ReplyWait): void {
    this.#closeBatch();
    this.#out.text(`NACK msg_id:${upstreamId}${delayMs > 0 ? ` delay:${delayMs}` : ""}\r\n`);
    this.#expect(Kind.SETTLE, reply, clientId);
  }

  unsub(sid: string, forget: boolean): void {
    if (this.#subs.delete(sid) && !this.#link.dead) {
      this.#closeBatch();
      this.#out.text(`UNSUB ${sid}${forget ? " forget:true" : ""}\r\n`);
      this.#expect(Kind.UNSUB, undefined, 0);
    }
  }

  resume(): void {
    const r = this.#resume;
    this.#resume = undefined;
    r?.();
  }

  /** Closes it (the client connection closed): the leader ends its subscriptions and gives their messages back. */
  close(): void {
    this.#link.fail("the client connection closed");
  }

  /** Breaks it for `why` (its node left the cluster): as if the connection broke. */
  cut(why: string): void {
    this.#link.fail(why);
  }

  /** Answers a command its leader will never answer: `ERR UNAVAILABLE`; a SUB is re-made elsewhere. */
  #gone(kind: Kind, ref: unknown): void {
    const unavailable = this.#unavailable;
    switch (kind) {
      case Kind.PUB:
      case Kind.DECLARE:
        return this.#c.replies.fill(ref as Held, unavailable);
      case Kind.SETTLE:
        return (ref as ReplyWait).answer(unavailable);
      case Kind.ACKS: {
        const [reply, uids] = ref as [ReplyWait, number[], number[]];
        for (let j = 0; j < uids.length; j++) reply.answer(unavailable);
        return;
      }
      case Kind.SUB: {
        const [s, slot] = ref as [RemoteSubscription, Held | undefined];
        if (this.#subs.get(s.sid) === s) {
          this.#subs.delete(s.sid);
          s.detach();
          this.#owner.resubscribe(s, slot);
        } else if (slot !== undefined) this.#c.replies.fill(slot, unavailable);
        return;
      }
    }
  }
  /** The answer of what waited when it broke (and of what comes after, which no router sends). */
  #unavailable = errFrame("UNAVAILABLE", "the connection to the leader is closed");

  #expect(kind: Kind, ref: unknown, id: number): void {
    // Routers drop a dead upstream at once; answered anyway, so that no reply can hang.
    if (this.#link.dead) return this.#gone(kind, ref);
    this.#counter.forwarded++;
    this.#kinds.push(kind);
    this.#refs.push(ref);
    this.#ids.push(id);
    if (this.#out.size > CLUSTER_PROXY_PENDING_BYTES_MAX) {
      return this.#link.fail(`over CLUSTER_PROXY_PENDING_BYTES_MAX bytes waiting for ${this.node}`);
    }
    this.#link.flushSoon();
  }

  // --- ProxyConnOwner: the connection ---

  /** The leader's bytes; while the client is not reading, reading stops (TCP back-pressure reaches it). */
  received(chunk: Uint8Array): Promise<void> | undefined {
    this.#c.broker.tick();
    this.#parser.push(chunk);
    if (this.#c.client.wantsMore() || this.#link.dead || this.#c.isClosed()) return undefined;
    return new Promise<void>((r) => this.#resume = r);
  }

  /** The gathered ACK line goes before the tick's write. */
  flushing(): void {
    this.#closeBatch();
  }

  /** The one end: every waiting command is answered, the subscriptions are handed back to be re-made. */
  ended(why: string, sent: boolean): void {
    this.resume();
    // Nothing written, nothing done: the client may send it again without a doubt.
    const unavailable = this.#unavailable = errFrame(
      "UNAVAILABLE",
      `${why}: ${sent ? "the outcome is unknown" : "nothing was sent; retry"}`,
    );
    const resubscribe: RemoteSubscription[] = [];
    for (let i = this.#head; i < this.#kinds.length; i++) this.#gone(this.#kinds[i], this.#refs[i]);
    this.#kinds = [];
    this.#refs = [];
    this.#ids = [];
    this.#head = 0;
    const open = this.#batchReply;
    if (open !== undefined) { for (const _ of this.#batchUids) open.answer(unavailable); }
    this.#batchReply = undefined;
    this.#batchUids = [];
    this.#batchCids = [];
    for (const s of this.#subs.values()) {
      s.detach();
      resubscribe.push(s);
    }
    this.#subs.clear();
    this.#owner.broken(this, resubscribe);
  }

  /** The oldest command waiting; its kind is returned, its ref and id left in `#ref`/`#id`. */
  #take(): Kind | undefined {
    const i = this.#head;
    if (i >= this.#kinds.length) return undefined;
    const kind = this.#kinds[i];
    this.#ref = this.#refs[i];
    this.#id = this.#ids[i];
    this.#refs[i] = undefined;
    this.#head = i + 1;
    if (this.#head >= 1024 && this.#head * 2 >= this.#kinds.length) {
      this.#kinds.splice(0, this.#head);
      this.#refs.splice(0, this.#head);
      this.#ids.splice(0, this.#head);
      this.#head = 0;
    }
    return kind;
  }
  #ref: unknown = undefined;
  #id = 0;

  // --- FrameHandler: what the leader sends ---

  onMsg(f: MsgFrame): void {
    this.#subs.get(f.subId)?.deliver(f, this.#c.broker.now);
  }

  onOk(arg: string): void {
    const kind = this.#take();
    const ref = this.#ref;
    switch (kind) {
      case Kind.PUB:
        return this.#c.replies.fillOk(ref as Held, arg);
      case Kind.DECLARE:
        return this.#c.replies.fillOk(ref as Held, "");
      case Kind.SETTLE:
        return (ref as ReplyWait).answer(undefined);
      case Kind.ACKS: {
        const [reply, uids] = ref as [ReplyWait, number[], number[]];
        for (let j = 0; j < uids.length; j++) reply.answer(undefined);
        return;
      }
      case Kind.SUB: {
        const [s, slot] = ref as [RemoteSubscription, Held | undefined];
        s.giveUpAt = 0;
        if (slot !== undefined) this.#c.replies.fillOk(slot, s.chosen ? `sub_id:${s.sid}` : "");
        return;
      }
    }
  }

  onErr(code: string, text: string): void {
    // A fatal code is the leader closing this connection, not an answer: the close follows.
    if (ERROR_CODES[code as ErrorCode] === true) return;
    const kind = this.#take();
    const ref = this.#ref;
    const line = errFrame(code as ErrorCode, text);
    if (code === "NOT_LEADER") this.#owner.stale();
    switch (kind) {
      case Kind.PUB:
      case Kind.DECLARE:
        // NOT_LEADER is answered before anything is done: passed on, the client may send it again.
        return this.#c.replies.fill(ref as Held, line);
      case Kind.SETTLE:
        return (ref as ReplyWait).answer(
          ascii(`ERR ${code} msg_id:${this.#id} ${text.replace(/^msg_id:\d+ ?/, "")}\r\n`),
        );
      case Kind.ACKS: {
        // The leader acked the ids it had and names the others: named again by their client ids.
        const [reply, uids, cids] = ref as [ReplyWait, number[], number[]];
        const named = text.replace(/msg_id:(\d+)/g, (all, id) => {
          const i = uids.indexOf(Number(id));
          return i < 0 ? all : `msg_id:${cids[i]}`;
        });
        reply.answer(ascii(`ERR ${code} ${named}\r\n`));
        for (let j = 1; j < uids.length; j++) reply.answer(undefined);
        return;
      }
      case Kind.SUB: {
        const [s, slot] = ref as [RemoteSubscription, Held | undefined];
        if (this.#subs.get(s.sid) !== s) return slot && this.#c.replies.fill(slot, line);
        this.#subs.delete(s.sid);
        s.detach();
        if (code === "NOT_LEADER") return this.#owner.resubscribe(s, slot);
        if (slot !== undefined) this.#c.replies.fill(slot, line);
        this.#owner.refused(s);
        return;
      }
    }
  }

  onPing(): void {
    this.#closeBatch();
    this.#out.text("PONG\r\n");
    this.#link.flushSoon();
  }

  onPong(): void {}

  onInfo(_json: string): void {}
}
