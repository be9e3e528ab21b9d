/**
 * The pure, incremental parser of server frames (`MSG`, `OK`, `ERR`, `PING`,
 * `PONG`, `INFO`): bytes in, calls on a {@linkcode FrameHandler} out. No
 * sockets, timers or `await`, so it is tested byte by byte.
 *
 * Why it is shaped this way:
 * - It never decodes a chunk to a string: it finds line ends with
 *   `indexOf(10)` on the bytes, decodes only the tokens of one control line,
 *   and hands payloads out as `subarray`s of the chunk (no copy) when the
 *   payload lies inside one chunk. The runtime promises chunks are never
 *   reused (see `Conn.readable`), so the views stay valid.
 * - Bytes of an unfinished control line are copied once into a fixed buffer
 *   and never rescanned; only the new chunk is searched for the line end.
 * - Every length is checked before anything is allocated.
 *
 * @module
 */
import { BrokerProtocolError } from "./errors.ts";
import { SERVER_LINE_BYTES_MAX, SERVER_PAYLOAD_BYTES_MAX } from "./limits.ts";
import { decimal, decimalId, ID_DIGITS_MAX, LastString, runs16, words16 } from "../protocol/mod.ts";

/**
 * One `MSG` frame, with its payload (header block included). The parser
 * reuses one frame for every message: it is valid during `onMsg` only, and a
 * handler keeps what it needs (the client's `Message` copies the fields).
 * Nothing in it is allocated per message beyond what the message carries:
 * the payload is a range of the chunk (or of the buffer a split payload was
 * assembled in), and the id is a number while it fits one exactly.
 */
export class MsgFrame {
  /** Where the message was published (the concrete topic for wildcard subscriptions). */
  dest = "";
  /** The subscription it was delivered to. */
  subId = "";
  /** The broker's id as a number (every id up to 2^53), or -1: then `idText` holds it. */
  idNum = -1;
  /** The id's decimal text when it does not fit `idNum`, else "". */
  idText = "";
  /** The options most messages lack, or null when none came (see {@linkcode MsgExtra}). */
  extra: MsgExtra | null = null;
  /** Bytes of the header block at the start of the payload (0: none). */
  hdrLen = 0;
  /** The bytes the payload lies in, and where: `buf[off, off + len)`. */
  buf: Uint8Array = EMPTY;
  off = 0;
  len = 0;

  /** The broker's message id, as the decimal string of the wire. */
  get id(): string {
    return this.idNum >= 0 ? String(this.idNum) : this.idText;
  }

  /** 0-9, default 0. */
  get priority(): number {
    return this.extra?.priority ?? 0;
  }

  /** The `ttl` the message was published with, if any. */
  get ttlMs(): number | undefined {
    return this.extra?.ttlMs;
  }

  /** The correlation id it was published with, if any. */
  get correlationId(): string | undefined {
    return this.extra?.correlationId;
  }

  /** Where the publisher wants a reply, if anywhere. */
  get replyTo(): string | undefined {
    return this.extra?.replyTo;
  }

  /** The content type it was published with, if any. */
  get contentType(): string | undefined {
    return this.extra?.contentType;
  }

  /** 1 for a first delivery, n for the nth. */
  get delivery(): number {
    return this.extra?.delivery ?? 1;
  }

  /** Header block and body (a view). */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off, this.off + this.len);
  }

  /** Back to a fresh frame's values, before the next `MSG` line. */
  reset(): void {
    this.subId = "";
    this.idNum = -1;
    this.idText = "";
    this.extra = null;
    this.hdrLen = 0;
    this.buf = EMPTY;
    this.off = 0;
    this.len = 0;
  }
}

/**
 * The options of a `MSG` most messages come without. A message that has any
 * gets one of these (new per message: messages keep it); the rest share none.
 */
export class MsgExtra {
  priority = 0;
  ttlMs: number | undefined = undefined;
  correlationId: string | undefined = undefined;
  replyTo: string | undefined = undefined;
  contentType: string | undefined = undefined;
  delivery = 1;
}

/** Receives the frames the parser finds, in order. */
export interface FrameHandler {
  onMsg(frame: MsgFrame): void;
  /** `arg` is what follows `OK`: `""`, `"msg_id:<id>"` or `"sub_id:<sid>"`. */
  onOk(arg: string): void;
  onErr(code: string, text: string): void;
  onPing(): void;
  onPong(): void;
  onInfo(json: string): void;
}

