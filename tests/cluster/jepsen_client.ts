/**
 * The Jepsen workload's clients: publishers and consumers of one queue,
 * each on a raw TCP connection to a node picked at random, recording every
 * operation in a {@linkcode History}. A connection that ends, or a reply that
 * does not come within `opTimeoutMs`, turns every operation waiting on it
 * into an `info` (unknown outcome), and the client dials another node.
 * Replies come in command order (docs/PROTOCOL.md), so each connection keeps
 * a FIFO of the operations waiting for one.
 *
 * @module
 */
import type { History, OpKind } from "./history.ts";

/** A node clients may dial. */
export interface Target {
  readonly id: string;
  readonly port: number;
}

/** Options of a {@linkcode Workload}. */
export interface WorkloadOptions {
  /** The nodes to dial (asked afresh at each dial: restarted nodes keep their ports). */
  targets: () => readonly Target[];
  queue: string;
  /**
   * Where the publishers publish (default: the queue): a topic bound to it
   * (`BIND`), so every payload reaches the queue as a binding's copy.
   */
  publishTo?: string;
  publishers: number;
  consumers: number;
  /** Publishes each publisher keeps waiting for their reply. */
  window: number;
  /** Pause between a publisher's batches of `window` publishes (pacing; 0: as fast as replies come). */
  pacingMs: number;
  /** Consumer prefetch. */
  prefetch: number;
  /**
   * While publishing goes on, each ACK is sent this long after its delivery:
   * consumers then take fewer messages per second than are published, so the
   * queue holds a backlog when a fault strikes (what replication must keep).
   * The final drain ACKs at once.
   */
  ackDelayMs: number;
  /** The consumers' `ack_timeout`. */
  ackTimeoutMs: number;
  /** A reply that takes longer than this makes its connection's pending ops unknown. */
  opTimeoutMs: number;
}

/**
 * `ERR` codes after which a publish is known not to have been accepted.
 * Every other code (`UNAVAILABLE`, `NOT_LEADER`, `STORE_FAILED`, `SHUTTING_DOWN`,
 * one we do not know) leaves the outcome unknown: the checker never counts
 * on an `ERR` it cannot be sure of.
 */
const REFUSED = new Set([
  "BAD_ARGUMENT",
  "BAD_DESTINATION",
  "QUEUE_FULL",
  "LIMIT",
  "PERMISSION_DENIED",
  "PAYLOAD_TOO_LARGE",
]);

/** Longest control line we read from a broker (its own limit is 4096). */
const LINE_BYTES_MAX = 8192;
/** Longest payload we expect (our payloads are a few bytes). */
const PAYLOAD_BYTES_MAX = 1 << 20;
/** Wait before dialling again after every node refused. */
const REDIAL_MS = 100;
/**
 * A publisher's pause after an `ERR` reply (`UNAVAILABLE` while a queue has
 * no leader), as a real client backs off: without it a failover turns into
 * thousands of refused publishes that only bloat the history.
 */
const BACKOFF_MS = 50;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** An operation waiting for its reply on a connection. */
interface Waiting {
  f: OpKind | "sub";
  value: string;
  msgId?: string;
  since: number;
}

/** One connection to one node: a byte parser, a write chain, the FIFO of waiting ops. */
class Session {
  readonly node: Target;
  readonly waiting: Waiting[] = [];
  closed = false;
  why = "";
  readonly #conn: Deno.TcpConn;
  #writing: Promise<void> = Promise.resolve();
  #buf = new Uint8Array(64 * 1024);
  #len = 0;

  constructor(node: Target, conn: Deno.TcpConn) {
    this.node = node;
    this.#conn = conn;
  }

