/**
 * The loops a worker runs: publisher, receiver (subscriber or queue
 * consumer), requester, responder. They are the same for every system; the
 * driver supplies the frames and the parser.
 *
 * Each connection has one read loop (`pump`): read into the wire's buffer,
 * parse every complete frame, read the clock once, report progress, send what
 * the parse produced (ACKs, BRPOPs, PONGs, replies) without waiting for it.
 *
 * @module
 */
import { drivers, type Events, Mode, type Parser } from "./drivers/mod.ts";
import { Batcher, clock, payload, seqAt, stampAt } from "./payload.ts";
import {
  CTL_RECV,
  CTL_SENT,
  CTL_TICK,
  FILTER_STRIDE,
  type PublishResult,
  type PublishTask,
  type ReceiveResult,
  type ReceiveTask,
  type RequestResult,
  type RequestTask,
  type RespondResult,
  type RespondTask,
  type Task,
} from "./tasks.ts";
import { Wire } from "./wire.ts";

/** Queued answer bytes above which the read loop waits for the socket. */
const ANSWER_PENDING_BYTES_MAX = 4 * 1024 * 1024;
/** Errors kept per connection; the first few say what went wrong. */
const ERRORS_KEPT = 20;
/** Longest wait for a PONG (handshake or final). */
const PONG_TIMEOUT_MS = 60_000;

/** Lets the coordinator stop a running task. */
export interface Control {
  stopped: boolean;
  wire: Wire | null;
}

/** Longest a stopping task waits for its queued writes (the last ACKs) before it closes. */
const STOP_FLUSH_MS = 500;

/**
 * Stops the task: what it has queued (such as the ACKs of the last messages,
 * so the server's queues end empty) is written first, then the connection
 * closes and the read loop ends.
 */
export function stop(control: Control): void {
  control.stopped = true;
  const wire = control.wire;
  if (!wire) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((r) => timer = setTimeout(r, STOP_FLUSH_MS));
  Promise.race([wire.flushed(), late]).then(() => {
    clearTimeout(timer);
    wire.close();
  });
}

/** Counts PONGs and errors; the base of every role's events. */
class Tally implements Events {
  pongs = 0;
  errors: string[] = [];
  #waiters: { n: number; resolve: (ok: boolean) => void }[] = [];
  #ended = false;

  msg(_buf: Uint8Array, _start: number, _size: number, _correlation: number): void {}

  pong(): void {
    this.pongs++;
    this.#waiters = this.#waiters.filter((w) => {
      if (this.pongs < w.n) return true;
      w.resolve(true);
      return false;
    });
  }

  error(text: string): void {
    if (this.errors.length < ERRORS_KEPT) this.errors.push(text);
  }

  /** Resolves true once `n` PONGs arrived, false if the connection ends or the wait times out. */
  waitPong(n: number): Promise<boolean> {
    if (this.pongs >= n) return Promise.resolve(true);
    if (this.#ended) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), PONG_TIMEOUT_MS);
      this.#waiters.push({
        n,
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      });
    });
  }

  /** The connection ended: nothing more will arrive. */
  end(): void {
    this.#ended = true;
    for (const w of this.#waiters) w.resolve(false);
    this.#waiters = [];
  }
}

/** Reads and parses until the connection ends or the task is stopped. */
async function pump(
  wire: Wire,
  parser: Parser,
  events: Tally,
  control: Control,
  onChunk?: () => void,
): Promise<void> {
  try {
    while (!control.stopped && await wire.fill()) {
      wire.shift(parser.feed(wire.buf, 0, wire.end));
      onChunk?.();
      const out = parser.takeOutput();
      if (out) {
        const written = wire.write(out);
        if (wire.pendingBytes > ANSWER_PENDING_BYTES_MAX) await written;
      }
    }
  } finally {
    if (wire.failure) events.error(wire.failure);
    events.end();
  }
}

async function dial(task: Task, control: Control): Promise<Wire> {
  const wire = task.ws
    ? await Wire.dialWebSocket(task.ws)
    : await Wire.dial(task.port, "127.0.0.1", task.tls, task.protocol === "nats");
  control.wire = wire;
  if (control.stopped) wire.close();
  return wire;
}

