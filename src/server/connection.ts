/**
 * One client connection: socket bytes flow through the framing stream into
 * `#handle`, replies and messages flow out through one coalescing writer.
 * There is one close path, `close(reason)`, and every close has a reason.
 *
 * @module
 */
import {
  type Acker,
  type Broker,
  BrokerError,
  type Client,
  type Subscription,
  TopicSubscription,
} from "../broker/mod.ts";
import { SUBSCRIPTIONS_PER_CONNECTION_MAX } from "../config/limits.ts";
import {
  type AckFrame,
  ascii,
  type ConnectFrame,
  type DeclareFrame,
  errFrame,
  type ErrorCode,
  type Frame,
  FrameDecoderStream,
  type NackFrame,
  OK,
  PING,
  PONG,
  type PubFrame,
  type SubFrame,
} from "../protocol/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import { CloseReason } from "./close_reason.ts";
import { Outbound } from "./outbound.ts";

/** How many ids of messages delivered without explicit acks are remembered, so their ACK is a no-op, not an error. */
const RECENT_UNACKED_IDS = 1024;

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly broker: Broker;
  readonly payloadBytesMax: number;
  /** The `INFO` JSON line. */
  info(): string;
  /** Called once when the connection has closed. */
  closed(c: Connection, reason: CloseReason, detail: string): void;
}

/** A reply held until an earlier, asynchronous reply is ready (replies stay in order). */
interface Held {
  bytes: Uint8Array | undefined;
}

/** One client connection. */
export class Connection implements Client {
  readonly id: number;
  readonly remoteAddr: string;
  readonly openedAt = Date.now();
  clientId: string | undefined;
  name: string | undefined;
  verbose = true;
  msgsIn = 0;
  bytesIn = 0;
  msgsOut = 0;
  bytesOut = 0;
  /** Last time the client sent anything (epoch ms). */
  lastActivity = Date.now();
  pingsOut = 0;
  readonly subs = new Map<string, Subscription>();
  #conn: Conn;
  #host: ConnectionHost;
  #broker: Broker;
  #out: Outbound;
  #inflight = new Map<number, Acker>();
  /** Scratch list of (acker, id) pairs for one ACK line, reused. */
  #ackers: (Acker | number)[] = [];
  #recent = new Float64Array(RECENT_UNACKED_IDS);
  #recentPos = 0;
  #nextSid = 1;
  #held: Held[] = [];
  #reader: ReadableStreamDefaultReader<Frame[]> | undefined;
  #closed = false;

