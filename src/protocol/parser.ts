/**
 * The pure, incremental parser of client frames: bytes in, frames out. No I/O,
 * no timers, no `await`: the same input split anywhere gives the same frames.
 *
 * Hot-path choices, measured rather than guessed:
 * - control lines are found with `indexOf(10)` (native memchr) and parsed on
 *   bytes; only the tokens that are needed are turned into strings;
 * - a payload that arrived whole is a `subarray` of the read chunk (no copy);
 *   only one split across chunks is copied, into a buffer of its exact size,
 *   so no byte is scanned twice;
 * - the last destination string is reused while publishers repeat it.
 *
 * Limits are enforced before anything is allocated: a control line is at most
 * `CONTROL_LINE_BYTES_MAX` bytes, a payload at most the configured maximum.
 *
 * @module
 */
import {
  ACK_IDS_MAX,
  ACK_TIMEOUT_MS_MAX,
  AUTH_SECRET_BYTES_MAX,
  CONTROL_LINE_BYTES_MAX,
  DECLARED_DELIVERIES_MAX,
  DECLARED_QUEUE_BYTES_MAX,
  DECLARED_QUEUE_MESSAGES_MAX,
  DEDUP_WINDOW_MS_MAX,
  DELIVER_AT_MS_MAX,
  HEADERS_BYTES_MAX,
  NACK_DELAY_MS_MAX,
  OPTIONS_MAX,
  PAYLOAD_BYTES_MAX,
  PREFETCH_MAX,
  PUB_DELAY_MS_MAX,
  RETAIN_AGE_MS_MAX,
  RETAIN_BYTES_MAX,
  RETAIN_MESSAGES_MAX,
  TOKEN_BYTES_MAX,
  TTL_MS_MAX,
} from "../config/limits.ts";
import { jsonErrorText } from "../config/json_error.ts";
import { type ErrorCode, snippet } from "./errors.ts";
import type {
  ConnectOptions,
  FilterOption,
  Frame,
  PubOptions,
  QueueDeclareOptions,
  RetentionOptions,
  StartPosition,
  SubOptions,
} from "./frames.ts";
import { defaultPubOptions, defaultQueueDeclareOptions, PubFrame, PubRun } from "./frames.ts";
import { decimal, decimalId, digits4, digitsEnd, ID_DIGITS_MAX } from "./decimal.ts";
import { compileFilter, FilterError } from "../filter/mod.ts";
import { DURABLE_NAME, msgIdOf, START_TIME_MS_MAX } from "./grammar.ts";
import { headerBlockError } from "./headers.ts";
import { grow } from "./bytes.ts";
import { LastString } from "./last_string.ts";
import { DEST, slotError } from "./names.ts";

const LF = 10;
const CR = 13;
const SP = 32;
const TAB = 9;

const State = { LINE: 0, PAYLOAD: 1, PAYLOAD_END: 2, PAYLOAD_END_LF: 3, DEAD: 4 } as const;
type State = typeof State[keyof typeof State];

const utf8 = new TextDecoder("utf-8", { fatal: false });

/** Tokens one line may have: an ACK with its most ids; other verbs stop at `OPTIONS_MAX` options. */
const TOKENS_MAX = ACK_IDS_MAX + 1;
/** Tokens of a non-ACK line: verb, destination, size and the options. */
const COMMAND_TOKENS_MAX = OPTIONS_MAX + 3;
/** Digits of a PUB's byte count: 10 hold any `--max-payload`, which is checked next. */
const SIZE_DIGITS_MAX = 10;
/** What every id of ACK and NACK starts with. */
const MSG_ID_PREFIX = "msg_id:";

/**
 * Thrown inside the parser to turn a bad argument into an `ERR` frame; it
 * never leaves the parser. Bad input is a `SyntaxError`; one is built only
 * for bad input, so its stack trace costs the hot path nothing.
 */
class BadInput extends SyntaxError {
  override name = "BadInput";
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

/** Options of a parser. */
export interface ParserOptions {
  /** Largest accepted payload in bytes. */
  payloadBytesMax?: number;
  /** Hands repeated PUBs out as `PubRun` frames (see `Parser.runs`). */
  runs?: boolean;
}

/** Run offsets a parser starts with (pairs): grows by doubling, up to what one chunk needs. */
const RUN_OFFSETS_MIN = 256;

/**
 * Token boundaries of the line being parsed, shared by every parser: a line is tokenized and
 * turned into a frame within one synchronous `#line_` call, so no parser needs them after it
 * returns. One per connection was a 2 KiB ArrayBuffer for each (20 MiB for 10,000 idle ones).
 * Made on first use, so bundles that import this module without a parser (the browser client)
 * do not carry it.
 */
let tokens: Int32Array | undefined;

/** A split line's buffer up to this size is kept for the next split (see `Parser.#line`). */
const LINE_KEPT_BYTES = 256;

/** A pure, incremental parser of client frames; one per connection. */
export class Parser {
  #payloadMax: number;
  #state: State = State.LINE;
  /**
   * Bytes of a control line split across chunks: grown to what the line
   * needs, and dropped once it is handled if over `LINE_KEPT_BYTES` (a
   * 4 KiB one for every connection that once had a split line was most of an
   * idle connection's memory when its handshake spanned two reads).
   */
  #line: Uint8Array<ArrayBuffer> = EMPTY;
  #lineLen = 0;
  /** Token boundaries of the current line: start, end, start, end... (shared scratch, see `tokens`) */
  #tok = tokens ??= new Int32Array(2 * TOKENS_MAX);
  #ntok = 0;
  #overflow = false;
  /** The PUB whose payload is being read. */
  #pubDest = "";
  #pubOptions: PubOptions | undefined;
  #pubError: BadInput | undefined;
  #payload: Uint8Array = EMPTY;
  #payloadLen = 0;
  #dests = new LastString(str);
  /** `#dests`' last string and its bytes, for `#repeatPub` (copied when the destination changes). */
  #destText = "";
  #destBytes: Uint8Array = EMPTY;
  #lastDestError: string | undefined = "no destination yet";
  /**
   * Whether two or more repeated PUBs in a row become one `PubRun` frame
   * (the TCP connection's reader, once past authentication; off by
   * default, so every other reader sees single PUBs only).
   */
  runs: boolean;
  /** Offset and length of every payload of this push's runs; made on the first run. */
  #runOffs: Int32Array | undefined = undefined;
  /** Pairs of `#runOffs` used by this push. */
  #runUsed = 0;

