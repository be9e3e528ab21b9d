/**
 * Raw NATS JetStream driver for the queue scenario: the publisher sends every
 * `PUB` with a reply inbox and counts the stream's publish acks; consumers
 * share one durable pull consumer (explicit ack), keep pull requests of
 * {@linkcode PULL_BATCH} messages outstanding and ACK every message (`+ACK` to
 * its reply subject), batched per read. The stream and the consumer are
 * created before a run by `../jetstream.ts`. Frames are parsed on bytes like
 * the core NATS driver; only the queue scenario is JetStream.
 *
 * @module
 */
import { bytes, concat, CRLF, decimal, lastSpace, latin1, OutBuf } from "./bytes.ts";
import type { Driver, Events, FrameShape, Kind, Parser } from "./types.ts";
import { Mode } from "./types.ts";

const SPACE = 32;
const CR = 13;
const LF = 10;

/** Messages asked for by one pull request. */
export const PULL_BATCH = 500;
/** Pull requests each consumer keeps outstanding (a new one goes out when one is used up). */
export const PULLS_AHEAD = 2;
/**
 * How long a pull request waits for messages, ns: longer than any run's stall
 * limit, so a request never expires in a valid run (its leftover credit would be lost).
 */
export const PULL_EXPIRES_NS = 600e9;
/** The durable consumer the bench's consumers share. */
export const DURABLE = "workers";

/** The stream of a run: stream names may not contain `.`, `*`, `>` or spaces. */
export function streamOf(name: string): string {
  return `BENCH_${name}`;
}

/** The subject queue messages are published to (the stream's only subject). */
export function queueSubject(name: string): string {
  return `bench.q.${name}`;
}

function pubInbox(name: string): string {
  return `_INBOX.bench.${name}.pub`;
}

function consumerInbox(name: string, index: number): string {
  return `_INBOX.bench.${name}.c${index}`;
}

/** One pull request for `PULL_BATCH` messages, delivered to `inbox`. */
function pull(name: string, inbox: string): string {
  const body = `{"batch":${PULL_BATCH},"expires":${PULL_EXPIRES_NS}}`;
  const subject = `$JS.API.CONSUMER.MSG.NEXT.${streamOf(name)}.${DURABLE}`;
  return `PUB ${subject} ${inbox} ${body.length}\r\n${body}\r\n`;
}

/** `{"stream":` : the start of every successful publish ack. */
const PUB_ACK = bytes(`{"stream":`);
/** `PUB `, ` 4\r\n+ACK\r\n`: around the reply subject of one message ack. */
const ACK_HEAD = bytes("PUB ");
const ACK_TAIL = bytes(" 4\r\n+ACK\r\n");

/** Parses server-to-client NATS frames, including JetStream status (`HMSG`) frames. */
class JetStreamParser implements Parser {
  /** Successful publish acks (publisher) . */
  replies = 0;
  #events: Events;
  #mode: Mode;
  #out = new OutBuf();
  /** Messages still asked for by this consumer's outstanding pull requests. */
  #credit: number;
  #pull: string;

  constructor(events: Events, mode: Mode, name: string, index: number) {
    this.#events = events;
    this.#mode = mode;
    // `consume()` sent the first PULLS_AHEAD requests.
    this.#credit = PULL_BATCH * PULLS_AHEAD;
    this.#pull = pull(name, consumerInbox(name, index));
  }