const State = { CONTROL: 0, PAYLOAD: 1, PAYLOAD_CR: 2, PAYLOAD_LF: 3 } as const;
type State = (typeof State)[keyof typeof State];

const LF = 10;
const CR = 13;
const SPACE = 32;
const TAB = 9;
/** More tokens than this on a MSG line is garbage (the broker caps options at 32). */
const TOKENS_MAX = 48;
/** Digits of a size or numeric option: 15 stay exact (below 2^53). */
const SIZE_DIGITS_MAX = 15;

const utf8 = new TextDecoder();
const EMPTY = new Uint8Array(0);

/**
 * Incremental parser of the byte stream a broker sends.
 *
 * @example
 * ```ts
 * import { FrameParser } from "./parser.ts";
 * const seen: string[] = [];
 * const parser = new FrameParser({
 *   onMsg: (f) => seen.push(`${f.dest} ${new TextDecoder().decode(f.payload)}`),
 *   onOk: (arg) => seen.push(`OK ${arg}`),
 *   onErr: (code) => seen.push(code),
 *   onPing: () => {},
 *   onPong: () => {},
 *   onInfo: () => {},
 * });
 * parser.push(new TextEncoder().encode("OK msg_id:1\r\nMSG topic:a sub_id:s msg_id:1 2\r\nhi\r\n"));
 * console.assert(seen.join("|") === "OK msg_id:1|topic:a hi");
 * ```
 */
export class FrameParser {
  /** Largest MSG payload; the client lowers it to the broker's `max_payload` once known. */
  maxPayloadBytes = SERVER_PAYLOAD_BYTES_MAX;

  /** `MSG` lines read by the fast path (`#repeatMsg`), for tests and diagnostics. */
  get fastLines(): number {
    return this.#fastLines;
  }

  #fastLines = 0;

  #handler: FrameHandler;
  #state: State = State.CONTROL;
  /** Holds the bytes of a control line split across chunks (+1 for a trailing CR). */
  #line = new Uint8Array(SERVER_LINE_BYTES_MAX + 1);
  #lineLen = 0;
  #tokens = new Int32Array(TOKENS_MAX * 2);
  #dests = new LastString(decode);
  #sids = new LastString(decode);
  /** The one frame every `MSG` is parsed into (see `MsgFrame`). */
  #frame = new MsgFrame();
  #need = 0;
  /** Assembly buffer of a payload split across chunks; null while the payload is one view. */
  #payload: Uint8Array | null = null;
  #payloadPos = 0;
  /**
   * The last plain MSG line's bytes up to its id, `MSG <dest> sub_id:<sid> msg_id:`, and what
   * they parsed to: a subscriber's next lines start the same (see `#repeatMsg`).
   */
  #prefix: Uint8Array = EMPTY;
  #prefixDest = "";
  #prefixSid = "";

  /** @param handler receives each frame as soon as it is complete */
  constructor(handler: FrameHandler) {
    this.#handler = handler;
  }