/** Waits until the receivers leave room for messages up to `need`. */
async function room(ctl: Int32Array, task: PublishTask, need: number, control: Control) {
  for (;;) {
    const tick = Atomics.load(ctl, CTL_TICK);
    let floor = task.windowMode === "min" ? Infinity : 0;
    for (let r = 0; r < task.receivers; r++) {
      const got = Atomics.load(ctl, CTL_RECV + r);
      floor = task.windowMode === "min" ? Math.min(floor, got) : floor + got;
    }
    if (need - floor <= task.window || control.stopped) return;
    const wait = Atomics.waitAsync(ctl, CTL_TICK, tick, 50);
    if (wait.async) await wait.value;
  }
}

/** Floods `count` messages in pipelined batches, then PINGs to know the server took them all. */
export async function publish(
  task: PublishTask,
  ctl: Int32Array,
  control: Control,
): Promise<PublishResult> {
  const driver = drivers[task.protocol];
  const wire = await dial(task, control);
  const events = new Tally();
  const parser = driver.parser(events, Mode.plain, task.name);
  const reading = pump(wire, parser, events, control);
  wire.write(driver.hello(task.auth) + (driver.publisher?.(task.name) ?? "") + driver.ping());
  let pong = await events.waitPong(1);
  const filtered = task.route === "filter"
    ? driver.filterPublishFrame!(task.name, task.size)
    : null;
  const batcher = filtered
    ? new Batcher(filtered, task.size, undefined, {
      at: filtered.variantAt,
      bytes: filtered.variants,
    })
    : new Batcher(driver.publishFrame(task.kind, task.name, task.size, task.options), task.size);
  const t0 = clock();
  let seq = 0;
  let inflight: Promise<void> = Promise.resolve();
  while (pong && seq < task.count && !control.stopped && !wire.failure) {
    const windowed = task.windowMode === "none" ? Infinity : task.window;
    const n = Math.min(batcher.framesMax, task.count - seq, windowed);
    if (task.windowMode !== "none") await room(ctl, task, seq + n, control);
    // Fill one buffer while the other is still being written, then wait for that write.
    const frames = batcher.next(seq, n, task.stampEvery, clock());
    await inflight;
    inflight = wire.write(frames);
    seq += n;
    Atomics.store(ctl, CTL_SENT, seq);
  }
  await inflight;
  if (pong) {
    wire.write(driver.ping());
    pong = await events.waitPong(2);
  }
  if (pong && driver.publishAcks) await publishAcks(parser, seq, events, control);
  const tEnd = clock();
  if (!pong) events.error("no PONG: the server did not confirm the messages");
  wire.close();
  await reading;
  const replies = parser.replies;
  return { role: "publish", t0, tEnd, sent: seq, replies, pong, errors: events.errors };
}

/**
 * Waits until the server acknowledged all `sent` publishes (JetStream sends
 * its acks when the stream has stored a message, after the PONG), an error
 * arrived, or nothing came for `PONG_TIMEOUT_MS`. Polls: the read loop counts.
 */
async function publishAcks(parser: Parser, sent: number, events: Tally, control: Control) {
  let last = parser.replies;
  let lastMove = performance.now();
  while (parser.replies < sent && events.errors.length === 0 && !control.stopped) {
    if (wireDown(control)) return;
    await new Promise((r) => setTimeout(r, 1));
    if (parser.replies !== last) {
      last = parser.replies;
      lastMove = performance.now();
    } else if (performance.now() - lastMove > PONG_TIMEOUT_MS) {
      events.error(`publish acks stopped at ${parser.replies} of ${sent}`);
      return;
    }
  }
}

function wireDown(control: Control): boolean {
  return control.wire === null || control.wire.closed || control.wire.failure !== null;
}

/** Checks and times every message one subscriber or consumer receives. */
class Receiver extends Tally {
  count = 0;
  orderErrors = 0;
  firstOrderError = "";
  duplicates = 0;
  seen: Uint8Array | null;
  latencies = new Float64Array(1024);
  latencyCount = 0;
  #ordered: boolean;
  #next = 0;
  /** Sequence numbers between two of its messages: FILTER_STRIDE in a `filter` run, else 1. */
  readonly step: number;
  #size: number;
  #total: number;
  #stampEvery: number;
  #stamps = new Float64Array(1024);
  #stampCount = 0;

