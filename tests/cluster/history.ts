/**
 * A Jepsen-style history of queue operations: every publish, delivery and
 * ack a workload did, in the order it saw them, each with a monotonic time
 * (one clock for the whole process) and the node it talked to. The checker
 * (`checker.ts`) reads a history; it never trusts end counts.
 *
 * Vocabulary, as Jepsen's: an operation is `invoke`d, then completes as
 * `ok` (it happened), `fail` (it definitely did not happen) or `info` (the
 * outcome is unknown: the connection was lost, no reply in time,
 * `ERR UNAVAILABLE`). A delivery is a single `ok` event. Messages are named by
 * their payload (unique per publish: publisher id + sequence number), never by
 * message id (two leaders may hand out the same id).
 *
 * @module
 */

/** What an operation did. */
export type OpKind = "publish" | "deliver" | "ack";
/** Where an operation is in its life. */
export type OpType = "invoke" | "ok" | "fail" | "info";

/** One event of the history. */
export interface Op {
  /** Position in the history (0, 1, 2...). */
  index: number;
  /** Milliseconds on the recorder's monotonic clock. */
  time: number;
  type: OpType;
  f: OpKind;
  /** The client (publisher or consumer) that did it, e.g. `p1`, `c2`. */
  process: string;
  /** The node the client's connection went to, e.g. `n2`. */
  node: string;
  /** The message's payload: its identity. */
  value: string;
  /** The message id the broker gave (publish ok, deliver, ack). */
  msgId?: string;
  /** Deliveries: the broker said it was delivered before (`delivery:<n>` with n >= 2). */
  redelivered?: boolean;
  /** fail / info: why (the `ERR` line, "connection lost", "timeout"). */
  error?: string;
}

/** Something the nemesis did (a kill, a pause, a restart), for the reader of a history. */
export interface NemesisEvent {
  time: number;
  what: string;
}

/** A history written to disk: what the run was, what the nemesis did, the ops. */
export interface HistoryFile {
  about: Record<string, unknown>;
  nemesis: NemesisEvent[];
  ops: Op[];
}

/** Records ops in the order they happen, on one monotonic clock. */
export class History {
  readonly ops: Op[] = [];
  readonly nemesis: NemesisEvent[] = [];
  readonly #now: () => number;

  /** `now` is the clock (ms); `performance.now()` unless a test gives its own. */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Appends one event stamped with the current time; returns it. */
  add(e: Omit<Op, "index" | "time">): Op {
    const op: Op = { index: this.ops.length, time: this.#now(), ...e };
    this.ops.push(op);
    return op;
  }

  /** Notes what the nemesis did (the checker does not read these). */
  note(what: string): void {
    this.nemesis.push({ time: this.#now(), what });
  }

  /** Counts of events by `f type` (e.g. `publish ok`), for a summary line. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const op of this.ops) {
      const k = `${op.f} ${op.type}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /** The history as JSON, with what the run was. */
  toJSON(about: Record<string, unknown> = {}): HistoryFile {
    return { about, nemesis: this.nemesis, ops: this.ops };
  }
}

/** Writes a history as pretty JSON (one op per line, so it reads and greps well). */
export function historyText(file: HistoryFile): string {
  return `{"about":${JSON.stringify(file.about)},"nemesis":${
    JSON.stringify(file.nemesis)
  },"ops":[\n${file.ops.map((o) => JSON.stringify(o)).join(",\n")}\n]}\n`;
}