  /** Parses one chunk; throws {@linkcode BrokerProtocolError} on bytes that are not protocol. */
  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.#state) {
        case State.CONTROL: {
          if (this.#lineLen === 0 && this.#prefix.length > 0) {
            const next = this.#repeatMsg(chunk, i, n);
            if (next >= 0) {
              i = next;
              break;
            }
          }
          const lf = findLF(chunk, i, n);
          if (lf < 0) {
            this.#appendPartial(chunk, i, n);
            return;
          }
          if (this.#lineLen > 0) {
            this.#appendPartial(chunk, i, lf);
            const line = this.#line;
            const len = this.#lineLen;
            this.#lineLen = 0;
            this.#controlLine(line, 0, len > 0 && line[len - 1] === CR ? len - 1 : len);
          } else {
            const end = lf > i && chunk[lf - 1] === CR ? lf - 1 : lf;
            if (end - i > SERVER_LINE_BYTES_MAX) throw tooLong(chunk, i);
            this.#controlLine(chunk, i, end);
          }
          i = lf + 1;
          break;
        }
        case State.PAYLOAD: {
          const avail = n - i;
          if (this.#payload === null && avail >= this.#need) {
            // The common case: the whole payload is in this chunk, hand out a view.
            this.#frame.buf = chunk;
            this.#frame.off = i;
            i += this.#need;
            this.#state = State.PAYLOAD_CR;
            break;
          }
          if (this.#payload === null) {
            this.#payload = new Uint8Array(this.#need);
            this.#payloadPos = 0;
          }
          const take = Math.min(avail, this.#payload.length - this.#payloadPos);
          this.#payload.set(chunk.subarray(i, i + take), this.#payloadPos);
          this.#payloadPos += take;
          i += take;
          if (this.#payloadPos === this.#payload.length) {
            this.#frame.buf = this.#payload;
            this.#payload = null;
            this.#state = State.PAYLOAD_CR;
          }
          break;
        }
        case State.PAYLOAD_CR: {
          const b = chunk[i++];
          if (b === CR) this.#state = State.PAYLOAD_LF;
          else if (b === LF) this.#emitMsg();
          else throw protocolError("payload not followed by a line end", chunk, i - 1);
          break;
        }
        case State.PAYLOAD_LF: {
          if (chunk[i++] !== LF) {
            throw protocolError("payload not followed by a line end", chunk, i - 1);
          }
          this.#emitMsg();
          break;
        }
      }
    }
  }

  #appendPartial(chunk: Uint8Array, from: number, to: number): void {
    const len = to - from;
    // +1: a CR may be the last byte of a line of exactly the maximum length.
    if (this.#lineLen + len > SERVER_LINE_BYTES_MAX + 1) throw tooLong(chunk, from);
    this.#line.set(chunk.subarray(from, to), this.#lineLen);
    this.#lineLen += len;
  }

  #emitMsg(): void {
    this.#state = State.CONTROL;
    this.#handler.onMsg(this.#frame);
  }

  /** One control line in `buf[start, end)`, line end already removed. */
  #controlLine(buf: Uint8Array, start: number, end: number): void {
    while (start < end && isSpace(buf[start])) start++;
    if (start === end) return; // empty lines are ignored
    let verbEnd = start;
    while (verbEnd < end && !isSpace(buf[verbEnd])) verbEnd++;
    const verb = verbCode(buf, start, verbEnd);
    let rest = verbEnd;
    while (rest < end && isSpace(buf[rest])) rest++;
    switch (verb) {
      case "MSG":
        return this.#msgLine(buf, rest, end, start);
      case "OK":
        return this.#handler.onOk(decode(buf, rest, trimEnd(buf, rest, end)));
      case "ERR": {
        let codeEnd = rest;
        while (codeEnd < end && !isSpace(buf[codeEnd])) codeEnd++;
        let text = codeEnd;
        while (text < end && isSpace(buf[text])) text++;
        if (codeEnd === rest) throw protocolError("ERR without a code", buf, start);
        return this.#handler.onErr(decode(buf, rest, codeEnd), decode(buf, text, end));
      }
      case "PING":
        return this.#handler.onPing();
      case "PONG":
        return this.#handler.onPong();
      case "INFO":
        return this.#handler.onInfo(decode(buf, rest, end));
      default:
        throw protocolError("unknown verb", buf, start);
    }
  }

  /**
   * The fast path of a subscriber's stream: a MSG line that starts with the
   * bytes of the last plain one (`#prefix`, up to `msg_id:`) and ends
   * `<id> <size>\r\n`, whole in `buf` from `i`, is read in one pass: no line
   * scan, no tokens, no destination or sub_id compared apart (the prefix
   * compare is all of that). A run of such frames, each whole in `buf`, is
   * delivered in this one loop, not one state-machine round per part. Returns
   * where parsing goes on (after the last frame delivered, or where the
   * payload of a line starts, with the frame set as `#msgLine` sets it), or
   * -1 when the first line is not one, which the general path then parses
   * from `i` as if this had not looked. (A pub -> sub run at 16 B spent a
   * third of the SDK's CPU in finding, splitting and matching MSG lines.)
   */
  #repeatMsg(buf: Uint8Array, i: number, n: number): number {
    const p = this.#prefix;
    const pl = p.length;
    const frame = this.#frame;
    // A plain Uint8Array (Deno's reads, WebSocket messages, browsers) is read four bytes a step
    // through a DataView: the prefix compare and the id took this loop from 62-63 to 37-38 ns a
    // 16 B frame on Deno (31 against 43 on Bun's plain arrays). Bun's socket chunks are Buffers,
    // which take a view badly (the client's CPU per message went from 0.38 to 0.67 µs): bytes.
    const view = buf.constructor === Uint8Array ? this.#viewOf(buf) : null;
    let done = -1;
    for (;;) {
      if (i + pl >= n) return done;
      // Four bytes per step (one read, or one branch for four compares); the prefix is over 20
      // bytes.
      let j = 0;
      if (view !== null) {
        const w = this.#prefixWords;
        for (; j < w.length; j++) if (view.getInt32(i + 4 * j, true) !== w[j]) return done;
        j *= 4;
      } else {
        for (; j + 4 <= pl; j += 4) {
          const q = i + j;
          if (
            ((buf[q] ^ p[j]) | (buf[q + 1] ^ p[j + 1]) | (buf[q + 2] ^ p[j + 2]) |
              (buf[q + 3] ^ p[j + 3])) !== 0
          ) return done;
        }
      }
      for (; j < pl; j++) if (buf[i + j] !== p[j]) return done;
      // The id: the broker's have 16 digits (`ms * 1024 + seq` from 2000 to 2286). Any other
      // (shorter, a leading zero, beyond 2^53, not digits) takes the general path: reading them
      // here too (a loop, or `decimalId`, which carries one) left this path 10-15% slower on
      // Deno, used or not.
      const idStart = i + pl;
      let k = idStart + ID_DIGITS_MAX;
      if (k >= n || buf[k] !== SPACE || buf[idStart] === 0x30) return done;
      const id = view !== null ? words16(view, idStart) : runs16(buf, idStart);
      if (id < 0 || id > Number.MAX_SAFE_INTEGER) return done;
      const sizeStart = ++k;
      let size = 0;
      for (; k < n && k - sizeStart < SIZE_DIGITS_MAX; k++) {
        const d = buf[k] - 0x30;
        if (d < 0 || d > 9) break;
        size = size * 10 + d;
      }
      if (k === sizeStart || k >= n || size > this.maxPayloadBytes) return done;
      if (buf[k] === CR && k + 1 < n && buf[k + 1] === LF) k += 2;
      else if (buf[k] === LF) k += 1;
      else return done;
      this.#fastLines++;
      frame.dest = this.#prefixDest;
      frame.subId = this.#prefixSid;
      frame.idNum = id;
      frame.idText = "";
      frame.extra = null;
      frame.hdrLen = 0;
      frame.buf = buf;
      frame.off = k;
      frame.len = size;
      // The payload and its line end in this chunk too: delivered here, and on to the next line.
      const e = k + size;
      if (e + 1 < n && buf[e] === CR && buf[e + 1] === LF) i = e + 2;
      else if (e < n && buf[e] === LF) i = e + 1;
      else {
        frame.buf = EMPTY;
        frame.off = 0;
        this.#need = size;
        this.#state = size === 0 ? State.PAYLOAD_CR : State.PAYLOAD;
        return k;
      }
      done = i;
      this.#handler.onMsg(frame);
    }
  }

  /** `#prefix` as little-endian int32 words (its last `length % 4` bytes are compared apart). */
  #prefixWords = new Int32Array(0);
  #view: DataView = new DataView(EMPTY.buffer);
  #viewBuf: Uint8Array = EMPTY;

  /** The `DataView` of `buf`'s bytes, made once per chunk. */
  #viewOf(buf: Uint8Array): DataView {
    if (this.#viewBuf !== buf) {
      this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.#viewBuf = buf;
    }
    return this.#view;
  }

  /**
   * After a MSG line `buf[lineStart, ..)` with only `sub_id` and `msg_id`, in
   * that order (tokens 1 and 2): its bytes up to the id become `#prefix`.
   */
  #keepPrefix(buf: Uint8Array, lineStart: number, idStart: number): void {
    const p = this.#prefix;
    const pl = idStart - lineStart;
    let same = p.length === pl;
    for (let j = 0; same && j < pl; j++) same = p[j] === buf[lineStart + j];
    if (!same) {
      const prefix = this.#prefix = buf.slice(lineStart, idStart);
      const words = this.#prefixWords = new Int32Array(pl >>> 2);
      const v = new DataView(prefix.buffer);
      for (let w = 0; w < words.length; w++) words[w] = v.getInt32(4 * w, true);
    }
    this.#prefixDest = this.#frame.dest;
    this.#prefixSid = this.#frame.subId;
  }

  /** `<dest> sub_id:<sid> msg_id:<id> [<key>:<value>]... <size>` */
  #msgLine(buf: Uint8Array, start: number, end: number, lineStart: number): void {
    const t = this.#tokens;
    let count = 0;
    let i = start;
    while (i < end) {
      while (i < end && isSpace(buf[i])) i++;
      if (i === end) break;
      if (count === TOKENS_MAX) throw protocolError("too many tokens in MSG", buf, start);
      t[count * 2] = i;
      while (i < end && !isSpace(buf[i])) i++;
      t[count * 2 + 1] = i;
      count++;
    }
    if (count < 4) {
      throw protocolError("MSG needs a destination, sub_id, msg_id and size", buf, start);
    }
    const size = parseSize(buf, t[(count - 1) * 2], t[(count - 1) * 2 + 1]);
    if (size < 0) throw protocolError("MSG size is not a number", buf, start);
    if (size > this.maxPayloadBytes) throw protocolError("MSG payload too large", buf, start);
    const frame = this.#frame;
    frame.reset();
    frame.dest = this.#dests.get(buf, t[0], t[1]);
    for (let k = 1; k < count - 1; k++) {
      const s = t[k * 2];
      const e = t[k * 2 + 1];
      let colon = s; // by hand, as findLF: a native call per option costs more
      while (colon < e && buf[colon] !== 58) colon++;
      if (colon === e) throw protocolError("MSG option without ':'", buf, s);
      if (colon - s === 6 && buf[s + 4] === 0x69 && buf[s + 5] === 0x64) {
        // The two options of every MSG, matched on bytes: "sub_id" and "msg_id".
        if (buf[s] === 0x73 && buf[s + 1] === 0x75) {
          frame.subId = this.#sids.get(buf, colon + 1, e);
          continue;
        }
        if (buf[s] === 0x6d && buf[s + 1] === 0x73) {
          setId(frame, buf, colon + 1, e);
          continue;
        }
      }
      setOption(frame, decode(buf, s, colon), buf, colon + 1, e);
    }
    if (frame.subId === "" || (frame.idNum < 0 && frame.idText === "")) {
      throw protocolError("MSG without sub_id or msg_id", buf, start);
    }
    if (frame.hdrLen > size) throw protocolError("MSG hdr larger than its size", buf, start);
    // A plain line (sub_id, then msg_id, nothing else) read from the chunk: the next may repeat it.
    if (
      count === 4 && frame.idNum >= 0 && buf[t[2]] === 0x73 && buf[t[2] + 6] === 58 &&
      buf[t[4]] === 0x6d && buf[t[4] + 6] === 58 && buf !== this.#line
    ) {
      this.#keepPrefix(buf, lineStart, t[4] + 7);
    }
    this.#need = size;
    frame.len = size;
    this.#state = size === 0 ? State.PAYLOAD_CR : State.PAYLOAD;
  }
}

