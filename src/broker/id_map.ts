/**
 * A map from message id to a value, for the ids in flight on a connection.
 *
 * Ids are `ms * 1024 + seq`, above 2^31, so a `Map<number, V>` boxes every
 * key as a heap number: with every delivery added and acked once, the
 * in-flight map was ~15% of the server's samples under the `queue` bench, and
 * its boxes part of the collector's 20%. Here keys sit unboxed in a
 * `Float64Array` (open addressing, linear probing, Fibonacci hashing of the
 * id's low 32 bits, deletion by backward shift: no tombstones), and a large
 * table shrinks again when most of it is empty, so an idle connection holds little.
 *
 * @module
 */

/** Slots of a table when first used (a power of two). */
const SLOTS_MIN = 16;
/**
 * A table of up to this many slots is kept as it is when entries leave; a
 * larger one halves when under 1/8 full. A consumer whose deliveries in
 * flight swing between none and its prefetch (every ACK line settles a
 * batch) rehashed at each halving on the way down and each doubling on the
 * way back: a queue micro benchmark (publish 166, ACK 166) spent 41% of its
 * time in `#resize` and `set`. What a connection keeps is bounded: ~12 KiB,
 * and only one that once had over 256 deliveries in flight.
 */
const SLOTS_SHRINK_MIN = 1024;

/** A map from message id (a non-negative safe integer) to a value that is never undefined. */
export class IdMap<V> {
  #keys = new Float64Array(0);
  /** undefined marks an empty slot. */
  #vals: (V | undefined)[] = [];
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
    if (slots > SLOTS_SHRINK_MIN && 8 * this.#size < slots) this.#resize(slots / 2);
    return found;
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