  constructor(options: ParserOptions = {}) {
    this.#payloadMax = options.payloadBytesMax ?? PAYLOAD_BYTES_MAX;
    this.runs = options.runs ?? false;
  }

  /** Lets go of the run offsets (an idle connection keeps no scratch; a run makes them again). */
  trim(): void {
    this.#runOffs = undefined;
  }

  /** The largest payload it accepts; a connection's user may have a smaller one than the server. */
  set payloadBytesMax(n: number) {
    this.#payloadMax = n;
  }

  /** Whether the parser stopped after a fatal error. */
  get dead(): boolean {
    return this.#state === State.DEAD;
  }

  /** Bytes of buffer it holds between chunks (a split line's, a split payload's). */
  get heldBytes(): number {
    return this.#line.length + this.#payload.length;
  }

  /** Whether it holds no partial frame (what a UDP datagram must end with). */
  get idle(): boolean {
    return this.#state === State.LINE && this.#lineLen === 0;
  }

  /**
   * Forgets a partial frame and a fatal error, so the next `push` starts a new
   * stream: the UDP ingest parses each datagram on its own with one parser.
   */
  reset(): void {
    this.#state = State.LINE;
    this.#lineLen = 0;
    this.#overflow = false;
    this.#payloadLen = 0;
    this.#pubOptions = undefined;
    this.#pubError = undefined;
  }