/** Applies one `key:value` option of a MSG line; unknown keys are skipped (a newer broker). */
function setOption(frame: MsgFrame, key: string, buf: Uint8Array, s: number, e: number): void {
  switch (key) {
    case "sub_id":
      frame.subId = decode(buf, s, e);
      return;
    case "msg_id":
      setId(frame, buf, s, e);
      return;
    case "priority":
      (frame.extra ??= new MsgExtra()).priority = numberOption(key, buf, s, e);
      return;
    case "ttl":
      (frame.extra ??= new MsgExtra()).ttlMs = numberOption(key, buf, s, e);
      return;
    case "correlation_id":
      (frame.extra ??= new MsgExtra()).correlationId = decode(buf, s, e);
      return;
    case "reply_to":
      (frame.extra ??= new MsgExtra()).replyTo = decode(buf, s, e);
      return;
    case "content_type":
      (frame.extra ??= new MsgExtra()).contentType = decode(buf, s, e);
      return;
    case "hdr":
      frame.hdrLen = numberOption(key, buf, s, e);
      return;
    case "delivery":
      (frame.extra ??= new MsgExtra()).delivery = numberOption(key, buf, s, e);
      return;
  }
}

/**
 * The id as a number when its text is exactly that number's (at most 16
 * digits, no leading zero, at most 2^53 - 1): no string per message. Ids
 * beyond it (the protocol allows up to 2^63) keep their text.
 */
