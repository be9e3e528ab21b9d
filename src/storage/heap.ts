/**
 * A binary min-heap keyed by a number (a due time): TTL expiry and NACK delays
 * are found in O(log n) without scanning the queue.
 *
 * @module
 */

/** Min-heap of items by key. */
export class Heap<T> {
  #keys: number[] = [];
  #items: T[] = [];

  /** Number of entries. */
  get length(): number {
    return this.#keys.length;
  }

  /** Smallest key, or Infinity when empty. */
  peekKey(): number {
    return this.#keys.length === 0 ? Infinity : this.#keys[0];
  }

  /** Adds an entry. */
  push(key: number, item: T): void {
    const keys = this.#keys;
    const items = this.#items;
    let i = keys.length;
    keys.push(key);
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[parent] <= key) break;
      keys[i] = keys[parent];
      items[i] = items[parent];
      i = parent;
    }
    keys[i] = key;
    items[i] = item;
  }

  /** Removes and returns the entry with the smallest key. */
  pop(): T | undefined {
    const keys = this.#keys;
    const items = this.#items;
    if (keys.length === 0) return undefined;
    const top = items[0];
    const lastKey = keys.pop()!;
    const lastItem = items.pop()!;
    const n = keys.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && keys[child + 1] < keys[child]) child++;
        if (keys[child] >= lastKey) break;
        keys[i] = keys[child];
        items[i] = items[child];
        i = child;
      }
      keys[i] = lastKey;
      items[i] = lastItem;
    }
    return top;
  }

  /** Keeps only entries for which `keep` is true (O(n), for amortised clean-up). */
  filter(keep: (item: T) => boolean): void {
    const entries: [number, T][] = [];
    for (let i = 0; i < this.#keys.length; i++) {
      if (keep(this.#items[i])) entries.push([this.#keys[i], this.#items[i]]);
    }
    this.#keys = [];
    this.#items = [];
    entries.sort((a, b) => a[0] - b[0]);
    for (const [k, v] of entries) {
      this.#keys.push(k);
      this.#items.push(v);
    }
  }
}