  /** Parses `chunk`, appending complete frames to `out`. Keeps partial frames for the next call. */
  push(chunk: Uint8Array, out: Frame[]): void {
    const n = chunk.length;
    let i = 0;
    this.#runUsed = 0; // the last push's runs are done with
    while (i < n) {
      switch (this.#state) {
        case State.LINE: {
          if (this.#lineLen === 0) {
            const next = this.#repeatPub(chunk, i, n, out);
            if (next >= 0) {
              i = next;
              break;
            }
          }
          const lf = chunk.indexOf(LF, i);
          if (this.#lineLen === 0 && lf >= 0) {
            if (lf - i > CONTROL_LINE_BYTES_MAX + 1) return this.#tooLong(out);
            i = this.#line_(chunk, i, lf, n, out);
            break;
          }
          const end = lf < 0 ? n : lf;
          if (this.#lineLen + end - i > CONTROL_LINE_BYTES_MAX + 1) return this.#tooLong(out);
          this.#line = grow(this.#line, this.#lineLen, this.#lineLen + end - i);
          this.#line.set(chunk.subarray(i, end), this.#lineLen);
          this.#lineLen += end - i;
          if (lf < 0) return;
          const len = this.#lineLen;
          this.#lineLen = 0;
          // The line is complete in #line; a PUB's payload starts after the LF in this chunk.
          this.#line_(this.#line, 0, len, len, out);
          if (this.#line.length > LINE_KEPT_BYTES) this.#line = EMPTY; // frames keep no views of it
          i = lf + 1;
          break;
        }
        case State.PAYLOAD: {
          const size = this.#payload.length;
          if (this.#payloadLen === 0 && size === 0) {
            this.#state = State.PAYLOAD_END;
            break;
          }
          const take = Math.min(size - this.#payloadLen, n - i);
          this.#payload.set(chunk.subarray(i, i + take), this.#payloadLen);
          this.#payloadLen += take;
          i += take;
          if (this.#payloadLen === size) this.#state = State.PAYLOAD_END;
          break;
        }
        case State.PAYLOAD_END: {
          const c = chunk[i++];
          if (c === LF) this.#emitPub(this.#payload, 0, this.#payload.length, out);
          else if (c === CR) this.#state = State.PAYLOAD_END_LF;
          else return this.#badEnd(out);
          break;
        }
        case State.PAYLOAD_END_LF: {
          if (chunk[i++] !== LF) return this.#badEnd(out);
          this.#emitPub(this.#payload, 0, this.#payload.length, out);
          break;
        }
        default:
          return;
      }
    }
  }

  /**
   * Handles the control line `buf[start, lf)`; returns where parsing goes on.
   * For a PUB whose payload and line end are all in `buf[.., avail)`, that is past them.
   */
  #line_(buf: Uint8Array, start: number, lf: number, avail: number, out: Frame[]): number {
    const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
    if (
      end - start > 4 && (buf[start] | 0x20) === 0x61 && (buf[start + 1] | 0x20) === 0x63 &&
      (buf[start + 2] | 0x20) === 0x6b && (buf[start + 3] === SP || buf[start + 3] === TAB)
    ) {
      const ack = ackIds(buf, start + 4, end);
      if (ack !== undefined) {
        out.push({ op: "ACK", ids: ack });
        return lf + 1;
      }
    }
    const ntok = this.#tokenize(buf, start, end);
    if (ntok === 0) return lf + 1;
    const tok = this.#tok;
    const v0 = buf[tok[0]] | 0x20;
    const vlen = tok[1] - tok[0];
    if (
      vlen === 3 && v0 === 0x70 && (buf[tok[0] + 1] | 0x20) === 0x75 &&
      (buf[tok[0] + 2] | 0x20) === 0x62
    ) {
      return this.#pub(buf, lf + 1, avail, out);
    }
    try {
      if (
        vlen === 3 && v0 === 0x61 && (buf[tok[0] + 1] | 0x20) === 0x63 &&
        (buf[tok[0] + 2] | 0x20) === 0x6b && !this.#overflow
      ) {
        out.push(this.#ack(buf)); // ACK is the other per-message command: no verb string
        return lf + 1;
      }
      const verb = verbOf(buf, tok[0], tok[1]);
      // Only these take a quoted value; PUB and ACK lines never pay for the quote rule.
      if (verb === "SUB" || verb === "BIND") this.#tokenize(buf, start, end, true);
      if (verb === "CONNECT") {
        out.push({ op: "CONNECT", options: connectOptions(buf, tok[1], end) });
        return lf + 1;
      }
      if (this.#overflow || this.#ntok > COMMAND_TOKENS_MAX) {
        throw new BadInput("BAD_ARGUMENT", `more than ${OPTIONS_MAX} options on one line`);
      }
      const frame = this.#command(buf, verb);
      if (frame) out.push(frame);
    } catch (e) {
      if (!(e instanceof BadInput)) throw e;
      out.push(err(e.code, e.message));
    }
    return lf + 1;
  }

  /**
   * Splits `buf[start, end)` into tokens; sets `#overflow` when there are too
   * many. `quoted`: with the quote rule of `filter:"..."` (docs/PROTOCOL.md,
   * "Framing"), for the verbs that take one, found by a first plain pass.
   */
  #tokenize(buf: Uint8Array, start: number, end: number, quoted = false): number {
    const tok = this.#tok;
    const max = tok.length >> 1;
    let ntok = 0;
    let i = start;
    this.#overflow = false;
    while (i < end) {
      while (i < end && (buf[i] === SP || buf[i] === TAB)) i++;
      if (i === end) break;
      if (ntok === max) {
        this.#overflow = true;
        break;
      }
      tok[2 * ntok] = i;
      if (quoted && buf[i] === 0x66 /* f */ && isQuotedFilter(buf, i, end)) {
        i = quoteEnd(buf, i + 8, end);
      }
      while (i < end && buf[i] !== SP && buf[i] !== TAB) i++;
      tok[2 * ntok + 1] = i;
      ntok++;
    }
    this.#ntok = ntok;
    return ntok;
  }

  /**
   * The fast path of a publisher's stream: `PUB <the last destination>
   * <size>\r\n<payload>\r\n`, written exactly so (one space, no options,
   * upper case) and whole in `buf` from `i`, is emitted without the line scan
   * and the tokenizer, with the destination's bytes compared once. A run of
   * such frames is read in this one loop, not one `push` round per frame
   * (1.2x faster on a chunk of 16 B PUBs, bench/micro/parser_bench.ts). A
   * DataView comparing four bytes at a time was faster still on Deno, but made
   * the broker on Bun 1.7x slower per publish (its socket chunks do not take
   * `.buffer` well): bytes it is. Returns where parsing goes on, after the
   * last frame of the run, or -1 when the first is not one, which the general
   * path then parses from `i` as if this had not looked (it changed nothing):
   * the same frames either way. The line is within `CONTROL_LINE_BYTES_MAX`:
   * the destination was valid, so at most `DESTINATION_BYTES_MAX`, and the
   * size has at most `SIZE_DIGITS_MAX` digits. With `runs` on, two or more
   * such frames are one `PubRun`, their payloads' places in
   * `#runOffs` (at most a pair per 9 bytes of the chunk, `PUB d 0\n\n`).
   */
  #repeatPub(buf: Uint8Array, i: number, n: number, out: Frame[]): number {
    const last = this.#destBytes;
    const dl = last.length;
    if (this.#lastDestError !== undefined || dl === 0) return -1;
    const dest = this.#destText;
    const max = this.#payloadMax;
    let done = -1;
    // The run so far: its first pair in #runOffs, payload bytes, largest payload.
    let offs = this.runs ? this.#runOffs ??= new Int32Array(2 * RUN_OFFSETS_MIN) : undefined;
    const from = this.#runUsed;
    let used = from;
    let bytes = 0;
    let lenMax = 0;
    for (;;) {
      if (buf[i] !== 0x50 || buf[i + 1] !== 0x55 || buf[i + 2] !== 0x42 || buf[i + 3] !== SP) {
        break;
      }
      const d = i + 4 + dl;
      if (d >= n || buf[d] !== SP) break;
      let j = 0;
      while (j < dl && last[j] === buf[i + 4 + j]) j++;
      if (j < dl) break;
      let k = d + 1;
      let size = 0;
      for (; k < n && k - d <= SIZE_DIGITS_MAX; k++) {
        const c = buf[k] - 0x30;
        if (c < 0 || c > 9) break;
        size = size * 10 + c;
      }
      if (k === d + 1 || k >= n || size > max) break;
      let p: number;
      if (buf[k] === LF) p = k + 1;
      else if (buf[k] === CR && buf[k + 1] === LF) p = k + 2;
      else break;
      const e = p + size;
      let next: number;
      if (buf[e] === LF && e < n) next = e + 1;
      else if (buf[e] === CR && buf[e + 1] === LF && e + 1 < n) next = e + 2;
      else break;
      if (done < 0) {
        this.#pubError = undefined;
        this.#pubOptions = undefined;
        this.#pubDest = dest;
      }
      if (offs === undefined) out.push(new PubFrame(dest, buf, p, size, undefined));
      else {
        if (2 * used === offs.length) offs = this.#growRunOffs(used);
        offs[2 * used] = p;
        offs[2 * used + 1] = size;
        used++;
        bytes += size;
        if (size > lenMax) lenMax = size;
      }
      done = i = next;
      if (i >= n) break;
    }
    if (offs !== undefined && used > from) {
      this.#runUsed = used;
      out.push(
        used - from === 1
          ? new PubFrame(dest, buf, offs[2 * from], offs[2 * from + 1], undefined)
          : new PubRun(dest, buf, offs, from, used, bytes, lenMax),
      );
    }
    return done;
  }

  /**
   * Doubles the run offsets, keeping the `used` pairs of this push (earlier
   * runs of the push keep pointing into the old array, which stays theirs).
   */
  #growRunOffs(used: number): Int32Array {
    const old = this.#runOffs!;
    const grown = new Int32Array(2 * old.length);
    grown.set(old.subarray(0, 2 * used));
    return this.#runOffs = grown;
  }

  /** Parses a PUB line whose payload starts at `p` in `buf`; returns where parsing goes on. */
  #pub(buf: Uint8Array, p: number, avail: number, out: Frame[]): number {
    const tok = this.#tok;
    const last = this.#ntok - 1;
    const size = this.#overflow
      ? -1
      : decimal(buf, tok[2 * last], tok[2 * last + 1], SIZE_DIGITS_MAX);
    if (size < 0 || last === 0) {
      this.#state = State.DEAD;
      out.push(fatal("BAD_FRAME", `PUB needs a byte count as its last argument`));
      return avail;
    }
    if (size > this.#payloadMax) {
      this.#state = State.DEAD;
      out.push(fatal("PAYLOAD_TOO_LARGE", `payload of ${size} bytes is over ${this.#payloadMax}`));
      return avail;
    }
    this.#pubError = undefined;
    this.#pubOptions = undefined;
    if (last < 2) this.#pubError = new BadInput("BAD_ARGUMENT", "PUB needs a destination");
    else if (this.#ntok > COMMAND_TOKENS_MAX) {
      this.#pubError = new BadInput("BAD_ARGUMENT", `more than ${OPTIONS_MAX} options on one line`);
    } else {
      this.#pubDest = this.#destination(buf, tok[2], tok[3]);
      try {
        const why = this.#lastDestError;
        if (why) throw new BadInput("BAD_DESTINATION", why);
        if (last > 2) this.#pubOptions = this.#pubOpts(buf, 2, last, size);
      } catch (e) {
        if (!(e instanceof BadInput)) throw e;
        this.#pubError = e;
      }
    }
    // Fast path: the payload and its line end are in this buffer.
    const e = p + size;
    if (e < avail) {
      if (buf[e] === LF) {
        this.#emitPub(buf, p, e - p, out);
        return e + 1;
      }
      if (buf[e] === CR && e + 1 < avail) {
        if (buf[e + 1] !== LF) {
          this.#badEnd(out);
          return avail;
        }
        this.#emitPub(buf, p, e - p, out);
        return e + 2;
      }
    }
    this.#payload = new Uint8Array(size);
    this.#payloadLen = 0;
    this.#state = State.PAYLOAD;
    return p;
  }

  /** Returns the destination string, reusing the last one (and its validation) when the bytes repeat. */
  #destination(buf: Uint8Array, s: number, e: number): string {
    const dest = this.#dests.get(buf, s, e);
    if (this.#dests.fresh) {
      this.#lastDestError = slotError(dest, DEST.PUBLISH);
      this.#destText = dest;
      this.#destBytes = buf.slice(s, e);
    }
    return dest;
  }