function setId(frame: MsgFrame, buf: Uint8Array, s: number, e: number): void {
  // No view: see `digits16`.
  const v = buf[s] !== 0x30 || e - s === 1 ? decimalId(buf, null, s, e) : -1;
  if (v >= 0) {
    frame.idNum = v;
    frame.idText = "";
    return;
  }
  frame.idNum = -1;
  frame.idText = decode(buf, s, e);
}

function numberOption(key: string, buf: Uint8Array, s: number, e: number): number {
  const n = parseSize(buf, s, e);
  if (n < 0) throw protocolError(`MSG option ${key} is not a number`, buf, s);
  return n;
}

/** Decimal digits to a number; -1 when empty, not all digits, or beyond 2^53 (15 digits at most). */
function parseSize(buf: Uint8Array, s: number, e: number): number {
  return decimal(buf, s, e, SIZE_DIGITS_MAX);
}

/**
 * The index of the next LF at or after `i`, or -1. Control lines are short:
 * a scan by hand finds most ends cheaper than a native `indexOf` call per
 * line (which costs ~10% of a subscriber on Bun); long stretches go to it.
 */
function findLF(chunk: Uint8Array, i: number, n: number): number {
  const stop = Math.min(n, i + 128);
  for (let k = i; k < stop; k++) if (chunk[k] === LF) return k;
  return stop === n ? -1 : chunk.indexOf(LF, stop);
}

