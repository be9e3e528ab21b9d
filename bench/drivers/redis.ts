/**
 * Raw Redis driver (RESP2): PUBLISH/SUBSCRIBE for topics, LPUSH with
 * pipelined BRPOPs for the queue (one more BRPOP per message popped, so each
 * consumer keeps `prefetch` pops waiting), LPUSH/BRPOP pairs for request/reply.
 *
 * @module
 */
import { bytes, concat, CRLF, latin1, OutBuf } from "./bytes.ts";
import type { Driver, Events, FrameShape, Kind, Parser } from "./types.ts";
import { Mode } from "./types.ts";

const CR = 13;
const LF = 10;
/** Elements we keep positions for; our replies have at most 3. */
const ELEMENTS_MAX = 8;

/** One RESP command as bytes. */
function command(...args: (string | Uint8Array)[]): Uint8Array {
  const parts: (string | Uint8Array)[] = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = typeof a === "string" ? bytes(a) : a;
    parts.push(`$${b.length}\r\n`, b, CRLF);
  }
  return concat(...parts);
}

/** A command as a string (our commands are ASCII). */
function text(cmd: Uint8Array): string {
  return latin1(cmd, 0, cmd.length);
}

/** Command head for a last argument of `size` bytes that follows it. */
function head(args: string[], size: number): Uint8Array {
  const parts: string[] = [`*${args.length + 1}\r\n`];
  for (const a of args) parts.push(`$${bytes(a).length}\r\n${a}\r\n`);
  parts.push(`$${size}\r\n`);
  return bytes(parts.join(""));
}

const key = (kind: Kind, name: string) => `bench:${kind === "queue" ? "q" : "t"}:${name}`;
const rpcKey = (name: string) => `bench:rpc:${name}`;
const inboxKey = (name: string) => `bench:inbox:${name}`;

/** Parses RESP2 replies and pushes. Arrays are flat (bulk strings and integers), as ours are. */
class RedisParser implements Parser {
  replies = 0;
  #events: Events;
  #mode: Mode;
  #out = new OutBuf();
  #starts = new Int32Array(ELEMENTS_MAX);
  #lens = new Int32Array(ELEMENTS_MAX);
  #intEnd = 0;
  #brpop: Uint8Array;
  #inbox: string;
  #rpcPop: Uint8Array;

  constructor(events: Events, mode: Mode, name: string) {
    this.#events = events;
    this.#mode = mode;
    this.#brpop = command("BRPOP", key("queue", name), "0");
    this.#inbox = inboxKey(name);
    this.#rpcPop = command("BRPOP", rpcKey(name), "0");
  }

