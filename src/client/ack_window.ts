/**
 * The acks of one explicit-ack subscription on one connection, in delivery
 * order, so a run of them goes out as one cumulative
 * `ACK sub_id:<sid> upto:<id>` (docs/PROTOCOL.md, ACK).
 *
 * The window records every delivery of the subscription on the current
 * connection as (id, state) in two typed rings: no object, promise or string
 * per message. `msg.ack()` flips its entry to `ACKED`; at the next write
 * {@linkcode AckWindow.collect} walks from the oldest delivery while entries
 * are settled and names the last acked one of that prefix as `upto`. That is
 * exact because the broker settles, for `upto`, only the deliveries it sent up
 * to and including that one: everything in the prefix was acked by the
 * application (or settled by an earlier line), and nothing after it is
 * touched. Acks beyond the first unsettled delivery (out of order) are handed
 * back as ids, for the `ACK msg_id:` lines.
 *
 * Safety rules (each keeps `upto` from covering a delivery still in flight
 * that the application did not ack):
 * - A delivery the window could not record (it is full, or the id does not
 *   fit a number exactly) turns the window off until the connection ends:
 *   later deliveries go unrecorded, and their acks go by id (a redelivery
 *   still retires the older entries of its id, as below).
 * - A redelivery of an id the window still holds means the broker's older
 *   delivery is gone (ack timeout); the older entry can no longer be an
 *   `upto` (the broker would read the id as the newer delivery), so it is
 *   settled by id if acked.
 * - A `NACK` marks its entry settled only after the line is written, so a
 *   later `upto` never overtakes it.
 *
 * @module
 */
import { ACK_WINDOW_ENTRIES_MAX } from "./limits.ts";

/** Not acked or nacked yet (or buffered, or dropped): the prefix stops here. */
const OPEN = 0;
/** Acked by the application, not written yet: may be an `upto`. */
const ACKED = 1;
/** Written (by id, as a NACK) or gone at the broker: passed over, never an `upto`. */
const DONE = 2;
/** Acked, but must go by id (its id was redelivered since): passed over, sent by id. */
const ACKED_BY_ID = 3;

const FIRST_ENTRIES = 64;

/** One subscription's deliveries on the current connection, and which of them are acked. */
export class AckWindow {
  /** The subscription's id, for the `ACK sub_id:` line. */
  readonly sid: string;
  /** True while the link has this window in its list of windows with acks to write. */
  queued = false;
  #ids = new Float64Array(FIRST_ENTRIES);
  #states = new Uint8Array(FIRST_ENTRIES);
  #mask = FIRST_ENTRIES - 1;
  /** Delivery numbers: entries `[#head, #tail)` are held; entry n sits at `n & #mask`. */
  #head = 0;
  #tail = 0;
  /** Acks since the last `collect` (tells it when the prefix walk found them all). */
  #acked = 0;
  /** Set once a delivery could not be recorded; cleared by `reset`. */
  #off = false;

  /** @param sid the subscription's id */
  constructor(sid: string) {
    this.sid = sid;
  }

  /** Deliveries held (the oldest unsettled one and everything after it). */
  get size(): number {
    return this.#tail - this.#head;
  }

  /**
   * Records a delivery; returns its number for `ack`, or -1 when it is not
   * recorded (its ack then goes by id).
   *
   * @param idNum the id, or -1 when it does not fit a number exactly
   * @param delivery the broker's delivery count (over 1: a redelivery)
   */
  deliver(idNum: number, delivery: number): number {
    // Looked for even when off: an older delivery still held must not become an `upto` once
    // the broker's delivery of its id moved behind ones the window did not record.
    if (delivery > 1) this.#redelivered(idNum);
    if (this.#off) return -1;
    if (idNum < 0 || (this.#tail - this.#head > this.#mask && !this.#grow())) {
      this.#off = true;
      return -1;
    }
    const n = this.#tail++;
    this.#ids[n & this.#mask] = idNum;
    this.#states[n & this.#mask] = OPEN;
    return n;
  }

  /**
   * The application acked delivery `n`: true when the window takes it (the
   * link writes it with the next write), false when it must go by id.
   */
  ack(n: number): boolean {
    if (n < this.#head || n >= this.#tail) return false;
    const i = n & this.#mask;
    if (this.#states[i] !== OPEN) return false;
    this.#states[i] = ACKED;
    this.#acked++;
    return true;
  }

  /** Delivery `n` was settled on the wire by another line (a NACK, an ack by id). */
  settled(n: number): void {
    if (n >= this.#head && n < this.#tail) this.#states[n & this.#mask] = DONE;
  }

  /**
   * Takes the acks to write: returns the id of the cumulative `upto`, or -1
   * when the prefix holds none, and appends the ids that must go by id to
   * `ids`. Entries of the settled prefix are dropped.
   */
  collect(ids: string[]): number {
    const states = this.#states;
    const mask = this.#mask;
    let upto = -1;
    let found = 0;
    let n = this.#head;
    for (; n < this.#tail; n++) {
      const s = states[n & mask];
      if (s === OPEN) break;
      if (s === ACKED) {
        upto = this.#ids[n & mask];
        found++;
      } else if (s === ACKED_BY_ID) {
        ids.push(String(this.#ids[n & mask]));
        found++;
      }
    }
    this.#head = n;
    // Acked beyond the first open delivery: out of order, by id.
    for (let m = n; found < this.#acked && m < this.#tail; m++) {
      const s = states[m & mask];
      if (s === ACKED || s === ACKED_BY_ID) {
        ids.push(String(this.#ids[m & mask]));
        states[m & mask] = DONE;
        found++;
      }
    }
    this.#acked = 0;
    return upto;
  }

  /** The connection ended: its deliveries mean nothing to the next one. */
  reset(): void {
    this.#head = this.#tail = 0;
    this.#acked = 0;
    this.#off = false;
    this.queued = false;
  }

  /** An older delivery of `idNum` is gone at the broker: it may no longer be an `upto`. */
  #redelivered(idNum: number): void {
    for (let n = this.#head; n < this.#tail; n++) {
      const i = n & this.#mask;
      if (this.#ids[i] !== idNum) continue;
      if (this.#states[i] === OPEN) this.#states[i] = DONE;
      else if (this.#states[i] === ACKED) this.#states[i] = ACKED_BY_ID;
    }
  }

  /** Doubles the rings (up to the limit), keeping each entry at `n & mask`; false at the limit. */
  #grow(): boolean {
    const size = this.#mask + 1;
    if (size >= ACK_WINDOW_ENTRIES_MAX) return false;
    const ids = new Float64Array(size * 2);
    const states = new Uint8Array(size * 2);
    const mask = size * 2 - 1;
    for (let n = this.#head; n < this.#tail; n++) {
      ids[n & mask] = this.#ids[n & this.#mask];
      states[n & mask] = this.#states[n & this.#mask];
    }
    this.#ids = ids;
    this.#states = states;
    this.#mask = mask;
    return true;
  }
}