  constructor(task: ReceiveTask) {
    super();
    // A topic subscriber gets every message in publish order; a queue consumer
    // gets a share, in increasing order (FIFO), each message once overall.
    // A `bind` consumer has a queue of its own that gets every message; a `filter` subscriber
    // gets every FILTER_STRIDE-th, from its index on.
    this.#ordered = task.kind === "topic" || task.route === "bind";
    this.step = task.route === "filter" ? FILTER_STRIDE : 1;
    if (task.route === "filter") this.#next = task.index;
    this.seen = this.#ordered ? null : new Uint8Array(Math.ceil(task.count / 8));
    this.#size = task.size;
    this.#total = task.count;
    this.#stampEvery = task.stampEvery;
  }

  override msg(buf: Uint8Array, start: number, size: number): void {
    const seq = seqAt(buf, start);
    if (size !== this.#size || seq >= this.#total) {
      this.#orderError(`message of ${size} bytes with sequence ${seq}`);
      this.count++;
      return;
    }
    if (this.#ordered ? seq !== this.#next : seq < this.#next) {
      this.#orderError(`got ${seq}, expected ${this.#ordered ? "" : ">= "}${this.#next}`);
    }
    this.#next = seq + this.step;
    const seen = this.seen;
    if (seen !== null) {
      const bit = 1 << (seq & 7);
      if (seen[seq >>> 3] & bit) this.duplicates++;
      seen[seq >>> 3] |= bit;
    }
    if (seq % this.#stampEvery === 0) {
      if (this.#stampCount === this.#stamps.length) this.#stamps = grow(this.#stamps);
      this.#stamps[this.#stampCount++] = stampAt(buf, start);
    }
    this.count++;
  }

  #orderError(text: string): void {
    if (this.orderErrors++ === 0) this.firstOrderError = `${text} after ${this.count} messages`;
  }

  /** Turns this read's stamps into latencies against one clock reading. */
  flush(now: number): void {
    const n = this.#stampCount;
    if (n === 0) return;
    while (this.latencyCount + n > this.latencies.length) this.latencies = grow(this.latencies);
    for (let i = 0; i < n; i++) this.latencies[this.latencyCount++] = now - this.#stamps[i];
    this.#stampCount = 0;
  }
}