  feed(buf: Uint8Array, pos: number, end: number): number {
    while (pos < end) {
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) break;
      const le = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
      const c = buf[pos];
      if (c === 77 /* M */ || (c === 72 /* H */ && buf[pos + 1] === 77)) {
        // MSG <subject> <sid> [reply-to] <#bytes>
        // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
        const i = lastSpace(buf, pos, le);
        const size = decimal(buf, i + 1, le);
        if (size < 0) {
          this.#events.error(`MSG with a bad size: ${latin1(buf, pos, Math.min(le, pos + 200))}`);
          return end;
        }
        const start = nl + 1;
        const pe = start + size;
        if (pe + 1 >= end) break; // NATS always ends a payload with \r\n
        if (c === 72) this.#status(buf, pos, start, pe);
        else if (this.#mode === Mode.consume) this.#consume(buf, pos, i, start, size);
        else if (this.#mode === Mode.plain) this.#pubAck(buf, start, size);
        else this.#events.msg(buf, start, size, -1);
        pos = pe + 2;
        continue;
      }
      if (c === 80 /* P */ && buf[pos + 1] === 73 /* I */) this.#out.ascii("PONG\r\n");
      else if (c === 80 && buf[pos + 1] === 79 /* O */) this.#events.pong();
      else if (c === 73 /* I */ || c === 43 /* +OK */ || le === pos) { /* nothing to do */ }
      else this.#events.error(latin1(buf, pos, Math.min(le, pos + 200)));
      pos = nl + 1;
    }
    return pos;
  }

  /** A delivered message: report it, ACK it, and ask for more when a pull is used up. */
  #consume(buf: Uint8Array, pos: number, sizeAt: number, start: number, size: number): void {
    // The reply subject ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...) is the token before the size.
    let r = sizeAt - 1;
    while (r > pos && buf[r] !== SPACE) r--;
    const out = this.#out;
    out.bytes(ACK_HEAD);
    out.slice(buf, r + 1, sizeAt);
    out.bytes(ACK_TAIL);
    this.#events.msg(buf, start, size, -1);
    if (--this.#credit <= PULL_BATCH * (PULLS_AHEAD - 1)) {
      out.ascii(this.#pull);
      this.#credit += PULL_BATCH;
    }
  }

  /** The publisher's inbox gets one `{"stream":"…","seq":n}` per publish, or an error. */
  #pubAck(buf: Uint8Array, start: number, size: number): void {
    let ok = size > PUB_ACK.length;
    for (let k = 0; ok && k < PUB_ACK.length; k++) ok = buf[start + k] === PUB_ACK[k];
    if (ok) this.replies++;
    else this.#events.error(`publish ack: ${latin1(buf, start, start + Math.min(size, 200))}`);
  }

  /** A status frame (`NATS/1.0 408 Request Timeout`, `503` no responders…): never in a valid run. */
  #status(buf: Uint8Array, pos: number, start: number, pe: number): void {
    const head = latin1(buf, start, Math.min(pe, start + 200)).split("\r\n")[0];
    if (head.startsWith("NATS/1.0 100")) return; // idle heartbeat
    const line = latin1(buf, pos, Math.min(start, pos + 200)).trim();
    this.#events.error(`status ${head} (${line})`);
  }

  takeOutput(): Uint8Array | null {
    return this.#out.take();
  }
}

/** The NATS JetStream driver (queue scenario only). */
export const natsJs: Driver = {
  protocol: "nats-js",
  consumeBlocks: false,
  hello: () =>
    `CONNECT {"verbose":false,"pedantic":false,"lang":"relayr-bench","version":"0.1.0",` +
    `"protocol":1,"headers":true,"no_responders":true}\r\n`,
  ping: () => "PING\r\n",
  publisher: (name) => `SUB ${pubInbox(name)} 1\r\n`,
  publishAcks: true,
  publishFrame(kind: Kind, name: string, size: number): FrameShape {
    if (kind !== "queue") throw new TypeError("nats-js drives the queue scenario only");
    return { head: bytes(`PUB ${queueSubject(name)} ${pubInbox(name)} ${size}\r\n`), tail: CRLF };
  },
  deliveryFrame(_kind: Kind, name: string, size: number): FrameShape {
    const reply = `$JS.ACK.${streamOf(name)}.${DURABLE}.1.1000000.1000000.1700000000000000000.0`;
    return { head: bytes(`MSG ${queueSubject(name)} 1 ${reply} ${size}\r\n`), tail: CRLF };
  },
  subscribe: () => {
    throw new TypeError("nats-js drives the queue scenario only");
  },
  consume: (name, index) =>
    `SUB ${consumerInbox(name, index)} ${index + 1}\r\n` +
    pull(name, consumerInbox(name, index)).repeat(PULLS_AHEAD),
  inbox: () => {
    throw new TypeError("nats-js drives the queue scenario only");
  },
  respond: () => {
    throw new TypeError("nats-js drives the queue scenario only");
  },
  request(): Uint8Array {
    throw new TypeError("nats-js drives the queue scenario only");
  },
  parser: (events, mode, name, index = 0) => new JetStreamParser(events, mode, name, index),
};

/** Bytes of one JetStream API request with reply inbox `inbox` (setup only, not the hot path). */
export function apiRequest(subject: string, inbox: string, body: unknown): Uint8Array {
  const json = bytes(JSON.stringify(body));
  return concat(`PUB ${subject} ${inbox} ${json.length}\r\n`, json, CRLF);
}
