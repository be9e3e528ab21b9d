/**
 * Raw NATS driver (core protocol, no JetStream): `PUB` out, `MSG` parsed on
 * bytes; the queue scenario uses a queue group, request/reply an inbox.
 *
 * @module
 */
import { bytes, concat, CRLF, decimal, digitsEnd, lastSpace, latin1, OutBuf } from "./bytes.ts";
import type { Driver, Events, FrameShape, Kind, Parser } from "./types.ts";
import { Mode } from "./types.ts";

const CR = 13;
const LF = 10;
const SPACE = 32;
/** `#msg`: the frame is not all in the buffer yet. */
const PARTIAL = -1;
/** `#msg`: not a line it reads; the general path does. */
const NOT_HERE = -2;
/** The queue group every bench consumer joins. */
const GROUP = "workers";

/**
 * `bench.<run>`, the same bytes as Relayr's destination after its `topic:` or
 * `queue:` (a run's name is unique, so the kind need not be in it). Kept
 * short and equal: NATS's cost per message grows ~3.5 ns per subject byte,
 * Relayr's ~1.5 ns (bench/README.md, "What the drivers see").
 */
function subject(_kind: Kind, name: string): string {
  return `bench.${name}`;
}

/** Parses server-to-client NATS frames. */
class NatsParser implements Parser {
  replies = 0;
  #events: Events;
  #mode: Mode;
  #out = new OutBuf();
  /** Where the space before the size was in the last MSG line, from its start (0: none yet). */
  #sizeAt = 0;

  constructor(events: Events, mode: Mode) {
    this.#events = events;
    this.#mode = mode;
  }

  feed(buf: Uint8Array, pos: number, end: number): number {
    // Queue consumers only, as the Relayr driver's shortcut is theirs only: the other
    // scenarios' subscribers of both drivers read every line the general way.
    const consume = this.#mode === Mode.consume;
    while (pos < end) {
      if (consume && buf[pos] === 77 /* M */ && this.#sizeAt > 0) {
        const next = this.#msg(buf, pos, end);
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
        // MSG <subject> <sid> [reply-to] <#bytes>
        const i = lastSpace(buf, pos, le);
        const size = decimal(buf, i + 1, le);
        if (size < 0) {
          this.#events.error(`MSG with a bad size: ${latin1(buf, pos, Math.min(le, pos + 200))}`);
          return end;
        }
        const start = nl + 1;
        const pe = start + size;
        if (pe + 1 >= end) break; // NATS always ends a payload with \r\n
        this.#sizeAt = i - pos;
        if (this.#mode === Mode.respond) this.#reply(buf, pos, i, start, size);
        this.#events.msg(buf, start, size, -1);
        pos = pe + 2;
        continue;
      }
      if (c === 43 /* + */) this.replies++;
      else if (c === 80 /* P */ && buf[pos + 1] === 73 /* I */) this.#out.ascii("PONG\r\n");
      else if (c === 80 && buf[pos + 1] === 79 /* O */) this.#events.pong();
      else if (c === 73 /* I */ || le === pos) { /* INFO or an empty line */ }
      else this.#events.error(latin1(buf, pos, Math.min(le, pos + 200)));
      pos = nl + 1;
    }
    return pos;
  }

  /**
   * A MSG frame at `buf[pos]` whose size token starts where it did in the
   * last line (one subject and sid per subscriber: the same offset every
   * time), read forward from there to the line end, as the Relayr driver
   * reads a consumer's lines from its `msg_id:` token (see its `#consume`):
   * the same shortcut for both queue consumers, so neither pays for an
   * `indexOf` per message (~45-90 ns on Deno) that the other does not.
   * Anything else (the first
   * line, a reply subject, another subject) is `NOT_HERE`, for the general
   * path. Returns where the next frame starts, or `PARTIAL`.
   */
  #msg(buf: Uint8Array, pos: number, end: number): number {
    const s = pos + this.#sizeAt;
    if (s + 1 >= end) return PARTIAL;
    if (buf[s] !== SPACE) return NOT_HERE;
    const j = digitsEnd(buf, s + 1, end);
    if (j + 1 >= end) return PARTIAL;
    if (j === s + 1 || buf[j] !== CR || buf[j + 1] !== LF) return NOT_HERE;
    const size = decimal(buf, s + 1, j);
    const start = j + 2;
    const pe = start + size;
    if (pe + 1 >= end) return PARTIAL; // NATS always ends a payload with \r\n
    this.#events.msg(buf, start, size, -1);
    return pe + 2;
  }

  #reply(buf: Uint8Array, pos: number, sizeAt: number, start: number, size: number): void {
    const tokens = latin1(buf, pos, sizeAt).split(" ");
    if (tokens.length < 4) {
      this.#events.error("request without a reply subject");
      return;
    }
    this.#out.ascii(`PUB ${tokens[3]} ${size}\r\n`);
    this.#out.slice(buf, start, start + size);
    this.#out.bytes(CRLF);
  }

  takeOutput(): Uint8Array | null {
    return this.#out.take();
  }
}

/** The NATS driver. */
export const nats: Driver = {
  protocol: "nats",
  consumeBlocks: false,
  hello: () =>
    `CONNECT {"verbose":false,"pedantic":false,"lang":"relayr-bench","version":"0.1.0",` +
    `"protocol":1,"headers":false}\r\n`,
  ping: () => "PING\r\n",
  publishFrame(kind: Kind, name: string, size: number): FrameShape {
    return { head: bytes(`PUB ${subject(kind, name)} ${size}\r\n`), tail: CRLF };
  },
  deliveryFrame(kind: Kind, name: string, size: number): FrameShape {
    return { head: bytes(`MSG ${subject(kind, name)} 1 ${size}\r\n`), tail: CRLF };
  },
  subscribe: (name, index) => `SUB ${subject("topic", name)} ${index + 1}\r\n`,
  consume: (name, index) => `SUB ${subject("queue", name)} ${GROUP} ${index + 1}\r\n`,
  inbox: (name) => `SUB _INBOX.bench.${name} 1\r\n`,
  respond: (name) => `SUB bench.rpc.${name} 1\r\n`,
  request(name: string, _correlation: number, payload: Uint8Array): Uint8Array {
    return concat(
      `PUB bench.rpc.${name} _INBOX.bench.${name} ${payload.length}\r\n`,
      payload,
      CRLF,
    );
  },
  parser: (events, mode) => new NatsParser(events, mode),
};