  #pubOpts(buf: Uint8Array, from: number, to: number, size: number): PubOptions {
    const o = defaultPubOptions();
    for (let k = from; k < to; k++) {
      const [key, value] = this.#option(buf, k);
      switch (key) {
        case "priority":
          o.priority = intIn(key, value, 0, 9);
          break;
        case "ttl":
          o.ttlMs = intIn(key, value, 1, TTL_MS_MAX);
          break;
        case "correlation_id":
          o.correlationId = token(key, value);
          break;
        case "content_type":
          o.contentType = token(key, value);
          break;
        case "reply_to": {
          const why = slotError(value, DEST.REPLY_TO);
          if (why) throw new BadInput("BAD_DESTINATION", why);
          o.replyTo = value;
          break;
        }
        case "hdr":
          o.hdrBytes = intIn(key, value, 0, Math.min(size, HEADERS_BYTES_MAX));
          break;
        case "delay":
          o.delayMs = intIn(key, value, 0, PUB_DELAY_MS_MAX);
          break;
        case "deliver_at":
          o.deliverAt = intIn(key, value, 0, DELIVER_AT_MS_MAX);
          break;
        case "dedup_id":
          o.dedupId = token(key, value);
          break;
        default:
          throw unknownOption("PUB", key);
      }
    }
    if (o.delayMs !== 0 && o.deliverAt !== 0) {
      throw new BadInput("BAD_ARGUMENT", "PUB takes delay or deliver_at, not both");
    }
    return o;
  }