  /** Reads a signed decimal ending in \r\n at `i`; sets #intEnd past it, or -1 when incomplete. */
  #int(buf: Uint8Array, i: number, end: number): number {
    let neg = false;
    if (buf[i] === 45 /* - */) {
      neg = true;
      i++;
    }
    let n = 0;
    while (i < end && buf[i] !== CR) n = n * 10 + buf[i++] - 48;
    if (i + 1 >= end) {
      this.#intEnd = -1;
      return 0;
    }
    this.#intEnd = i + 2;
    return neg ? -n : n;
  }

  feed(buf: Uint8Array, pos: number, end: number): number {
    while (pos < end) {
      const c = buf[pos];
      if (c === 42 /* * */) {
        const next = this.#array(buf, pos, end);
        if (next < 0) break;
        pos = next;
        continue;
      }
      const nl = buf.indexOf(LF, pos);
      if (nl < 0 || nl >= end) break;
      if (c === 43 /* + */) {
        if (buf[pos + 1] === 80 /* P */) this.#events.pong();
        else this.replies++;
      } else if (c === 58 /* : */) {
        this.replies++;
      } else if (c === 45 /* - */) {
        this.#events.error(latin1(buf, pos, Math.min(nl - 1, pos + 200)));
      } else if (c === 36 /* $ */) {
        const size = this.#int(buf, pos + 1, end);
        if (size >= 0) {
          if (nl + 1 + size + 2 > end) break;
          pos = nl + 1 + size + 2;
          this.replies++;
          continue;
        }
        this.replies++;
      } else {
        this.#events.error(`unexpected reply ${JSON.stringify(latin1(buf, pos, nl))}`);
      }
      pos = nl + 1;
    }
    return pos;
  }

  /** Parses one flat array at `pos`; returns the offset after it, or -1 when incomplete. */
  #array(buf: Uint8Array, pos: number, end: number): number {
    const n = this.#int(buf, pos + 1, end);
    let i = this.#intEnd;
    if (i < 0) return -1;
    if (n <= 0) return i; // null array (BRPOP timeout) or empty
    const starts = this.#starts;
    const lens = this.#lens;
    for (let k = 0; k < n; k++) {
      if (i >= end) return -1;
      const c = buf[i];
      if (c === 36 /* $ */) {
        const len = this.#int(buf, i + 1, end);
        const at = this.#intEnd;
        if (at < 0) return -1;
        if (len < 0) {
          i = at;
          if (k < ELEMENTS_MAX) starts[k] = -1;
          continue;
        }
        if (at + len + 2 > end) return -1;
        if (k < ELEMENTS_MAX) {
          starts[k] = at;
          lens[k] = len;
        }
        i = at + len + 2;
      } else if (c === 58 /* : */ || c === 43 /* + */) {
        this.#int(buf, i + 1, end);
        if (this.#intEnd < 0) return -1;
        if (k < ELEMENTS_MAX) starts[k] = -1;
        i = this.#intEnd;
      } else {
        this.#events.error(`nested or unknown array element ${String.fromCharCode(c)}`);
        return end;
      }
    }
    this.#dispatch(buf, n);
    return i;
  }

  #dispatch(buf: Uint8Array, n: number): void {
    const s = this.#starts;
    const l = this.#lens;
    const first = s[0] >= 0 ? buf[s[0]] : 0;
    if (n === 3 && first === 109 /* m */ && l[0] === 7) {
      this.#events.msg(buf, s[2], l[2], -1); // ["message", channel, payload]
    } else if (n === 3 && first === 115 /* s */) {
      this.replies++; // ["subscribe", channel, count]
    } else if (n === 2 && first === 112 /* p */ && l[0] === 4) {
      this.#events.pong(); // ["pong", ""]: PING while subscribed
    } else if (n === 2 && s[1] >= 0) {
      // [key, value]: a BRPOP pop
      if (this.#mode === Mode.consume) this.#out.bytes(this.#brpop);
      else if (this.#mode === Mode.respond) {
        this.#out.bytes(head(["LPUSH", this.#inbox], l[1]));
        this.#out.slice(buf, s[1], s[1] + l[1]);
        this.#out.bytes(CRLF);
        this.#out.bytes(this.#rpcPop);
      }
      this.#events.msg(buf, s[1], l[1], -1);
    } else {
      this.#events.error(`unexpected array of ${n}`);
    }
  }

  takeOutput(): Uint8Array | null {
    return this.#out.take();
  }
}

/** The Redis driver. */
export const redis: Driver = {
  protocol: "redis",
  consumeBlocks: true,
  hello: () => "",
  ping: () => "*1\r\n$4\r\nPING\r\n",
  publishFrame(kind: Kind, name: string, size: number): FrameShape {
    const args = kind === "queue" ? ["LPUSH", key(kind, name)] : ["PUBLISH", key(kind, name)];
    return { head: head(args, size), tail: CRLF };
  },
  deliveryFrame(kind: Kind, name: string, size: number): FrameShape {
    const k = key(kind, name);
    const h = kind === "queue"
      ? `*2\r\n$${k.length}\r\n${k}\r\n$${size}\r\n`
      : `*3\r\n$7\r\nmessage\r\n$${k.length}\r\n${k}\r\n$${size}\r\n`;
    return { head: bytes(h), tail: CRLF };
  },
  subscribe: (name) => text(command("SUBSCRIBE", key("topic", name))),
  consume(name: string, _index: number, prefetch: number): string {
    return text(command("BRPOP", key("queue", name), "0")).repeat(prefetch);
  },
  inbox: () => "",
  respond: (name) => text(command("BRPOP", rpcKey(name), "0")),
  request(name: string, _correlation: number, payload: Uint8Array): Uint8Array {
    return concat(command("LPUSH", rpcKey(name), payload), command("BRPOP", inboxKey(name), "0"));
  },
  parser: (events, mode, name) => new RedisParser(events, mode, name),
};
