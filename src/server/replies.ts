/**
 * A connection's replies, in the order of the commands they answer, also
 * when some wait for the store (a publish or an ACK under `--fsync always`):
 * while one is pending, later replies are held behind it, and all that are
 * ready go out together when it settles. Nothing waits in the common case:
 * a reply with nothing pending ahead of it is appended at once.
 *
 * @module
 */
import { BrokerError, type ReplyWait, storeFailed } from "../broker/mod.ts";
import { ascii, errFrame, type ErrorCode, OK } from "../protocol/mod.ts";
import type { Outbound } from "./outbound.ts";

/** A reply held until an earlier, asynchronous one is ready; also a slot filled later (`fill`). */
export interface Held {
  bytes: Uint8Array | undefined;
  /**
   * Whether its `OK` is sent: `verbose` when the command came, not when the
   * answer does (a client may turn `verbose` off for a burst and on again
   * before the burst's answers are in).
   */
  readonly verbose: boolean;
}

/** The `OK msg_id:<id>` replies of publishes that wait for one store promise (one tick's). */
interface Group extends Held {
  readonly wait: Promise<void>;
  readonly ids: number[];
}

const EMPTY = new Uint8Array(0);

/** The reply side of one connection. */
export class Replies {
  /** Whether `OK`s are sent (`CONNECT {"verbose":false}` turns them off; errors always are). */
  verbose = true;
  #out: Outbound;
  /** Replies waiting, oldest at `#head` (those before it are sent). */
  #held: Held[] = [];
  #head = 0;
  /** The newest group of publishes waiting for one store promise (`publishedWhen`). */
  #group: Group | undefined;

  constructor(out: Outbound) {
    this.#out = out;
  }

  /** `OK` (when verbose). */
  ok(): void {
    if (this.verbose) this.bytes(OK);
  }

  /** `ERR <code> <text>`. */
  error(code: ErrorCode, text: string): void {
    this.bytes(errFrame(code, text));
  }

  /** The `ERR` of a refused broker operation; anything else is a bug and is thrown on. */
  brokerError(e: unknown): void {
    if (!(e instanceof BrokerError)) throw e;
    this.error(e.code, e.message);
  }