  /** Splits option token `k` at its first `:`. */
  #option(buf: Uint8Array, k: number): [string, string] {
    const s = this.#tok[2 * k];
    const e = this.#tok[2 * k + 1];
    const colon = buf.subarray(s, e).indexOf(0x3a);
    if (colon <= 0) {
      throw new BadInput("BAD_ARGUMENT", `expected key:value, got ${snippet(buf.subarray(s, e))}`);
    }
    return [str(buf, s, s + colon), str(buf, s + colon + 1, e)];
  }

  #emitPub(buf: Uint8Array, off: number, len: number, out: Frame[]): void {
    this.#state = State.LINE;
    this.#payload = EMPTY;
    const error = this.#pubError ?? this.#headerError(buf, off, len);
    if (error) out.push(err(error.code, error.message));
    else out.push(new PubFrame(this.#pubDest, buf, off, len, this.#pubOptions));
  }

  #headerError(buf: Uint8Array, off: number, len: number): BadInput | undefined {
    const hdr = this.#pubOptions?.hdrBytes ?? 0;
    if (hdr === 0) return undefined;
    const payload = buf.subarray(off, off + len);
    const why = headerBlockError(payload.subarray(0, hdr));
    return why ? new BadInput("BAD_HEADERS", why) : undefined;
  }

  #command(buf: Uint8Array, verb: string): Frame | undefined {
    const ntok = this.#ntok;
    switch (verb) {
      case "SUB":
        return this.#sub(buf);
      case "DECLARE":
        return this.#declare(buf);
      case "BIND":
      case "UNBIND":
        return this.#bind(buf, verb);
      case "UNSUB": {
        if (ntok !== 2 && ntok !== 3) {
          throw new BadInput("BAD_ARGUMENT", "UNSUB takes one sub_id and an optional forget:true");
        }
        let sid = str(buf, this.#tok[2], this.#tok[3]);
        if (sid.startsWith("sub_id:")) sid = sid.slice(7);
        if (ntok === 2) return { op: "UNSUB", sid: token("sub_id", sid) };
        const [key, value] = this.#option(buf, 2);
        if (key !== "forget") throw unknownOption("UNSUB", key);
        if (value !== "true") throw new BadInput("BAD_ARGUMENT", `forget must be "true"`);
        return { op: "UNSUB", sid: token("sub_id", sid), forget: true };
      }
      case "ACK":
        return this.#ack(buf);
      case "NACK":
        return this.#nack(buf);
      case "PING":
      case "PONG":
      case "INFO":
        if (ntok !== 1) throw new BadInput("BAD_ARGUMENT", `${verb} takes no arguments`);
        return { op: verb };
      default:
        throw new BadInput("UNKNOWN_COMMAND", `unknown command ${snippet(utf8encode(verb))}`);
    }
  }

  #sub(buf: Uint8Array): Frame {
    if (this.#ntok < 2) throw new BadInput("BAD_ARGUMENT", "SUB needs a destination");
    const dest = str(buf, this.#tok[2], this.#tok[3]);
    const why = slotError(dest, DEST.SUBSCRIBE);
    if (why) throw new BadInput("BAD_DESTINATION", why);
    const o: SubOptions = {
      sid: undefined,
      ack: undefined,
      prefetch: undefined,
      ackTimeoutMs: undefined,
    };
    for (let k = 2; k < this.#ntok; k++) {
      const [key, value] = this.#option(buf, k);
      switch (key) {
        case "sub_id":
          o.sid = token(key, value);
          break;
        case "ack":
          if (value !== "explicit" && value !== "none") {
            throw new BadInput("BAD_ARGUMENT", `ack must be "explicit" or "none"`);
          }
          o.ack = value;
          break;
        case "prefetch":
          o.prefetch = intIn(key, value, 1, PREFETCH_MAX);
          break;
        case "ack_timeout":
          o.ackTimeoutMs = intIn(key, value, 1, ACK_TIMEOUT_MS_MAX);
          break;
        case "durable":
          if (!DURABLE_NAME.test(value)) {
            throw new BadInput(
              "BAD_ARGUMENT",
              `durable must be 1 to ${TOKEN_BYTES_MAX} bytes of A-Z a-z 0-9 _ - .`,
            );
          }
          o.durable = value;
          break;
        case "start":
          o.start = startPosition(value);
          break;
        case "filter":
          o.filter = filterOption(value);
          break;
        case "durable_user":
          o.durableUser = durableUser(value);
          break;
        default:
          throw unknownOption("SUB", key);
      }
    }
    if (o.durableUser !== undefined && o.durable === undefined) {
      throw new BadInput("BAD_ARGUMENT", "durable_user goes with durable");
    }
    return { op: "SUB", dest, options: o };
  }

  /**
   * `DECLARE topic:<name> [retain_messages:<n>] [retain_bytes:<n>] [retain_age:<ms>]`
   * or `DECLARE queue:<name> [<setting>:<value>]...`.
   */
  #declare(buf: Uint8Array): Frame {
    if (this.#ntok < 2) throw new BadInput("BAD_ARGUMENT", "DECLARE needs a topic or a queue");
    const dest = str(buf, this.#tok[2], this.#tok[3]);
    const why = slotError(dest, DEST.DECLARE);
    if (why) throw new BadInput("BAD_DESTINATION", why);
    const o: RetentionOptions = { messages: undefined, bytes: undefined, ageMs: undefined };
    if (dest.startsWith("queue:")) {
      return { op: "DECLARE", dest, options: o, queue: this.#queue(buf) };
    }
    for (let k = 2; k < this.#ntok; k++) {
      const [key, value] = this.#option(buf, k);
      switch (key) {
        case "retain_messages":
          o.messages = intIn(key, value, 1, RETAIN_MESSAGES_MAX);
          break;
        case "retain_bytes":
          o.bytes = intIn(key, value, 1, RETAIN_BYTES_MAX);
          break;
        case "retain_age":
          o.ageMs = intIn(key, value, 1, RETAIN_AGE_MS_MAX);
          break;
        default:
          throw unknownOption("DECLARE", key);
      }
    }
    if (o.messages === undefined && o.bytes === undefined && o.ageMs === undefined) {
      throw new BadInput(
        "BAD_ARGUMENT",
        "DECLARE needs at least one of retain_messages, retain_bytes, retain_age",
      );
    }
    return { op: "DECLARE", dest, options: o };
  }

  /** `BIND <topic pattern> queue:<name> [filter:"<selector>"]`, `UNBIND <topic pattern> queue:<name>`. */
  #bind(buf: Uint8Array, verb: "BIND" | "UNBIND"): Frame {
    const ntok = this.#ntok;
    if (ntok < 3) throw new BadInput("BAD_ARGUMENT", `${verb} needs a topic pattern and a queue`);
    const tok = this.#tok;
    const pattern = str(buf, tok[2], tok[3]);
    let why = slotError(pattern, DEST.BIND_PATTERN);
    if (why) throw new BadInput("BAD_DESTINATION", why);
    const queue = str(buf, tok[4], tok[5]);
    why = slotError(queue, DEST.BIND_QUEUE);
    if (why) throw new BadInput("BAD_DESTINATION", why);
    if (verb === "UNBIND") {
      if (ntok !== 3) throw new BadInput("BAD_ARGUMENT", "UNBIND takes no options");
      return { op: "UNBIND", pattern, queue };
    }
    if (ntok === 3) return { op: "BIND", pattern, queue };
    if (ntok > 4) throw new BadInput("BAD_ARGUMENT", "BIND takes one option, filter");
    const [key, value] = this.#option(buf, 3);
    if (key !== "filter") throw unknownOption("BIND", key);
    return { op: "BIND", pattern, queue, filter: filterOption(value) };
  }

  /** The settings of `DECLARE queue:<name>`; none given declares it with the server's defaults. */
  #queue(buf: Uint8Array): QueueDeclareOptions {
    const q = defaultQueueDeclareOptions();
    for (let k = 2; k < this.#ntok; k++) {
      const [key, value] = this.#option(buf, k);
      switch (key) {
        case "max_messages":
          q.maxMessages = intIn(key, value, 1, DECLARED_QUEUE_MESSAGES_MAX);
          break;
        case "max_bytes":
          q.maxBytes = intIn(key, value, 1, DECLARED_QUEUE_BYTES_MAX);
          break;
        case "overflow":
          if (value !== "reject" && value !== "drop_oldest") {
            throw new BadInput("BAD_ARGUMENT", `overflow must be "reject" or "drop_oldest"`);
          }
          q.overflow = value;
          break;
        case "ttl":
          q.ttlMs = intIn(key, value, 1, TTL_MS_MAX);
          break;
        case "max_deliveries":
          q.maxDeliveries = intIn(key, value, 1, DECLARED_DELIVERIES_MAX);
          break;
        case "dlq": {
          if (value === "none") {
            q.dlq = null;
            break;
          }
          const bad = slotError(value, DEST.DLQ);
          if (bad) throw new BadInput("BAD_DESTINATION", bad);
          q.dlq = value;
          break;
        }
        case "ack_timeout":
          q.ackTimeoutMs = intIn(key, value, 1, ACK_TIMEOUT_MS_MAX);
          break;
        case "dedup_window":
          q.dedupWindowMs = intIn(key, value, 0, DEDUP_WINDOW_MS_MAX);
          break;
        default:
          if (key.startsWith("retain_")) {
            throw new BadInput("BAD_ARGUMENT", `${key} is for topics: a queue keeps its messages`);
          }
          throw unknownOption("DECLARE", key);
      }
    }
    return q;
  }

  #ack(buf: Uint8Array): Frame {
    const count = this.#ntok - 1;
    if (count < 1) throw new BadInput("BAD_ARGUMENT", "ACK needs msg_id:<id>");
    const c = buf[this.#tok[2]];
    if (c === 0x73 /* s */ || c === 0x75 /* u */) return this.#ackUpto(buf); // sub_id:, upto:
    if (count > ACK_IDS_MAX) {
      throw new BadInput("BAD_ARGUMENT", `ACK takes at most ${ACK_IDS_MAX} ids`);
    }
    const ids = new Array<number>(count);
    for (let k = 1; k <= count; k++) ids[k - 1] = this.#msgId(buf, k);
    return { op: "ACK", ids };
  }

  /** `ACK sub_id:<sid> upto:<id>` (the two options in either order): the cumulative form. */
  #ackUpto(buf: Uint8Array): Frame {
    if (this.#ntok !== 3) {
      throw new BadInput("BAD_ARGUMENT", "a cumulative ACK takes sub_id:<sid> upto:<id>");
    }
    let sid: string | undefined;
    let id: number | undefined;
    for (let k = 1; k < 3; k++) {
      const [key, value] = this.#option(buf, k);
      if (key === "sub_id" && sid === undefined) sid = token(key, value);
      else if (key === "upto" && id === undefined) {
        id = msgIdOf(value);
        if (id === undefined) {
          throw new BadInput(
            "BAD_ARGUMENT",
            `upto must be a msg_id (1 to ${ID_DIGITS_MAX} digits)`,
          );
        }
      } else throw new BadInput("BAD_ARGUMENT", "a cumulative ACK takes sub_id:<sid> upto:<id>");
    }
    return { op: "ACK", ids: [], upto: { sid: sid!, id: id! } };
  }

  #nack(buf: Uint8Array): Frame {
    if (this.#ntok < 2 || this.#ntok > 3) {
      throw new BadInput("BAD_ARGUMENT", "NACK takes msg_id:<id> and an optional delay:<ms>");
    }
    const id = this.#msgId(buf, 1);
    let delayMs = 0;
    if (this.#ntok === 3) {
      const [key, value] = this.#option(buf, 2);
      if (key !== "delay") throw unknownOption("NACK", key);
      delayMs = intIn(key, value, 0, NACK_DELAY_MS_MAX);
    }
    return { op: "NACK", id, delayMs };
  }

  /** Parses token `k` as `msg_id:<digits>` straight from bytes (ACK is on the hot path). */
  #msgId(buf: Uint8Array, k: number): number {
    const s = this.#tok[2 * k];
    const e = this.#tok[2 * k + 1];
    const PREFIX = MSG_ID_PREFIX;
    let ok = e - s > PREFIX.length;
    for (let j = 0; ok && j < PREFIX.length; j++) ok = buf[s + j] === PREFIX.charCodeAt(j);
    // One line per id here (ACK lines of many ids take `ackIds`): no view made for it.
    const id = ok ? decimalId(buf, null, s + PREFIX.length, e) : -1;
    if (id < 0) {
      throw new BadInput(
        "BAD_ARGUMENT",
        `expected msg_id:<id>, got ${snippet(buf.subarray(s, e))}`,
      );
    }
    return id;
  }

  #tooLong(out: Frame[]): void {
    this.#state = State.DEAD;
    out.push(fatal("CONTROL_LINE_TOO_LONG", `control line over ${CONTROL_LINE_BYTES_MAX} bytes`));
  }

  #badEnd(out: Frame[]): void {
    this.#state = State.DEAD;
    out.push(fatal("BAD_FRAME", "payload not followed by a line end: wrong byte count?"));
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The ids of a well-formed ACK line's arguments `buf[i, end)` in one scan
 * (ACK is the per-message command of a queue consumer, up to `ACK_IDS_MAX`
 * ids a line): separators, the `msg_id:` prefix and the digits are read as
 * they come, with no token table and no second pass per id. Anything else
 * (too many ids, a bad token) is undefined, and the general path, which
 * tokenizes, finds and words the error: the same frames either way.
 *
 * An id of 16 digits (every id the broker makes from 2027 to 2286: `ms *
 * 1024 + seq`) is read four digits at a time (`digits4`): the byte loop
 * cost ~30 ns an id on Deno and was 7-10% of the broker under the queue
 * bench with ACK lines of ids; this reads one in ~14 ns. Other lengths, and
 * a group that is not four digits, take the byte loop.
 */
