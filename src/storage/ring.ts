/**
 * A growable ring buffer with O(1) indexed access: the shared message list of
 * a topic, where subscriber cursors index into it.
 *
 * @module
 */

/** Power-of-two ring; `at(i)` counts from the front. */
export class Ring<T> {
  #items: (T | undefined)[] = new Array(16);
  #mask = 15;
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

  /** Removes and returns the front item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#length--;
    if (this.#length === 0 && this.#items.length > 1024) this.#reset();
    return item;
  }

  /** The item `i` places from the front. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.#length ? this.#items[(this.#head + i) & this.#mask] : undefined;
  }

  #grow(): void {
    const old = this.#items;
    const items = new Array(old.length * 2);
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & this.#mask];
    this.#items = items;
    this.#mask = items.length - 1;
    this.#head = 0;
  }

  /** An emptied ring gives its large array back. */
  #reset(): void {
    this.#items = new Array(16);
    this.#mask = 15;
    this.#head = 0;
  }
}