  /** A whole reply. */
  bytes(bytes: Uint8Array): void {
    if (this.#held.length === 0) this.#out.append(bytes);
    else this.#held.push({ bytes, verbose: true });
  }

  /** A whole reply in ASCII, written without an encoder. */
  ascii(s: string): void {
    if (this.#held.length === 0) this.#out.appendAscii(s);
    else this.#held.push({ bytes: ascii(s), verbose: true });
  }

  /**
   * `OK msg_id:<id>` for a publish: at once, or once the store has it. A
   * `duplicate` (a `dedup_id` seen within the window, not stored again) is
   * `OK msg_id:<first id> duplicate:true`, once the first is stored.
   */
  published(r: number | Promise<number>, duplicate = false): void {
    const tail = duplicate ? " duplicate:true\r\n" : "\r\n";
    if (typeof r === "number") {
      if (this.verbose) this.ascii(`OK msg_id:${r}${tail}`);
      return;
    }
    const slot = this.#hold();
    r.then(
      (id) => slot.bytes = slot.verbose ? ascii(`OK msg_id:${id}${tail}`) : EMPTY,
      (e) =>
        slot.bytes = e instanceof BrokerError
          ? errFrame(e.code, e.message)
          : errFrame("STORE_FAILED", String(e)),
    ).then(this.#release);
  }

  /**
   * `OK msg_id:<id>` once `stored` settles (`ERR` if it fails). The publishes
   * of one tick wait for one promise: they join one held reply, answered
   * with one callback, not a promise and a slot per message.
   */
  publishedWhen(stored: Promise<void>, id: number): void {
    const g = this.#group;
    if (
      g !== undefined && g.wait === stored && g.bytes === undefined &&
      g.verbose === this.verbose && this.#held[this.#held.length - 1] === g
    ) {
      g.ids.push(id);
      return;
    }
    const group: Group = { bytes: undefined, verbose: this.verbose, wait: stored, ids: [id] };
    this.#held.push(group);
    this.#group = group;
    stored.then(
      () => {
        if (!group.verbose) return void (group.bytes = EMPTY);
        let s = "";
        for (const id of group.ids) s += `OK msg_id:${id}\r\n`;
        group.bytes = ascii(s);
      },
      (e) => {
        const err = storeFailed(e);
        const one = errFrame(err.code, err.message);
        const all = new Uint8Array(one.length * group.ids.length);
        for (let i = 0; i < group.ids.length; i++) all.set(one, i * one.length);
        group.bytes = all;
      },
    ).then(this.#release);
  }

  /** `OK` (or `err`) once `stored` settles; `ERR STORE_FAILED` if it fails. */
  okWhen(stored: Promise<void>, err: Uint8Array | undefined): void {
    const slot = this.#hold();
    stored.then(
      () => slot.bytes = err ?? (slot.verbose ? OK : EMPTY),
      (e) =>
        slot.bytes = e instanceof BrokerError
          ? errFrame(e.code, e.message)
          : errFrame("STORE_FAILED", `not stored: ${(e as Error)?.message ?? e}`),
    ).then(this.#release);
  }

  /** `OK` (or `err`) at once when nothing is pending, else once `stored` settles. */
  okAfter(stored: void | Promise<void>, err: Uint8Array | undefined): void {
    if (stored !== undefined) this.okWhen(stored, err);
    else if (err !== undefined) this.bytes(err);
    else this.ok();
  }

  /**
   * A place for a reply that another party gives later (a command forwarded
   * to a queue's leader): later replies wait behind it until `fill`. No
   * promise: the forwarder keeps the slot and fills it when the answer comes.
   */
  hold(): Held {
    return this.#hold();
  }

  /** Gives a held slot its reply and sends what is ready. */
  fill(slot: Held, bytes: Uint8Array): void {
    slot.bytes = bytes;
    this.#release();
  }

  /** Fills a slot with `OK` or `OK <arg>` (`msg_id:<id>`...), or nothing when it was not verbose. */
  fillOk(slot: Held, arg: string): void {
    this.fill(slot, !slot.verbose ? EMPTY : arg === "" ? OK : ascii(`OK ${arg}\r\n`));
  }

  /**
   * A reply that goes once `n` answers came (the first error among them, or
   * `err`, or `OK`): the ACK of deliveries settled at another node.
   */
  waitFor(n: number, err: Uint8Array | undefined): ReplyWait {
    return new CountedReply(this, this.#hold(), n, err);
  }

  #hold(): Held {
    const slot: Held = { bytes: undefined, verbose: this.verbose };
    this.#held.push(slot);
    return slot;
  }

  /**
   * Sends the replies that are ready at the head. Each settled publish calls
   * it, so the sent ones are dropped from the front only now and then: a
   * splice per call made a long pipeline of waiting publishes (replicated
   * ones wait a round trip) quadratic.
   */
  #release = (): void => {
    const held = this.#held;
    let i = this.#head;
    while (i < held.length && held[i].bytes !== undefined) this.#out.append(held[i++].bytes!);
    if (i === held.length) {
      held.length = 0;
      this.#head = 0;
      this.#group = undefined;
    } else if (i >= 1024 && 2 * i >= held.length) {
      // Dropped in bulk, not one splice per answer: thousands of forwarded commands may wait.
      held.splice(0, i);
      this.#head = 0;
    } else this.#head = i;
  };
}

/** `Replies.waitFor`'s reply: counts the answers down, keeps the first error. */
class CountedReply implements ReplyWait {
  readonly #replies: Replies;
  readonly #slot: Held;
  #left: number;
  #err: Uint8Array | undefined;

  constructor(replies: Replies, slot: Held, n: number, err: Uint8Array | undefined) {
    this.#replies = replies;
    this.#slot = slot;
    this.#left = n;
    this.#err = err;
  }

  answer(err: Uint8Array | undefined): void {
    this.#err ??= err;
    if (--this.#left !== 0) return;
    if (this.#err !== undefined) this.#replies.fill(this.#slot, this.#err);
    else this.#replies.fillOk(this.#slot, "");
  }
}
