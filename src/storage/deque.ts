/**
 * A double-ended queue as a linked list of fixed-size ring segments: push,
 * shift and unshift are O(1) at any size, with no growth copies (a single
 * growable array would copy millions of slots when it doubles) and memory
 * given back as segments empty.
 *
 * @module
 */

/**
 * Slots per segment: big enough to amortise the segment object (~1 B per
 * item), small enough that an almost empty deque costs 2 KiB, not 8.
 */
const SEGMENT_SLOTS = 256;

class Segment<T> {
  items: (T | undefined)[] = new Array(SEGMENT_SLOTS);
  head = 0;
  tail = 0;
  next: Segment<T> | undefined;
  prev: Segment<T> | undefined;
}

/** FIFO with O(1) operations at both ends. */
export class Deque<T> {
  #first: Segment<T> = new Segment();
  #last: Segment<T> = this.#first;
  #length = 0;
  /** One emptied segment kept for the next growth: a queue passing messages through allocates none. */
  #spare: Segment<T> | undefined;

  #segment(): Segment<T> {
    const seg = this.#spare;
    if (seg === undefined) return new Segment();
    this.#spare = undefined;
    return seg;
  }

  #recycle(seg: Segment<T>): void {
    seg.head = seg.tail = 0;
    seg.next = seg.prev = undefined;
    this.#spare = seg;
  }

  /** Number of items. */
  get length(): number {
    return this.#length;
  }

  /** Appends at the back. */
  push(item: T): void {
    let seg = this.#last;
    if (seg.tail === SEGMENT_SLOTS) {
      seg = this.#segment();
      seg.prev = this.#last;
      this.#last.next = seg;
      this.#last = seg;
    }
    seg.items[seg.tail++] = item;
    this.#length++;
  }

  /** Inserts at the front. */
  unshift(item: T): void {
    let seg = this.#first;
    if (seg.head === 0) {
      if (seg.tail === 0) {
        // Empty segment: start it from the end so the next unshifts fit too.
        seg.head = seg.tail = SEGMENT_SLOTS;
      } else {
        seg = this.#segment();
        seg.head = seg.tail = SEGMENT_SLOTS;
        seg.next = this.#first;
        this.#first.prev = seg;
        this.#first = seg;
      }
    }
    seg.items[--seg.head] = item;
    this.#length++;
  }

  /** Removes and returns the front item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    let seg = this.#first;
    if (seg.head === seg.tail) {
      const empty = seg;
      seg = seg.next!;
      seg.prev = undefined;
      this.#first = seg;
      this.#recycle(empty);
    }
    const item = seg.items[seg.head];
    seg.items[seg.head++] = undefined;
    this.#length--;
    if (seg.head === seg.tail) {
      if (seg === this.#last) seg.head = seg.tail = 0;
      else {
        this.#first = seg.next!;
        this.#first.prev = undefined;
        this.#recycle(seg);
      }
    }
    return item;
  }

  /** The front item, without removing it. */
  peek(): T | undefined {
    if (this.#length === 0) return undefined;
    let seg = this.#first;
    if (seg.head === seg.tail) seg = seg.next!;
    return seg.items[seg.head];
  }

  /** Items front to back (for snapshots and tests; O(n)). */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let seg: Segment<T> | undefined = this.#first; seg; seg = seg.next) {
      for (let i = seg.head; i < seg.tail; i++) yield seg.items[i]!;
    }
  }
}