function ackIds(buf: Uint8Array, i: number, end: number): number[] | undefined {
  // Sized for ids of 16 digits up front (pushing grew it ~8 times a line, ~3 ns an id on
  // Deno); shorter ids grow it, and it is cut to what the line had.
  const ids: number[] = new Array(Math.min(ACK_IDS_MAX, Math.ceil((end - i) / ACK_ID_TOKEN_BYTES)));
  let count = 0;
  // One view per line, not per id (the line's ids share it).
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (;;) {
    while (i < end && (buf[i] === SP || buf[i] === TAB)) i++;
    if (i === end) {
      if (count === 0) return undefined;
      if (count !== ids.length) ids.length = count;
      return ids;
    }
    if (
      count === ACK_IDS_MAX || end - i <= MSG_ID_PREFIX.length ||
      view.getUint32(i, true) !== MSG_ID_LE32 || view.getUint16(i + 4, true) !== MSG_ID_LE16 ||
      buf[i + 6] !== 0x3a
    ) {
      return undefined;
    }
    i += MSG_ID_PREFIX.length;
    // A 16-digit id's end is checked where it must be, not scanned for; other lengths scan.
    const e16 = i + ID_DIGITS_MAX;
    if (e16 <= end && (e16 === end || buf[e16] === SP || buf[e16] === TAB)) {
      // The four words read here, not through `digits16`: its call cost Bun a quarter more per id.
      const a = digits4(view.getUint32(i, true));
      const b = digits4(view.getUint32(i + 4, true));
      const c = digits4(view.getUint32(i + 8, true));
      const d = digits4(view.getUint32(i + 12, true));
      if ((a | b | c | d) >= 0) {
        // Exact below 2^53; above, it rounds to 2^53 or more, which the check refuses.
        const id = (a * 1e4 + b) * 1e8 + (c * 1e4 + d);
        if (id > Number.MAX_SAFE_INTEGER) return undefined;
        ids[count++] = id;
        i = e16;
        continue;
      }
    }
    const e = digitsEnd(buf, i, end);
    if (e < end && buf[e] !== SP && buf[e] !== TAB) return undefined;
    // Not 16 digits (they took the words above): the loop alone, which inlines smaller.
    const id = decimal(buf, i, e, ID_DIGITS_MAX);
    if (id < 0 || id > Number.MAX_SAFE_INTEGER) return undefined;
    ids[count++] = id;
    i = e;
  }
}

