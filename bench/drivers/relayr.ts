/**
 * Raw Relayr driver (docs/PROTOCOL.md): pipelined `PUB` frames out, `MSG`
 * frames parsed on bytes, `ACK`s batched per read.
 *
 * @module
 */
import { bytes, concat, CRLF, decimal, digitsEnd, lastSpace, latin1, OutBuf } from "./bytes.ts";
import type { Driver, Events, FrameShape, Kind, Parser } from "./types.ts";
import { Mode } from "./types.ts";

/**
 * Longest ACK line we send: a control line is at most 4096 bytes
 * (CONTROL_LINE_BYTES_MAX) and one `msg_id:<16 digits>` token takes 24.
 */
const ACK_LINE_BYTES_MAX = 4000;
/** Most ids on one ACK line (ACK_IDS_MAX in src/config/limits.ts); the byte limit comes first. */
const ACK_IDS_MAX = 256;

const SPACE = 32;
const CR = 13;
const LF = 10;
/** The token a consumer's ACK line repeats for every id. */
const MSG_ID = bytes(" msg_id:");
/** `#consume`: the frame is not all in the buffer yet. */
const PARTIAL = -1;
/** `#consume`: not a line it reads; the general path does. */
const NOT_HERE = -2;

/** Whether `buf` has `msg_id:` at `at`. */
function isMsgId(buf: Uint8Array, at: number): boolean {
  return buf[at] === 109 /* m */ && buf[at + 1] === 115 /* s */ && buf[at + 2] === 103 /* g */ &&
    buf[at + 3] === 95 /* _ */ && buf[at + 4] === 105 /* i */ && buf[at + 5] === 100 /* d */ &&
    buf[at + 6] === 58 /* : */;
}

function destination(kind: Kind, name: string): string {
  return `${kind}:bench.${name}`;
}

/** Parses server-to-client Relayr frames. */
class RelayrParser implements Parser {
  replies = 0;
  #events: Events;
  #mode: Mode;
  #out = new OutBuf();
  #ackIds = 0;
  #ackLineStart = 0;
  /** Settle a read with one cumulative ACK (`ACK sub_id:<sid> upto:<id>`) rather than ids. */
  #upto: boolean;
  /** Where the read's last MSG line starts (its `upto` id), -1 when none. */
  #lastMsg = -1;
  #lastSizeAt = 0;
  /** Where the space before `msg_id:` was in the last MSG line, from its start. */
  #idAt = 0;

  constructor(events: Events, mode: Mode, upto: boolean) {
    this.#events = events;
    this.#mode = mode;
    this.#upto = upto;
  }

