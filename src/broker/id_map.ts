/**
 * A map from message id to a value, for the ids in flight on a connection.
 *
 * Ids are `ms * 1024 + seq`, above 2^31, so a `Map<number, V>` boxes every
 * key as a heap number: with every delivery added and acked once, the
 * in-flight map was ~15% of the server's samples under the `queue` bench, and
 * its boxes part of the collector's 20%. Here keys sit unboxed in a
 * `Float64Array` (open addressing, linear probing, Fibonacci hashing of the
 * id's low 32 bits, deletion by backward shift: no tombstones), and a large
 * table shrinks again when most of it is empty (`trim`, on an idle connection), so an idle
 * connection holds little.
 *
 * @module
 */

/** Slots of a table when first used (a power of two). */
const SLOTS_MIN = 16;
/**
 * `trim` keeps a table of up to this many slots as it is (~12 KiB, only for a
 * connection that once had over 256 deliveries in flight).
 */
const SLOTS_SHRINK_MIN = 1024;
/**
 * Up to this many slots, a table does not shrink as entries leave, only on
 * `trim`; a larger one halves in `take` when under 1/8 full. A consumer
 * whose deliveries in flight swing between none and its prefetch (every ACK
 * line settles a batch) rehashed at each halving on the way down and each
 * doubling on the way back: a queue micro benchmark (publish 166, ACK 166)
 * spent 41% of its time in `#resize` and `set` with 256 here; with 1024, a
 * consumer at the default prefetch of 1000 whose cumulative ACK settles all
 * of it at once (2048 slots down to 1024 and back up, each time) spent 4% of
 * the queue bench's server time in `#resize`. A connection keeps ~200 KiB at
 * most between idle checks, and only after over 8192 deliveries in flight.
 */
const SLOTS_KEEP_MAX = 16384;

/**
 * The table of every empty map: nothing is allocated until the first `set`
 * (a connection that never has a delivery in flight by id never has a table),
 * and `trim` of an empty map comes back to it. Never written: `set` resizes
 * first.
 */
const NO_KEYS = new Float64Array(0);
const NO_VALS: readonly undefined[] = [];

/** A map from message id (a non-negative safe integer) to a value that is never undefined. */
export class IdMap<V> {
  #keys = NO_KEYS;
  /** undefined marks an empty slot. */
  #vals = NO_VALS as (V | undefined)[];
  #mask = -1;
  #shift = 32;
  #size = 0;

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /** Slots of its table (what it holds in memory, ~12 bytes each). */
  get capacity(): number {
    return this.#mask + 1;
  }

  #home(id: number): number {
    // The low 32 bits hold the sequence and ~70 minutes of milliseconds.
    return Math.imul(id >>> 0, 0x9e3779b1) >>> this.#shift;
  }

  /** The value of `id`, or undefined. */
  get(id: number): V | undefined {
    if (this.#size === 0) return undefined;
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = this.#mask;
    for (let i = this.#home(id);; i = (i + 1) & mask) {
      const v = vals[i];
      if (v === undefined) return undefined;
      if (keys[i] === id) return v;
    }
  }

  /** Whether `id` is in. */
  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** The values, in no order (a copy: the map may change while it is read). */
  values(): V[] {
    const out: V[] = [];
    for (const v of this.#vals) if (v !== undefined) out.push(v);
    return out;
  }

  /** Sets the value of `id` (`v` is never undefined). */
  set(id: number, v: V): void {
    if (2 * (this.#size + 1) > this.#mask + 1) {
      this.#resize(Math.max(SLOTS_MIN, 2 * (this.#mask + 1)));
    }
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = this.#mask;
    for (let i = this.#home(id);; i = (i + 1) & mask) {
      if (vals[i] === undefined) {
        keys[i] = id;
        vals[i] = v;
        this.#size++;
        return;
      }
      if (keys[i] === id) {
        vals[i] = v;
        return;
      }
    }
  }

  /** Removes `id`; whether it was there. */
  delete(id: number): boolean {
    return this.take(id) !== undefined;
  }

  /** Removes `id` and returns its value (undefined if absent): one probe where `get` + `delete` take two. */
  take(id: number): V | undefined {
    if (this.#size === 0) return undefined;
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = this.#mask;
    let i = this.#home(id);
    let found: V;
    for (;; i = (i + 1) & mask) {
      const v = vals[i];
      if (v === undefined) return undefined;
      if (keys[i] === id) {
        found = v;
        break;
      }
    }
    // Backward shift: pull later entries of the probe run into the hole, so
    // that every entry stays reachable from its home without tombstones.
    for (let j = (i + 1) & mask;; j = (j + 1) & mask) {
      const v = vals[j];
      if (v === undefined) break;
      const h = this.#home(keys[j]);
      // Move j into the hole i unless its home lies cyclically in (i, j].
      if (((j - h) & mask) >= ((j - i) & mask)) {
        keys[i] = keys[j];
        vals[i] = v;
        i = j;
      }
    }
    vals[i] = undefined;
    this.#size--;
    const slots = mask + 1;
    if (slots > SLOTS_KEEP_MAX && 8 * this.#size < slots) this.#resize(slots / 2);
    return found;
  }

  /**
   * Shrinks a table under 1/8 full, down to `SLOTS_SHRINK_MIN` slots, and
   * gives an empty one back whole (for an idle holder).
   */
  trim(): void {
    if (this.#size === 0) {
      this.#keys = NO_KEYS;
      this.#vals = NO_VALS as (V | undefined)[];
      this.#mask = -1;
      this.#shift = 32;
      return;
    }
    const now = this.#mask + 1;
    let slots = now;
    while (slots > SLOTS_SHRINK_MIN && 8 * this.#size < slots) slots /= 2;
    if (slots !== now) this.#resize(slots);
  }

  #resize(slots: number): void {
    const keys = this.#keys;
    const vals = this.#vals;
    this.#keys = new Float64Array(slots);
    this.#vals = new Array<V | undefined>(slots).fill(undefined);
    this.#mask = slots - 1;
    this.#shift = 32 - Math.log2(slots);
    this.#size = 0;
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i];
      if (v !== undefined) this.set(keys[i], v);
    }
  }
}