/** ` msg_id:` and 16 digits: what an ACK line takes per id, mostly. */
const ACK_ID_TOKEN_BYTES = 24;
/** `msg_` as a little-endian uint32 (`ackIds` compares the prefix in two reads). */
const MSG_ID_LE32 = 0x5f67736d;
/** `id` as a little-endian uint16. */
const MSG_ID_LE16 = 0x6469;

function err(code: ErrorCode, message: string): Frame {
  return { op: "ERR", code, message, fatal: false };
}

function fatal(code: ErrorCode, message: string): Frame {
  return { op: "ERR", code, message, fatal: true };
}

function unknownOption(verb: string, key: string): BadInput {
  return new BadInput("BAD_ARGUMENT", `unknown ${verb} option ${JSON.stringify(key)}`);
}

/**
 * Decodes ASCII bytes cheaply; falls back to UTF-8 for anything else. A
 * token over 12 bytes is decoded in one go: built a character at a time it
 * is a rope (V8 makes cons strings from 13 characters, JSC ropes from 2), a
 * cell per character until it is first hashed (~0.45 KiB of garbage on Bun
 * for a 14-byte destination; `TextDecoder` is the faster of the two there).
 */
function str(buf: Uint8Array, s: number, e: number): string {
  if (e - s > 12) return utf8.decode(buf.subarray(s, e));
  let out = "";
  for (let k = s; k < e; k++) {
    const c = buf[k];
    if (c >= 0x80) return utf8.decode(buf.subarray(s, e));
    out += String.fromCharCode(c);
  }
  return out;
}

function utf8encode(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** The verb in upper case (verbs are case-insensitive). */
function verbOf(buf: Uint8Array, s: number, e: number): string {
  return e - s > 16 ? str(buf, s, e) : str(buf, s, e).toUpperCase();
}

function intIn(key: string, value: string, min: number, max: number): number {
  const v = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(v >= min && v <= max)) {
    throw new BadInput("BAD_ARGUMENT", `${key} must be an integer from ${min} to ${max}`);
  }
  return v;
}