  feed(buf: Uint8Array, pos: number, end: number): number {
    const at = this.#feed(buf, pos, end);
    if (this.#lastMsg >= 0) this.#ackUpto(buf, this.#lastMsg, this.#lastSizeAt);
    return at;
  }

  #feed(buf: Uint8Array, pos: number, end: number): number {
    const ids = this.#mode === Mode.consume && !this.#upto;
    while (pos < end) {
      if (ids && buf[pos] === 77 /* M */) {
        const next = this.#consume(buf, pos, end);
        if (next >= 0) {
          pos = next;
          continue;
        }
        if (next === PARTIAL) break;
      }
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) break;
      const le = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
      const c = buf[pos];
      if (c === 77 /* M */) {
        // MSG <dest> sub_id:<sid> msg_id:<id> [opt:val]... <size>: size is the last token.
        const i = lastSpace(buf, pos, le);
        const size = decimal(buf, i + 1, le);
        if (size < 0) {
          this.#events.error(`MSG with a bad size: ${latin1(buf, pos, Math.min(le, pos + 200))}`);
          return end;
        }
        const start = nl + 1;
        const pe = start + size;
        if (pe >= end) break;
        let next: number;
        if (buf[pe] === LF) next = pe + 1;
        else if (pe + 1 >= end) break;
        else next = pe + 2;
        let correlation = -1;
        if (this.#mode === Mode.consume) {
          if (!this.#upto) this.#ack(buf, pos, i);
          else {
            this.#lastMsg = pos;
            this.#lastSizeAt = i;
          }
        } else if (this.#mode !== Mode.plain) correlation = this.#options(buf, pos, i, start, size);
        this.#events.msg(buf, start, size, correlation);
        pos = next;
        continue;
      }
      if (c === 79 /* O */) this.replies++;
      else if (c === 80 /* P */ && buf[pos + 1] === 73 /* I */) this.#out.ascii("PONG\r\n");
      else if (c === 80 && buf[pos + 1] === 79 /* O */) this.#events.pong();
      else if (c === 73 /* I */ || le === pos) { /* INFO or an empty line */ }
      else this.#events.error(latin1(buf, pos, Math.min(le, pos + 200)));
      pos = nl + 1;
    }
    return pos;
  }

  /**
   * A queue consumer's MSG frame at `buf[pos]` whose `msg_id:` token is where
   * it was in the last line (one destination and sub_id per consumer: the
   * same offset every time), read forward from there: the id's digits,
   * copied to the open ACK line, then the size's up to the line end. The
   * prefix before the token is not read, as the NATS driver does not read
   * its subject and sid (it takes the size from the line end): the id is
   * all an ACK needs, and the token being there, a space before it and only
   * digits and the size after it, is the grammar's shape of such a line.
   * Anything else (the first line, options after the id, another
   * destination) is `NOT_HERE`, for the general path. Returns where the next
   * frame starts, or `PARTIAL`. What a lean client does: `indexOf` for the
   * line end cost this driver ~85 ns per 60-byte line on Deno (a builtin
   * call that is not inlined), as much as the rest of its work per message.
   */
  #consume(buf: Uint8Array, pos: number, end: number): number {
    const s = pos + this.#idAt;
    if (s + 8 >= end) return PARTIAL;
    if (buf[s] !== SPACE || !isMsgId(buf, s + 1)) return NOT_HERE;
    // The token goes to the ACK line as the id is read; taken back if the line is not one of ours.
    const out = this.#out;
    const mark = out.length;
    if (this.#ackIds === 0) out.ascii("ACK");
    out.bytes(MSG_ID);
    const i = out.digits(buf, s + 8, end); // the id
    const j = digitsEnd(buf, i + 1, end); // the size
    let next = NOT_HERE;
    if (j + 1 >= end) next = PARTIAL;
    else if (buf[i] === SPACE && i > s + 8 && j > i + 1) { // digits, a space, digits (not an option)
      let start = -1;
      if (buf[j] === LF) start = j + 1;
      else if (buf[j] === CR && buf[j + 1] === LF) start = j + 2;
      const size = decimal(buf, i + 1, j);
      const pe = start + size;
      if (start < 0) next = NOT_HERE;
      else if (pe >= end) next = PARTIAL;
      else if (buf[pe] === LF) next = pe + 1;
      else next = pe + 1 >= end ? PARTIAL : pe + 2;
      if (next >= 0) {
        if (this.#ackIds === 0) this.#ackLineStart = mark;
        if (++this.#ackIds >= ACK_IDS_MAX || out.length - this.#ackLineStart > ACK_LINE_BYTES_MAX) {
          this.#closeAck();
        }
        this.#events.msg(buf, start, size, -1);
        return next;
      }
    }
    out.truncate(mark);
    return next;
  }

  /**
   * Appends the `msg_id:<id>` token of the MSG line `buf[pos, sizeAt)` to the
   * open ACK line. The token starts where it started in the last MSG line
   * (one destination and sub_id per consumer: the same offset every time),
   * checked there and copied up to its end in one pass; a line where it is
   * not (the first, another destination) finds it by scanning back from the
   * size, or forward over the tokens before it when options follow it. What
   * a careful client does: three `indexOf` calls per message cost this driver
   * ~0.17 µs, as much as the rest of its read path, and the backward scan
   * plus a separate copy ~14 ns more than this (bench/README.md).
   */
  #ack(buf: Uint8Array, pos: number, sizeAt: number): void {
    let s = pos + this.#idAt;
    if (s >= sizeAt || buf[s] !== SPACE || !isMsgId(buf, s + 1)) {
      s = sizeAt - 1;
      while (s > pos && buf[s] !== SPACE) s--;
      if (!isMsgId(buf, s + 1)) {
        // Options after msg_id: tokens are single-space separated (MSG, dest, sub_id, msg_id).
        s = buf.indexOf(SPACE, pos + 4);
        s = buf.indexOf(SPACE, s + 1);
        if (s < 0 || s >= sizeAt || !isMsgId(buf, s + 1)) {
          this.#events.error(`no msg_id in ${JSON.stringify(latin1(buf, pos, sizeAt))}`);
          return;
        }
      }
      this.#idAt = s - pos;
    }
    const out = this.#out;
    if (this.#ackIds === 0) {
      this.#ackLineStart = out.length;
      out.ascii("ACK");
    }
    out.token(buf, s, sizeAt); // the space before the token too
    if (++this.#ackIds >= ACK_IDS_MAX || out.length - this.#ackLineStart > ACK_LINE_BYTES_MAX) {
      this.#closeAck();
    }
  }

  /**
   * One cumulative ACK for everything the read delivered: the sub_id and
   * msg_id of its last MSG line `buf[pos, sizeAt)` (a bench consumer has one
   * subscription, so its deliveries are one run).
   */
  #ackUpto(buf: Uint8Array, pos: number, sizeAt: number): void {
    this.#lastMsg = -1;
    const s = buf.indexOf(SPACE, pos + 4); // after dest: sub_id, then msg_id
    const m = buf.indexOf(SPACE, s + 1);
    let e = buf.indexOf(SPACE, m + 1);
    if (e < 0 || e > sizeAt) e = sizeAt;
    if (!isMsgId(buf, m + 1) || buf[s + 1] !== 115 /* s */) {
      this.#events.error(`no sub_id, msg_id in ${JSON.stringify(latin1(buf, pos, sizeAt))}`);
      return;
    }
    const out = this.#out;
    out.ascii("ACK ");
    out.slice(buf, s + 1, m + 1); // "sub_id:<sid> "
    out.ascii("upto:");
    out.slice(buf, m + 8, e);
    out.bytes(CRLF);
  }

