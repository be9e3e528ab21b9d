/**
 * A fake connection for broker unit tests: it records every MSG the broker
 * sends it and every slow-consumer report, and says whether it takes more
 * through a flag, so tests drive back-pressure without sockets.
 */
import { type Client, InFlight } from "../../src/broker/mod.ts";
import type { Message } from "../../src/storage/mod.ts";

/** One MSG as the fake connection received it. */
export interface SentMsg {
  /** The concrete destination of the MSG line (for a wildcard subscription, the topic). */
  dest: string;
  sid: string;
  id: number;
  /** The delivery count (1 for a first delivery). */
  delivery: number;
  text: string;
}

const decoder = new TextDecoder();
let nextId = 1;

/** A `Client` that records what the broker sends it. */
export class FakeClient implements Client {
  readonly id = nextId++;
  readonly inflight: InFlight = new InFlight();
  /** What `wantsMore()` answers: false makes it a lagging (non-writable) connection. */
  writable = true;
  /** MSGs it takes before `wantsMore()` turns false (a buffer filling up mid-drain). */
  room = Infinity;
  /** Every MSG sent, in order. */
  readonly sent: SentMsg[] = [];
  /** The detail of every `slowConsumer` call, in order. */
  readonly slowCalls: string[] = [];
  /** Ids delivered without explicit acks (`delivered` calls), in order. */
  readonly noAckIds: number[] = [];

  wantsMore(): boolean {
    return this.writable && this.room > 0;
  }

  sendMsg(head: Uint8Array, msg: Message, delivery: number): void {
    // The head is `MSG <dest> sub_id:<sid>` (see protocol/encoder.ts msgHead).
    const m = /^MSG (\S+) sub_id:(\S+)$/.exec(decoder.decode(head));
    if (m === null) throw new Error(`unexpected MSG head ${JSON.stringify(decoder.decode(head))}`);
    this.room--;
    this.sent.push({
      dest: m[1],
      sid: m[2],
      id: msg.id,
      delivery,
      text: decoder.decode(msg.payload),
    });
  }

  slowConsumer(detail: string): void {
    this.slowCalls.push(detail);
  }

  delivered(id: number): void {
    this.noAckIds.push(id);
  }

  /** Returns the MSGs received since the last call, and forgets them. */
  take(): SentMsg[] {
    return this.sent.splice(0);
  }

  /** The texts received since the last `take`/`texts`, and forgets them. */
  texts(): string[] {
    return this.take().map((m) => m.text);
  }

  /** ACKs `id` as the connection does (`#ack` in server/connection.ts); throws if not in flight. */
  ack(id: number): void {
    const d = this.inflight.take(id);
    if (d === undefined) throw new Error(`msg ${id} is not in flight on client ${this.id}`);
    d.sub.ack(d);
  }

  /** NACKs `id` as the connection does (`#nack`); `delayMs` 0 requeues now. */
  nack(id: number, delayMs = 0): void {
    const d = this.inflight.take(id);
    if (d === undefined) throw new Error(`msg ${id} is not in flight on client ${this.id}`);
    d.sub.nack(d, delayMs);
  }
}