function grow(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/** Subscribes (or consumes, or asks the sink to stream) and checks messages until stopped. */
export async function receive(
  task: ReceiveTask,
  ctl: Int32Array,
  control: Control,
  ready: () => void,
): Promise<ReceiveResult> {
  const driver = drivers[task.protocol];
  const wire = await dial(task, control);
  const events = new Receiver(task);
  const mode = task.kind === "queue" ? Mode.consume : Mode.plain;
  const parser = driver.parser(events, mode, task.name, task.index, task.ackUpto);
  let tLast = 0;
  let before = 0;
  const reading = pump(wire, parser, events, control, () => {
    if (events.count === before) return;
    before = events.count;
    tLast = clock();
    events.flush(tLast);
    // Progress in publish sequence numbers: a `filter` subscriber that has all of its share reports
    // at least `count`, as every other topic subscriber does.
    const progress = events.step === 1 ? events.count : events.count * events.step + task.index;
    Atomics.store(ctl, CTL_RECV + task.index, progress);
    Atomics.add(ctl, CTL_TICK, 1);
    Atomics.notify(ctl, CTL_TICK);
  });
  let t0 = 0;
  if (task.source) {
    t0 = clock();
    const kind = task.kind;
    wire.write(
      `SOURCE ${task.protocol} ${kind} ${task.name} ${task.count} ${task.size} ${task.stampEvery}\n`,
    );
  } else {
    const start = task.route === "bind"
      ? driver.consumeBound!(task.name, task.index, task.prefetch)
      : task.route === "filter"
      ? driver.subscribeFiltered!(task.name, task.index)
      : task.kind === "queue"
      ? driver.consume(task.name, task.index, task.prefetch)
      : driver.subscribe(task.name, task.index);
    if (task.kind === "queue" && driver.consumeBlocks) {
      wire.write(driver.hello(task.auth) + driver.ping());
      if (await events.waitPong(1)) wire.write(start);
      else events.error("no PONG to the handshake");
    } else {
      wire.write(driver.hello(task.auth) + start + driver.ping());
      if (!await events.waitPong(1)) events.error("no PONG after subscribing");
    }
  }
  ready();
  await reading;
  return {
    role: "receive",
    t0,
    tLast,
    count: events.count,
    orderErrors: events.orderErrors,
    firstOrderError: events.firstOrderError,
    seen: events.seen,
    duplicates: events.duplicates,
    latencies: events.latencies.slice(0, events.latencyCount),
    errors: events.errors,
  };
}

/** Matches each reply to the one outstanding request. */
class Requester extends Tally {
  expect = -1;
  mismatches = 0;
  tReply = 0;
  #resolve: ((ok: boolean) => void) | null = null;

  override msg(buf: Uint8Array, start: number, _size: number, correlation: number): void {
    this.tReply = clock();
    const seq = seqAt(buf, start);
    if (seq !== this.expect || (correlation !== -1 && correlation !== this.expect)) {
      this.mismatches++;
      this.error(`reply ${seq} (correlation ${correlation}) to request ${this.expect}`);
    }
    this.#resolve?.(true);
    this.#resolve = null;
  }

  /** Resolves when the next reply arrives, false if the connection ends first. */
  next(): Promise<boolean> {
    return new Promise((resolve) => this.#resolve = resolve);
  }

  override end(): void {
    super.end();
    this.#resolve?.(false);
  }
}

/** Sends requests one at a time and times each round trip. */
export async function request(task: RequestTask, control: Control): Promise<RequestResult> {
  const driver = drivers[task.protocol];
  const wire = await dial(task, control);
  const events = new Requester();
  const parser = driver.parser(events, Mode.request, task.name);
  const reading = pump(wire, parser, events, control);
  wire.write(driver.hello(task.auth) + driver.inbox(task.name) + driver.ping());
  const rtts = new Float64Array(task.count);
  let done = 0;
  let t0 = clock();
  if (await events.waitPong(1)) {
    const body = payload(task.size, 0);
    for (let i = 0; i < task.warmup + task.count && !control.stopped; i++) {
      if (i === task.warmup) t0 = clock();
      body[0] = i & 255;
      body[1] = (i >>> 8) & 255;
      body[2] = (i >>> 16) & 255;
      body[3] = i >>> 24;
      const frame = driver.request(task.name, i, body);
      events.expect = i;
      const reply = events.next();
      const t = clock();
      wire.write(frame);
      if (!await reply) {
        events.error(`no reply to request ${i}`);
        break;
      }
      if (i >= task.warmup) rtts[done++] = events.tReply - t;
    }
  }
  const tEnd = clock();
  wire.close();
  await reading;
  return {
    role: "request",
    t0,
    tEnd,
    count: done,
    mismatches: events.mismatches,
    rtts: rtts.slice(0, done),
    errors: events.errors,
  };
}

/** Counts the requests it answers (the parser writes the answers). */
class Responder extends Tally {
  count = 0;
  override msg(): void {
    this.count++;
  }
}

/** Answers every request until stopped. */
export async function respond(
  task: RespondTask,
  control: Control,
  ready: () => void,
): Promise<RespondResult> {
  const driver = drivers[task.protocol];
  const wire = await dial(task, control);
  const events = new Responder();
  const parser = driver.parser(events, Mode.respond, task.name);
  const reading = pump(wire, parser, events, control);
  if (driver.consumeBlocks) {
    wire.write(driver.hello(task.auth) + driver.ping());
    if (await events.waitPong(1)) wire.write(driver.respond(task.name));
    else events.error("no PONG to the handshake");
  } else {
    wire.write(driver.hello(task.auth) + driver.respond(task.name) + driver.ping());
    if (!await events.waitPong(1)) events.error("no PONG after subscribing");
  }
  ready();
  await reading;
  return { role: "respond", count: events.count, errors: events.errors };
}
