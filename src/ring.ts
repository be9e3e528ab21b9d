/**
 * A growable ring buffer: O(1) push, shift and indexed access. One ring
 * serves the broker (a topic's shared message list, which subscriber cursors
 * index into) and the client (its queue of commands waiting for a reply,
 * which holds tens of thousands behind a fast publisher; `Array.shift` is
 * O(n) at that size). It sits at the top of `src/` so the client SDK gets it
 * without importing storage; `src/storage/mod.ts` exports it for the broker.
 *
 * @module
 */

/** First item capacity; stays a power of two so an index wraps with a mask. */
const CAPACITY_MIN = 16;
/** An emptied ring above this capacity gives its array back. */
const CAPACITY_KEPT_MAX = 1024;
/**
 * The items of every ring that never held one (a topic nobody publishes to
 * yet: 10,000 idle subscriptions to as many topics held 1.4 MiB of empty
 * 16-slot arrays). Never written: `push` grows a ring first.
 */
const NO_ITEMS: readonly undefined[] = [];

/**
 * Power-of-two ring, first in, first out; `at(i)` counts from the front.
 *
 * @example
 * ```ts
 * import { Ring } from "./ring.ts";
 * const q = new Ring<number>();
 * q.push(1);
 * q.push(2);
 * console.assert(q.peek() === 1 && q.at(1) === 2);
 * console.assert(q.shift() === 1 && q.length === 1);
 * ```
 */
export class Ring<T> {
  #items = NO_ITEMS as (T | undefined)[];
  #mask = -1;
  #head = 0;
  #length = 0;

  /** Number of items. */
  get length(): number {
    return this.#length;
  }

  /** Appends at the back, doubling the capacity when full. */
  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  /** Removes and returns the front item, or undefined when empty. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#length--;
    if (this.#length === 0 && this.#items.length > CAPACITY_KEPT_MAX) this.#reset();
    return item;
  }

  /** The front item without removing it. */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** The item `i` places from the front. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.#length ? this.#items[(this.#head + i) & this.#mask] : undefined;
  }

  /** Removes every item and returns them in order. */
  drain(): T[] {
    const out: T[] = [];
    while (this.#length > 0) out.push(this.shift() as T);
    return out;
  }

  /** Keeps only the items for which `keep` returns true, in order. */
  filter(keep: (item: T) => boolean): void {
    for (const item of this.drain()) if (keep(item)) this.push(item);
  }

  #grow(): void {
    const old = this.#items;
    const items = new Array(Math.max(CAPACITY_MIN, old.length * 2));
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & this.#mask];
    this.#items = items;
    this.#mask = items.length - 1;
    this.#head = 0;
  }

  /** An emptied ring gives its large array back. */
  #reset(): void {
    this.#items = NO_ITEMS as (T | undefined)[];
    this.#mask = -1;
    this.#head = 0;
  }
}