/** `new`, `first`, `id:<msg_id>` or `time:<epoch_ms>`. */
function startPosition(value: string): StartPosition {
  if (value === "new") return { kind: "new" };
  if (value === "first") return { kind: "first" };
  if (value.startsWith("id:")) {
    const id = msgIdOf(value.slice(3));
    if (id === undefined) {
      throw new BadInput(
        "BAD_ARGUMENT",
        `start:id must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`,
      );
    }
    return { kind: "id", id };
  }
  if (value.startsWith("time:")) {
    return { kind: "time", ms: intIn("start:time", value.slice(5), 0, START_TIME_MS_MAX) };
  }
  throw new BadInput(
    "BAD_ARGUMENT",
    `start must be new, first, id:<msg_id> or time:<epoch_ms>`,
  );
}

const FILTER_QUOTE = 'filter:"';

/** Whether the token at `i` starts `filter:"`: the one option whose value may be quoted (and hold spaces). */
function isQuotedFilter(buf: Uint8Array, i: number, end: number): boolean {
  if (end - i < FILTER_QUOTE.length) return false;
  for (let j = 0; j < FILTER_QUOTE.length; j++) {
    if (buf[i + j] !== FILTER_QUOTE.charCodeAt(j)) return false;
  }
  return true;
}

/** Index just past the `"` that closes a quoted value starting at `i` (`end` when unterminated). */
function quoteEnd(buf: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = buf[i];
    if (c === 0x5c /* \ */) i += 2;
    else if (c === 0x22 /* " */) return i + 1;
    else i++;
  }
  return end;
}

/**
 * The value of `filter:`: `"<selector>"` with `\"` for `"` and `\\` for `\`
 * (docs/PROTOCOL.md, "Framing"), or a selector without spaces as it is;
 * compiled here, once, so a bad selector is `ERR BAD_FILTER` at the command.
 */
/**
 * The user of `durable_user:` (a cluster node's proxy connection only, docs/CLUSTERING.md):
 * percent-encoded, as a user name may hold any character.
 */
function durableUser(value: string): string {
  let user: string;
  try {
    user = decodeURIComponent(value);
  } catch {
    throw new BadInput("BAD_ARGUMENT", "durable_user must be percent-encoded");
  }
  if (user.length === 0 || user.length > TOKEN_BYTES_MAX) {
    throw new BadInput("BAD_ARGUMENT", `durable_user must be 1 to ${TOKEN_BYTES_MAX} characters`);
  }
  return user;
}

function filterOption(value: string): FilterOption {
  let source = value;
  if (value.startsWith('"')) {
    source = "";
    let i = 1;
    for (;;) {
      if (i >= value.length) {
        throw new BadInput("BAD_ARGUMENT", "filter: unterminated quoted value");
      }
      const c = value[i];
      if (c === '"') break;
      if (c === "\\") {
        const next = value[i + 1];
        if (next !== '"' && next !== "\\") {
          throw new BadInput(
            "BAD_ARGUMENT",
            `filter: only \\" and \\\\ are escapes in a quoted value`,
          );
        }
        source += next;
        i += 2;
        continue;
      }
      source += c;
      i++;
    }
    if (i !== value.length - 1) {
      throw new BadInput("BAD_ARGUMENT", "filter: the closing quote must end the option");
    }
  }
  try {
    return { source, match: compileFilter(source) };
  } catch (e) {
    if (e instanceof FilterError) throw new BadInput("BAD_FILTER", e.message);
    throw e;
  }
}

function token(key: string, value: string): string {
  if (value.length === 0 || value.length > TOKEN_BYTES_MAX) {
    throw new BadInput("BAD_ARGUMENT", `${key} must be 1 to ${TOKEN_BYTES_MAX} bytes`);
  }
  return value;
}

const AUTH_FIELDS = ["auth_token", "user", "pass", "public_key", "sig"] as const;

/** CONNECT's JSON is the rest of the line after the verb, spaces and all. */
function connectOptions(buf: Uint8Array, s: number, e: number): ConnectOptions {
  const options: ConnectOptions = {
    version: "1.0",
    clientId: undefined,
    name: undefined,
    verbose: true,
  };
  const text = utf8.decode(buf.subarray(s, e)).trim();
  if (text === "") return options;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // The runtime's message may quote the line, credentials and all: left out.
    throw new BadInput(
      "BAD_JSON",
      `CONNECT argument is not JSON: ${jsonErrorText((e as Error).message)}`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new BadInput("BAD_JSON", "CONNECT argument must be a JSON object");
  }
  const o = json as Record<string, unknown>;
  if (o.version !== undefined) {
    if (typeof o.version !== "string" || !/^1(\.|$)/.test(o.version)) {
      throw new BadInput("BAD_VERSION", `protocol version ${JSON.stringify(o.version)} is not 1.x`);
    }
    options.version = o.version;
  }
  if (o.verbose !== undefined) {
    if (typeof o.verbose !== "boolean") throw new BadInput("BAD_JSON", "verbose must be a boolean");
    options.verbose = o.verbose;
  }
  for (const key of ["client_id", "name"] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== "string" || v.length > TOKEN_BYTES_MAX) {
      throw new BadInput("BAD_JSON", `${key} must be a string of at most ${TOKEN_BYTES_MAX} bytes`);
    }
    if (key === "client_id") options.clientId = v;
    else options.name = v;
  }
  for (const key of AUTH_FIELDS) {
    const v = o[key];
    if (v === undefined) continue;
    // Never quote the value: it may be a secret.
    if (typeof v !== "string" || v.length > AUTH_SECRET_BYTES_MAX) {
      throw new BadInput(
        "BAD_JSON",
        `${key} must be a string of at most ${AUTH_SECRET_BYTES_MAX} bytes`,
      );
    }
    (options.auth ??= {})[key] = v;
  }
  return options;
}