  #closeAck(): void {
    if (this.#ackIds === 0) return;
    this.#out.bytes(CRLF);
    this.#ackIds = 0;
  }

  /** Reads `reply_to` and `correlation_id`; in respond mode also queues the reply. */
  #options(buf: Uint8Array, pos: number, sizeAt: number, start: number, size: number): number {
    const tokens = latin1(buf, pos, sizeAt).split(" ");
    let replyTo = "";
    let correlation = "";
    for (const t of tokens) {
      if (t.startsWith("reply_to:")) replyTo = t.slice(9);
      else if (t.startsWith("correlation_id:")) correlation = t.slice(15);
    }
    if (this.#mode === Mode.respond) {
      if (replyTo === "") {
        this.#events.error("request without reply_to");
      } else {
        const cid = correlation === "" ? "" : ` correlation_id:${correlation}`;
        this.#out.ascii(`PUB ${replyTo}${cid} ${size}\r\n`);
        this.#out.slice(buf, start, start + size);
        this.#out.bytes(CRLF);
      }
    }
    const digits = bytes(correlation);
    return decimal(digits, 0, digits.length);
  }

  takeOutput(): Uint8Array | null {
    this.#closeAck();
    return this.#out.take();
  }
}

/** The Relayr driver. */
export const relayr: Driver = {
  protocol: "relayr",
  consumeBlocks: false,
  hello: (auth) =>
    `CONNECT ${
      JSON.stringify({ verbose: false, client_id: "relayr-bench", name: "bench", ...auth })
    }\r\n`,
  ping: () => "PING\r\n",
  publishFrame(kind: Kind, name: string, size: number, options?: string): FrameShape {
    const opts = options === undefined ? "" : ` ${options}`;
    return { head: bytes(`PUB ${destination(kind, name)}${opts} ${size}\r\n`), tail: CRLF };
  },
  deliveryFrame(kind: Kind, name: string, size: number): FrameShape {
    const sid = kind === "queue" ? "c0" : "s0";
    const head = `MSG ${destination(kind, name)} sub_id:${sid} msg_id:1830000000000000 ${size}\r\n`;
    return { head: bytes(head), tail: CRLF };
  },
  subscribe: (name, index) => `SUB ${destination("topic", name)} sub_id:s${index}\r\n`,
  consume: (name, index, prefetch) =>
    `SUB ${destination("queue", name)} sub_id:c${index} prefetch:${prefetch}\r\n`,
  inbox: (name) => `SUB ${destination("topic", `${name}.inbox`)} sub_id:inbox\r\n`,
  respond: (name) => `SUB ${destination("topic", `${name}.rpc`)} sub_id:rpc\r\n`,
  request(name: string, correlation: number, payload: Uint8Array): Uint8Array {
    const to = destination("topic", `${name}.rpc`);
    const replyTo = destination("topic", `${name}.inbox`);
    const head =
      `PUB ${to} reply_to:${replyTo} correlation_id:${correlation} ${payload.length}\r\n`;
    return concat(head, payload, CRLF);
  },
  filterPublishFrame(name: string, size: number) {
    const head = `PUB ${destination("topic", name)} priority:0 ${size}\r\n`;
    return {
      head: bytes(head),
      tail: CRLF,
      variantAt: head.indexOf("priority:0") + 9,
      variants: [48, 49, 50, 51], // "0" to "3": one per subscriber (FILTER_STRIDE)
    };
  },
  subscribeFiltered: (name, index) =>
    `SUB ${destination("topic", name)} sub_id:s${index} filter:"priority = ${index}"\r\n`,
  consumeBound(name, index, prefetch) {
    const queue = destination("queue", `${name}.b${index}`);
    return `BIND ${destination("topic", name)} ${queue}\r\n` +
      `SUB ${queue} sub_id:c${index} prefetch:${prefetch}\r\n`;
  },
  parser: (events, mode, _name, _index, ackUpto = false) => new RelayrParser(events, mode, ackUpto),
};