  /** Writes `text` after what was written before; a failed write closes the session. */
  write(text: string): void {
    const bytes = enc.encode(text);
    this.#writing = this.#writing.then(async () => {
      if (this.closed) return;
      try {
        for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      } catch {
        this.close("connection lost");
      }
    });
  }

  close(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.why = why;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /** Waits for the writes queued so far to end. */
  flushed(): Promise<void> {
    return this.#writing;
  }

  /** Reads until the connection ends: `line` for each reply line, `msg` for each MSG. */
  async pump(line: (l: string) => void, msg: (head: string, payload: string) => void) {
    for (;;) {
      if (this.#len === this.#buf.length) {
        if (this.#buf.length >= LINE_BYTES_MAX + PAYLOAD_BYTES_MAX) {
          return this.close("frame too large");
        }
        const grown = new Uint8Array(this.#buf.length * 2);
        grown.set(this.#buf);
        this.#buf = grown;
      }
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buf.subarray(this.#len));
      } catch {
        n = null;
      }
      if (n === null) return this.close(this.closed ? this.why : "connection lost");
      this.#len += n;
      let pos = 0;
      for (;;) {
        const lf = this.#buf.subarray(pos, this.#len).indexOf(10);
        if (lf < 0) break;
        const end = pos + lf;
        const text = dec.decode(
          this.#buf.subarray(pos, end > pos && this.#buf[end - 1] === 13 ? end - 1 : end),
        );
        if (text.startsWith("MSG ")) {
          const size = Number(text.slice(text.lastIndexOf(" ") + 1));
          if (end + 1 + size + 2 > this.#len) break; // the payload is still coming
          msg(text, dec.decode(this.#buf.subarray(end + 1, end + 1 + size)));
          pos = end + 1 + size + 2;
        } else {
          if (text === "PING") this.write("PONG\r\n");
          else if (text.length > 0 && text !== "PONG") line(text);
          pos = end + 1;
        }
        if (this.closed) return;
      }
      this.#buf.copyWithin(0, pos, this.#len);
      this.#len -= pos;
    }
  }
}

/** Publishers and consumers of one queue, recording into one history. */
export class Workload {
  readonly history: History;
  readonly #o: WorkloadOptions;
  readonly #sessions = new Set<Session>();
  readonly #loops: Promise<void>[] = [];
  readonly #publishers: Promise<void>[] = [];
  #publishing = true;
  #consuming = true;
  #watchdog: ReturnType<typeof setInterval>;
  /** Acks held back by `ackDelayMs`. */
  readonly #ackTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Wakes publishers waiting for room in their window. */
  #wake = new Set<() => void>();
  /** Payloads whose publish was answered OK (for the drain and the progress waits). */
  readonly okd = new Set<string>();
  /** Payloads delivered at least once. */
  readonly delivered = new Set<string>();
  /** When the last delivery came (ms, the history's clock). */
  lastDelivery = 0;

  constructor(history: History, options: WorkloadOptions) {
    this.history = history;
    this.#o = options;
    // One timer for every connection: a reply overdue past opTimeoutMs makes the connection unknown.
    this.#watchdog = setInterval(() => {
      const now = performance.now();
      for (const s of this.#sessions) {
        const head = s.waiting[0];
        if (head !== undefined && now - head.since > this.#o.opTimeoutMs) s.close("timeout");
      }
    }, 100);
  }

  /** Starts the publishers. */
  startPublishers(): void {
    for (let i = 1; i <= this.#o.publishers; i++) this.#publishers.push(this.#publisher(`p${i}`));
  }

  /** Starts the consumers. */
  startConsumers(): void {
    for (let i = 1; i <= this.#o.consumers; i++) this.#loops.push(this.#consumer(`c${i}`));
  }

  /** Stops publishing; resolves once every publisher's last ops are answered or unknown. */
  async stopPublishing(): Promise<void> {
    this.#publishing = false;
    for (const w of this.#wake) w();
    await Promise.all(this.#publishers);
  }

  /**
   * The final drain: consumers go on until every OK'd publish was delivered
   * and nothing was delivered for `quietMs`, or `timeoutMs` passed. Returns
   * whether everything OK'd was delivered.
   */
  async drain(quietMs: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const now = performance.now();
      let all = true;
      for (const v of this.okd) if (!this.delivered.has(v)) all = false;
      if (all && now - this.lastDelivery >= quietMs) return true;
      if (now >= deadline) return all;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops everything and closes every connection. */
  async stop(): Promise<void> {
    this.#publishing = false;
    this.#consuming = false;
    for (const w of this.#wake) w();
    clearInterval(this.#watchdog);
    for (const t of this.#ackTimers) clearTimeout(t);
    this.#ackTimers.clear();
    for (const s of this.#sessions) s.close("stopped");
    await Promise.all([...this.#publishers, ...this.#loops]);
  }

  /**
   * Dials the nodes in a random order until one answers, pausing between
   * rounds; undefined once `go()` turns false.
   */
  async #dial(go: () => boolean): Promise<Session | undefined> {
    while (go()) {
      const targets = [...this.#o.targets()];
      for (let i = targets.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [targets[i], targets[j]] = [targets[j], targets[i]];
      }
      for (const t of targets) {
        try {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: t.port });
          const s = new Session(t, conn);
          this.#sessions.add(s);
          return s;
        } catch { /* down: the next one */ }
      }
      await new Promise((r) => setTimeout(r, REDIAL_MS));
    }
    return undefined;
  }

  /** Records every op still waiting on a closed session as unknown. */
  #unknown(s: Session, process: string): void {
    for (const w of s.waiting.splice(0)) {
      if (w.f === "sub") continue;
      this.history.add({
        type: "info",
        f: w.f,
        process,
        node: s.node.id,
        value: w.value,
        msgId: w.msgId,
        error: s.why,
      });
    }
    this.#sessions.delete(s);
  }

  async #publisher(process: string): Promise<void> {
    let seq = 0;
    while (this.#publishing) {
      const s = await this.#dial(() => this.#publishing);
      if (s === undefined) break;
      const node = s.node.id;
      let room: (() => void) | undefined;
      let refused = false;
      const reader = s.pump((line) => {
        const w = s.waiting.shift();
        if (w === undefined) return s.close(`unexpected reply: ${line}`);
        if (line.startsWith("OK")) {
          const msgId = /msg_id:(\d+)/.exec(line)?.[1];
          this.history.add({ type: "ok", f: "publish", process, node, value: w.value, msgId });
          this.okd.add(w.value);
        } else {
          const code = line.split(" ")[1] ?? "";
          const type = REFUSED.has(code) ? "fail" : "info";
          this.history.add({ type, f: "publish", process, node, value: w.value, error: line });
          refused = true;
        }
        room?.();
      }, () => s.close("MSG on a publisher"));
      const ended = reader.then(() => room?.());
      while (this.#publishing && !s.closed) {
        if (refused) {
          refused = false;
          await new Promise((r) => setTimeout(r, BACKOFF_MS));
          continue;
        }
        if (s.waiting.length >= this.#o.window) {
          await new Promise<void>((r) => {
            room = r;
            this.#wake.add(r);
          });
          this.#wake.delete(room!);
          continue;
        }
        for (let i = s.waiting.length; i < this.#o.window && !s.closed; i++) {
          const value = `${process}-${++seq}`;
          this.history.add({ type: "invoke", f: "publish", process, node, value });
          s.waiting.push({ f: "publish", value, since: performance.now() });
          s.write(`PUB ${this.#o.publishTo ?? this.#o.queue} ${value.length}\r\n${value}\r\n`);
        }
        if (this.#o.pacingMs > 0) await new Promise((r) => setTimeout(r, this.#o.pacingMs));
      }
      // Stopped: wait (bounded by the watchdog) for the replies still due.
      while (!s.closed && s.waiting.length > 0) {
        await new Promise<void>((r) => room = r);
      }
      s.close("stopped");
      await ended;
      await s.flushed();
      this.#unknown(s, process);
    }
  }

  async #consumer(process: string): Promise<void> {
    while (this.#consuming) {
      const s = await this.#dial(() => this.#consuming);
      if (s === undefined) break;
      const node = s.node.id;
      s.waiting.push({ f: "sub", value: "", since: performance.now() });
      s.write(
        `SUB ${this.#o.queue} sub_id:${process} prefetch:${this.#o.prefetch} ` +
          `ack_timeout:${this.#o.ackTimeoutMs}\r\n`,
      );
      await s.pump((line) => {
        const w = s.waiting.shift();
        if (w === undefined) return s.close(`unexpected reply: ${line}`);
        if (w.f === "sub") {
          if (!line.startsWith("OK")) s.close(`SUB answered ${line}`);
          return;
        }
        const ok = line.startsWith("OK");
        const type = ok ? "ok" : line.startsWith("ERR UNKNOWN_MSG_ID") ? "fail" : "info";
        const error = ok ? undefined : line;
        this.history.add({ type, f: "ack", process, node, value: w.value, msgId: w.msgId, error });
      }, (head, value) => {
        const msgId = /msg_id:(\d+)/.exec(head)?.[1] ?? "?";
        const redelivered = /delivery:\d+/.test(head);
        this.history.add({ type: "ok", f: "deliver", process, node, value, msgId, redelivered });
        this.delivered.add(value);
        this.lastDelivery = performance.now();
        const ack = () => {
          if (s.closed) return; // never sent: the message comes again
          this.history.add({ type: "invoke", f: "ack", process, node, value, msgId });
          s.waiting.push({ f: "ack", value, msgId, since: performance.now() });
          s.write(`ACK msg_id:${msgId}\r\n`);
        };
        if (this.#o.ackDelayMs === 0 || !this.#publishing) return ack();
        const timer = setTimeout(() => {
          this.#ackTimers.delete(timer);
          ack();
        }, this.#o.ackDelayMs);
        this.#ackTimers.add(timer);
      });
      await s.flushed();
      this.#unknown(s, process);
      if (this.#consuming) await new Promise((r) => setTimeout(r, 20));
    }
  }
}