function isSpace(b: number): boolean {
  return b === SPACE || b === TAB;
}

function trimEnd(buf: Uint8Array, s: number, e: number): number {
  while (e > s && isSpace(buf[e - 1])) e--;
  return e;
}

/**
 * The verb in upper case, matched on the bytes (no string is built): this
 * runs once per frame. `& 0xdf` upper-cases ASCII letters; verbs are
 * case-insensitive.
 */
function verbCode(buf: Uint8Array, s: number, e: number): string {
  const n = e - s;
  const b0 = buf[s] & 0xdf;
  const b1 = buf[s + 1] & 0xdf;
  if (n === 3) {
    const b2 = buf[s + 2] & 0xdf;
    if (b0 === 0x4d && b1 === 0x53 && b2 === 0x47) return "MSG";
    if (b0 === 0x45 && b1 === 0x52 && b2 === 0x52) return "ERR";
  } else if (n === 2) {
    if (b0 === 0x4f && b1 === 0x4b) return "OK";
  } else if (n === 4) {
    const b2 = buf[s + 2] & 0xdf;
    const b3 = buf[s + 3] & 0xdf;
    if (b0 === 0x50 && b2 === 0x4e && b3 === 0x47) {
      if (b1 === 0x49) return "PING";
      if (b1 === 0x4f) return "PONG";
    }
    if (b0 === 0x49 && b1 === 0x4e && b2 === 0x46 && b3 === 0x4f) return "INFO";
  }
  return "";
}

/**
 * Decodes a token: ASCII (every token the broker writes) in one
 * `fromCharCode` call on the bytes, UTF-8 through the decoder otherwise.
 */
function decode(buf: Uint8Array, s: number, e: number): string {
  if (e - s > 256) return utf8.decode(buf.subarray(s, e));
  for (let i = s; i < e; i++) {
    if (buf[i] > 127) return utf8.decode(buf.subarray(s, e));
  }
  return String.fromCharCode.apply(null, buf.subarray(s, e) as unknown as number[]);
}

function tooLong(buf: Uint8Array, at: number): BrokerProtocolError {
  return protocolError(`control line longer than ${SERVER_LINE_BYTES_MAX} bytes`, buf, at);
}

/** A protocol error quoting up to 32 bytes from where it happened, as nats-server does. */
function protocolError(what: string, buf: Uint8Array, at: number): BrokerProtocolError {
  const snippet = utf8.decode(buf.subarray(at, Math.min(buf.length, at + 32)));
  return new BrokerProtocolError(
    `Broker sent an invalid frame (${what}) at ${JSON.stringify(snippet)}`,
  );
}
