/**
 * What the front ends without a reply line of their own (gRPC calls, UDP
 * datagrams) give the cluster's router (routing.ts) so that it can forward
 * their queue commands to the queue's leader as it does a TCP connection's:
 * `AnswerSlots`, where the router's answers go (each slot remembers whom it
 * answers: no promise or closure per command), and `PublishingClient`, the
 * broker `Client` of a routed connection that only publishes.
 *
 * @module
 */
import { type Client, InFlight } from "../broker/mod.ts";
import type { ErrorCode } from "../protocol/mod.ts";
import type { Message } from "../storage/mod.ts";
import type { Held } from "./replies.ts";
import type { RouterReplies } from "./routing.ts";

/** Whoever waits for the answers of commands it handed to a router, by number. */
export interface Answers {
  /**
   * Command `i` was answered: `code` undefined for `OK` (`text`: what
   * followed it, `msg_id:<id>` for a publish), else the `ERR`'s code and text.
   */
  answer(i: number, code: ErrorCode | undefined, text: string): void;
}

/** A held slot that remembers whom it answers. */
interface Slot extends Held {
  readonly to: Answers;
  readonly i: number;
}

/**
 * A router's replies for a front end without a reply line: the caller sets
 * `to` and `i` before it hands a command to the router, and the answer (now,
 * or when the leader answers) goes to `to.answer(i, ...)`. Each answer goes
 * out as it comes: a front end that needs an order keeps it itself (a
 * PublishStream's acks are in batch order by their index).
 */
export class AnswerSlots implements RouterReplies {
  /** Who waits for the answer of the next command. */
  to: Answers;
  /** The next command's number for `to`. */
  i = 0;

  constructor(to: Answers) {
    this.to = to;
  }

  hold(): Held {
    const slot: Slot = { bytes: undefined, verbose: true, to: this.to, i: this.i };
    return slot;
  }

  fill(slot: Held, bytes: Uint8Array): void {
    const s = slot as Slot;
    const r = replyOf(bytes);
    s.to.answer(s.i, r.code, r.text);
  }

  fillOk(slot: Held, arg: string): void {
    const s = slot as Slot;
    s.to.answer(s.i, undefined, arg);
  }

  bytes(bytes: Uint8Array): void {
    const r = replyOf(bytes);
    this.to.answer(this.i, r.code, r.text);
  }

  error(code: ErrorCode, text: string): void {
    this.to.answer(this.i, code, text);
  }
}

const decoder = new TextDecoder();

/**
 * A reply line (`OK[ <arg>]\r\n` or `ERR <code> <text>\r\n`) as its code
 * (undefined: OK) and text. Read only for refusals and a leader's `ERR`s:
 * an `OK` from the leader comes as `fillOk`'s text, never as bytes.
 */
export function replyOf(bytes: Uint8Array): { code: ErrorCode | undefined; text: string } {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 10 || bytes[end - 1] === 13)) end--;
  const line = decoder.decode(bytes.subarray(0, end));
  if (!line.startsWith("ERR ")) return { code: undefined, text: line.slice(3) };
  const sp = line.indexOf(" ", 4);
  return sp < 0
    ? { code: line.slice(4) as ErrorCode, text: "" }
    : { code: line.slice(4, sp) as ErrorCode, text: line.slice(sp + 1) };
}

/**
 * The broker `Client` of a routed connection that only publishes (the gRPC
 * listener's unary calls, UDP ingest): it has no subscriptions, so nothing
 * is ever sent to it, and it never holds its upstreams back.
 */
export class PublishingClient implements Client {
  readonly id: number;
  readonly inflight: InFlight = new InFlight();

  constructor(id: number) {
    this.id = id;
  }

  wantsMore(): boolean {
    return true;
  }

  sendMsg(_head: Uint8Array, _msg: Message, _delivery: number): void {}

  slowConsumer(_detail: string): void {}

  delivered(_id: number): void {}
}
