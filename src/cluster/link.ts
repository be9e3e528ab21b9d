/**
 * The inter-node link's frames: a small text protocol in the style of the
 * wire protocol, one direction per TCP connection (each node dials every
 * other and writes only on the connection it dialled, so each side has one
 * writer and one reader and no frame needs an id):
 *
 * ```
 * HELLO <node-id>\r\n                          first frame of a link
 * SUB <pattern>\r\n                             the sender has a subscriber to <pattern>
 * UNSUB <pattern>\r\n                           ... no longer
 * MSG <topic> <opts-bytes> <payload-bytes>\r\n<opts JSON><payload>\r\n
 * ```
 *
 * `LinkParser` is pure: bytes in, frames out; it enforces the line and body
 * limits before it buffers.
 *
 * @module
 */
import { CLUSTER_LINK_FRAME_BYTES_MAX, CLUSTER_LINK_LINE_BYTES_MAX } from "../config/mod.ts";
import { decimal, type PubOptions } from "../protocol/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A parsed frame. */
export type LinkFrame =
  | { op: "HELLO"; node: string }
  | { op: "SUB" | "UNSUB"; pattern: string }
  | { op: "MSG"; topic: string; options: PubOptions | undefined; payload: Uint8Array };

/** A frame that breaks the link protocol: the link is cut. */
export class LinkProtocolError extends SyntaxError {
  constructor(message: string) {
    super(message);
    this.name = "LinkProtocolError";
  }
}

/** `HELLO`, `SUB` and `UNSUB` frames. */
export function encodeLine(op: "HELLO" | "SUB" | "UNSUB", arg: string): Uint8Array {
  return encoder.encode(`${op} ${arg}\r\n`);
}

/** Reads frames out of the bytes of one inbound link. */
export class LinkParser {
  #pending: Uint8Array = new Uint8Array(0);

  /**
   * Adds `chunk` and returns the complete frames. Payloads are views of
   * arrays never written again (chunks, or a fresh joined copy), so they may
   * be kept. Throws `LinkProtocolError`.
   */
  push(chunk: Uint8Array): LinkFrame[] {
    let buf = chunk;
    if (this.#pending.length > 0) {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending, 0);
      buf.set(chunk, this.#pending.length);
    }
    const frames: LinkFrame[] = [];
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) {
        if (buf.length - pos > CLUSTER_LINK_LINE_BYTES_MAX) {
          throw new LinkProtocolError("control line over CLUSTER_LINK_LINE_BYTES_MAX");
        }
        break;
      }
      if (nl - pos > CLUSTER_LINK_LINE_BYTES_MAX) {
        throw new LinkProtocolError("control line over CLUSTER_LINK_LINE_BYTES_MAX");
      }
      const end = nl > pos && buf[nl - 1] === 13 ? nl - 1 : nl;
      if (
        buf[pos] === 0x4d && buf[pos + 1] === 0x53 && buf[pos + 2] === 0x47 && buf[pos + 3] === 0x20
      ) {
        // MSG <topic> <opts-bytes> <payload-bytes>: read on bytes, the one frame per message.
        const sp1 = buf.indexOf(0x20, pos + 4);
        const sp2 = sp1 < 0 || sp1 >= end ? -1 : buf.indexOf(0x20, sp1 + 1);
        const optsLen = sp2 < 0 || sp2 >= end ? -1 : decimal(buf, sp1 + 1, sp2, 15);
        const payloadLen = optsLen < 0 ? -1 : decimal(buf, sp2 + 1, end, 15);
        if (
          sp1 === pos + 4 || payloadLen < 0 || optsLen + payloadLen > CLUSTER_LINK_FRAME_BYTES_MAX
        ) {
          const line = decoder.decode(buf.subarray(pos, Math.min(end, pos + 64)));
          throw new LinkProtocolError(`bad MSG line ${JSON.stringify(line)}`);
        }
        const body = nl + 1;
        if (buf.length < body + optsLen + payloadLen + 2) break; // the body is still coming
        const topic = decoder.decode(buf.subarray(pos + 4, sp1));
        const options = optsLen === 0
          ? undefined
          : JSON.parse(decoder.decode(buf.subarray(body, body + optsLen))) as PubOptions;
        const payload = buf.subarray(body + optsLen, body + optsLen + payloadLen);
        frames.push({ op: "MSG", topic, options, payload });
        pos = body + optsLen + payloadLen + 2;
        continue;
      }
      const line = decoder.decode(buf.subarray(pos, end));
      const parts = line.split(" ");
      if (parts.length !== 2 || parts[1] === "") {
        throw new LinkProtocolError(`bad frame ${JSON.stringify(line.slice(0, 64))}`);
      }
      if (parts[0] === "HELLO") frames.push({ op: "HELLO", node: parts[1] });
      else if (parts[0] === "SUB" || parts[0] === "UNSUB") {
        frames.push({ op: parts[0], pattern: parts[1] });
      } else throw new LinkProtocolError(`unknown frame ${JSON.stringify(line.slice(0, 64))}`);
      pos = nl + 1;
    }
    this.#pending = pos === buf.length ? new Uint8Array(0) : buf.slice(pos);
    return frames;
  }
}

