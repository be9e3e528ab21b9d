/**
 * Raw NATS driver (core protocol, no JetStream): `PUB` out, `MSG` parsed on
 * bytes; the queue scenario uses a queue group, request/reply an inbox.
 *
 * @module
 */
import { bytes, concat, CRLF, decimal, lastSpace, latin1, OutBuf } from "./bytes.ts";
import type { Driver, Events, FrameShape, Kind, Parser } from "./types.ts";
import { Mode } from "./types.ts";

const CR = 13;
const LF = 10;
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

  constructor(events: Events, mode: Mode) {
    this.#events = events;
    this.#mode = mode;
  }

  feed(buf: Uint8Array, pos: number, end: number): number {
    while (pos < end) {
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