  constructor(id: number, conn: Conn, host: ConnectionHost) {
    this.id = id;
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.#host = host;
    this.#broker = host.broker;
    this.#out = new Outbound(conn, {
      onDrain: () => this.#resume(),
      onOverflow: () => {
        queueMicrotask(() =>
          this.close(
            CloseReason.SLOW_CONSUMER,
            "outbound buffer over its limit: the client is not reading",
          )
        );
      },
      onWriteError: (err) => this.close(CloseReason.WRITE_ERROR, String(err)),
      beforeWrite: () => this.#broker.options.store.writePending(),
    });
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Outbound bytes waiting for the socket. */
  get pendingBytes(): number {
    return this.#out.pending;
  }

  /** Reads and handles frames until the client goes or the connection is closed. */
  async run(): Promise<void> {
    const frames = this.#conn.readable.pipeThrough(
      new FrameDecoderStream({ payloadBytesMax: this.#host.payloadBytesMax }),
    );
    const reader = this.#reader = frames.getReader();
    for (;;) {
      let batch: ReadableStreamReadResult<Frame[]>;
      try {
        batch = await reader.read();
      } catch (err) {
        return this.close(CloseReason.READ_ERROR, String(err));
      }
      if (batch.done || this.#closed) break;
      const frames = batch.value;
      this.lastActivity = this.#broker.tick();
      this.pingsOut = 0;
      try {
        for (let i = 0; i < frames.length && !this.#closed; i++) this.#handle(frames[i]);
      } catch (err) {
        // A bug, not bad input: bad input never throws. Close this connection
        // loudly (its messages go back to their queues) and keep serving the rest.
        return this.close(CloseReason.INTERNAL_ERROR, (err as Error)?.stack ?? String(err));
      }
    }
    this.close(CloseReason.CLIENT_CLOSED, "");
  }

  // --- Client (the broker's view) ---

  get writable(): boolean {
    return this.#out.writable;
  }

  sendMsg(head: Uint8Array, msg: Message, delivery: number): void {
    this.msgsOut++;
    this.bytesOut += msg.len;
    this.#out.appendMsg(head, msg, delivery);
  }

  slowConsumer(detail: string): void {
    queueMicrotask(() => this.close(CloseReason.SLOW_CONSUMER, detail));
  }

  track(id: number, sub: Acker): void {
    this.#inflight.set(id, sub);
  }

  untrack(id: number): void {
    this.#inflight.delete(id);
  }

  /** Remembers a message delivered without explicit acks (its ACK is then a no-op). */
  delivered(id: number): void {
    this.#recent[this.#recentPos] = id;
    this.#recentPos = (this.#recentPos + 1) % RECENT_UNACKED_IDS;
  }

  // --- frames ---

  #handle(f: Frame): void {
    switch (f.op) {
      case "PUB":
        return this.#pub(f);
      case "ACK":
        return this.#ack(f);
      case "SUB":
        return this.#sub(f);
      case "DECLARE":
        return this.#declare(f);
      case "UNSUB": {
        const sub = this.subs.get(f.sid);
        if (sub === undefined) {
          return this.#error("UNKNOWN_SUB_ID", `no subscription ${JSON.stringify(f.sid)}`);
        }
        if (f.forget && !(sub instanceof TopicSubscription && sub.durable !== undefined)) {
          return this.#error("BAD_ARGUMENT", `${JSON.stringify(f.sid)} is not durable: no forget`);
        }
        this.subs.delete(f.sid);
        this.#broker.unsubscribe(sub, f.forget === true);
        return this.#ok();
      }
      case "NACK":
        return this.#nack(f);
      case "PING":
        return this.#reply(PONG);
      case "PONG":
        return;
      case "INFO":
        return this.#replyAscii(`INFO ${this.#host.info()}\r\n`);
      case "CONNECT":
        return this.#connect(f);
      case "ERR":
        this.#error(f.code, f.message);
        if (f.fatal) this.close(CloseReason.PROTOCOL_ERROR, `${f.code} ${f.message}`);
        return;
    }
  }

  #connect(f: ConnectFrame): void {
    this.clientId = f.options.clientId;
    this.name = f.options.name;
    this.verbose = f.options.verbose;
    this.#ok();
  }

  #pub(f: PubFrame): void {
    this.msgsIn++;
    this.bytesIn += f.len;
    let r: number | Promise<number>;
    try {
      r = this.#broker.publishFrom(f.dest, f.buf, f.off, f.len, f.options);
    } catch (e) {
      return this.#brokerError(e);
    }
    if (typeof r === "number") {
      if (this.verbose) this.#replyAscii(`OK msg_id:${r}\r\n`);
      return;
    }
    const slot: Held = { bytes: undefined };
    this.#held.push(slot);
    r.then(
      (id) => slot.bytes = this.verbose ? ascii(`OK msg_id:${id}\r\n`) : EMPTY,
      (e) =>
        slot.bytes = e instanceof BrokerError
          ? errFrame(e.code, e.message)
          : errFrame("STORE_FAILED", String(e)),
    ).then(() => this.#releaseHeld());
  }

  #sub(f: SubFrame): void {
    if (this.subs.size >= SUBSCRIPTIONS_PER_CONNECTION_MAX) {
      return this.#error(
        "LIMIT",
        `at most ${SUBSCRIPTIONS_PER_CONNECTION_MAX} subscriptions per connection`,
      );
    }
    let sid = f.options.sid;
    const chosen = sid === undefined;
    if (sid === undefined) {
      do sid = String(this.#nextSid++); while (this.subs.has(sid));
    } else if (this.subs.has(sid)) {
      return this.#error(
        "DUPLICATE_SUB_ID",
        `sub_id ${JSON.stringify(sid)} is in use on this connection`,
      );
    }
    let sub: Subscription;
    try {
      sub = this.#broker.subscribe(this, f.dest, sid, f.options);
    } catch (e) {
      return this.#brokerError(e);
    }
    this.subs.set(sid, sub);
    if (chosen) this.#replyAscii(`OK sub_id:${sid}\r\n`);
    else this.#ok();
    this.#broker.activate(sub);
  }

  #declare(f: DeclareFrame): void {
    let stored: Promise<void>;
    try {
      stored = this.#broker.declare(f.dest, f.options);
    } catch (e) {
      return this.#brokerError(e);
    }
    this.#okWhen(stored, undefined);
  }

  /**
   * Replies first, then settles: a message the settlement frees up (prefetch
   * room, a NACK requeue) comes after the reply to the command that freed it.
   * The one exception: an ACK to a durable subscription is answered once its
   * position is stored, so the messages it frees may come first.
   */
  #ack(f: AckFrame): void {
    const ackers = this.#ackers;
    let unknown: number[] | undefined;
    let durable = false;
    for (const id of f.ids) {
      const acker = this.#inflight.get(id);
      if (acker !== undefined) {
        this.#inflight.delete(id);
        ackers.push(acker, id);
        if (acker instanceof TopicSubscription && acker.durable !== undefined) durable = true;
      } else if (!this.#recent.includes(id)) (unknown ??= []).push(id);
    }
    const err = unknown === undefined ? undefined : errFrame(
      "UNKNOWN_MSG_ID",
      `msg_id:${unknown.join(" msg_id:")} not in flight on this connection`,
    );
    if (durable) this.#okWhen(this.#broker.stateSaved(), err);
    else if (err === undefined) this.#ok();
    else this.#reply(err);
    for (let i = 0; i < ackers.length; i += 2) (ackers[i] as Acker).ack(ackers[i + 1] as number);
    ackers.length = 0;
  }

  #nack(f: NackFrame): void {
    const acker = this.#inflight.get(f.id);
    if (acker === undefined) {
      const why = this.#recent.includes(f.id) ? " (delivered without explicit acks)" : "";
      return this.#error("UNKNOWN_MSG_ID", `msg_id:${f.id} not in flight on this connection${why}`);
    }
    this.#inflight.delete(f.id);
    this.#ok();
    acker.nack(f.id, f.delayMs);
  }

  // --- replies (in order, also around asynchronous publishes) ---

  /** Replies `OK` (or `err`) once `stored` settles; `ERR STORE_FAILED` if it fails. */
  #okWhen(stored: Promise<void>, err: Uint8Array | undefined): void {
    const slot: Held = { bytes: undefined };
    this.#held.push(slot);
    stored.then(
      () => slot.bytes = err ?? (this.verbose ? OK : EMPTY),
      (e) => slot.bytes = errFrame("STORE_FAILED", `not stored: ${(e as Error)?.message ?? e}`),
    ).then(() => this.#releaseHeld());
  }

  #ok(): void {
    if (this.verbose) this.#reply(OK);
  }

  #error(code: ErrorCode, text: string): void {
    this.#reply(errFrame(code, text));
  }

  #brokerError(e: unknown): void {
    if (!(e instanceof BrokerError)) throw e;
    this.#error(e.code, e.message);
  }

  #reply(bytes: Uint8Array): void {
    if (this.#held.length === 0) this.#out.append(bytes);
    else this.#held.push({ bytes });
  }

  #replyAscii(s: string): void {
    if (this.#held.length === 0) this.#out.appendAscii(s);
    else this.#held.push({ bytes: ascii(s) });
  }

  #releaseHeld(): void {
    const held = this.#held;
    let i = 0;
    while (i < held.length && held[i].bytes !== undefined) this.#out.append(held[i++].bytes!);
    held.splice(0, i);
  }

  /** The socket drained: held topic messages and queue deliveries flow again. */
  #resume(): void {
    if (this.#closed) return;
    this.#broker.tick();
    for (const sub of this.subs.values()) this.#broker.activate(sub);
  }

  /** Sends a server PING (idle check); the caller counts it. */
  ping(): void {
    this.pingsOut++;
    this.#out.append(PING);
  }

  /**
   * The one close path: sends the error line for reasons that have one, gives
   * unacked messages back, flushes what is pending (bounded), closes the socket.
   */
  close(reason: CloseReason, detail: string, code?: ErrorCode): void {
    if (this.#closed) return;
    this.#closed = true;
    const errCode = code ?? closeCode(reason);
    if (errCode !== undefined && reason !== CloseReason.PROTOCOL_ERROR) {
      this.#out.append(errFrame(errCode, detail));
    }
    for (const sub of this.subs.values()) this.#broker.unsubscribe(sub);
    this.subs.clear();
    this.#inflight.clear();
    this.#host.closed(this, reason, detail);
    this.#finish();
  }

  async #finish(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#out.idle(),
      new Promise<void>((r) => timer = setTimeout(r, 2000)),
    ]);
    clearTimeout(timer);
    this.#out.kill();
    try {
      await this.#reader?.cancel();
    } catch { /* the stream already failed */ }
    this.#conn.close();
  }
}

const EMPTY = new Uint8Array(0);

function closeCode(reason: CloseReason): ErrorCode | undefined {
  switch (reason) {
    case CloseReason.SLOW_CONSUMER:
      return "SLOW_CONSUMER";
    case CloseReason.STALE_CONNECTION:
      return "STALE_CONNECTION";
    case CloseReason.TOO_MANY_CONNECTIONS:
      return "TOO_MANY_CONNECTIONS";
    case CloseReason.SERVER_SHUTDOWN:
      return "SHUTTING_DOWN";
    default:
      return undefined;
  }
}