/** Initial size of each of a peer's two outbound buffers; they grow to the largest tick. */
const OUT_BUFFER_BYTES = 64 * 1024;

/**
 * The bytes waiting for one peer's link, in two buffers that take turns (as
 * the client `Outbound` does): frames are written into one while the other is
 * on the socket, so a message is encoded in place, with no array of its own.
 */
export class LinkOutbound {
  #buf = new Uint8Array(OUT_BUFFER_BYTES);
  #spare = new Uint8Array(OUT_BUFFER_BYTES);
  #len = 0;

  /** Bytes waiting. */
  get size(): number {
    return this.#len;
  }

  /** Appends whole bytes (a control frame). */
  append(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  /** Appends a `MSG` frame of `buf[off, off + len)`; returns where it starts and its length. */
  appendMsg(
    topic: string,
    buf: Uint8Array,
    off: number,
    len: number,
    o: PubOptions | undefined,
  ): [start: number, bytes: number] {
    const opts = o === undefined ? undefined : encoder.encode(JSON.stringify(o));
    const optsLen = opts?.length ?? 0;
    const start = this.#len;
    this.#room(4 + topic.length * 3 + 2 * 17 + 4 + optsLen + len);
    const b = this.#buf;
    let at = start;
    b[at++] = 0x4d; // M
    b[at++] = 0x53; // S
    b[at++] = 0x47; // G
    b[at++] = 0x20;
    at += encoder.encodeInto(topic, b.subarray(at)).written;
    b[at++] = 0x20;
    at = digits(b, at, optsLen);
    b[at++] = 0x20;
    at = digits(b, at, len);
    b[at++] = 13;
    b[at++] = 10;
    if (opts !== undefined) {
      b.set(opts, at);
      at += optsLen;
    }
    b.set(buf.subarray(off, off + len), at);
    at += len;
    b[at++] = 13;
    b[at++] = 10;
    this.#len = at;
    return [start, at - start];
  }

  /** Appends `bytes` bytes of `from`'s buffer from `start` (a frame encoded there for another peer). */
  appendFrom(from: LinkOutbound, start: number, bytes: number): void {
    this.#room(bytes);
    this.#buf.set(from.#buf.subarray(start, start + bytes), this.#len);
    this.#len += bytes;
  }

  /**
   * The bytes waiting, to be written; appends go to the other buffer from
   * now on. The view stays valid until the next `take()` (one write at a time).
   */
  take(): Uint8Array {
    const sent = this.#buf;
    const out = sent.subarray(0, this.#len);
    this.#buf = this.#spare;
    this.#spare = sent;
    this.#len = 0;
    return out;
  }

  /** Drops what is waiting (the link went down). */
  clear(): void {
    this.#len = 0;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}

/** Writes `n` (a non-negative safe integer) in decimal at `at`; returns the end. */
function digits(b: Uint8Array, at: number, n: number): number {
  if (n === 0) {
    b[at] = 0x30;
    return at + 1;
  }
  let end = at;
  for (let x = n; x > 0; x = Math.floor(x / 10)) end++;
  for (let i = end - 1, x = n; x > 0; x = Math.floor(x / 10)) b[i--] = 0x30 + (x % 10);
  return end;
}
