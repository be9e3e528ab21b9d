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
  /** Bumped whenever the slots are reused (recycled, or reset when emptied): a cursor into it is stale. */
  gen = 0;
  items: (T | undefined)[] = new Array(SEGMENT_SLOTS);
  head = 0;
  tail = 0;
  next: Segment<T> | undefined;
  prev: Segment<T> | undefined;
}

/**
 * A reader's place in a `Deque` (see `Deque.scan`): it goes forward only, so
 * a reader visits each item about once however often it scans.
 */
export class DequeCursor<T> {
  /** @internal The segment it points into; undefined: the front. */
  seg: Segment<T> | undefined = undefined;
  /** @internal The segment's generation when the cursor was placed. */
  gen = 0;
  /** @internal Slot of the next item to visit. */
  i = 0;
  /** @internal The deque's unshift count when it last scanned. */
  unshifts = 0;
  /** @internal The deque's compaction count when it last scanned (a compaction moves every item). */
  epoch = 0;
}

/**
 * FIFO with O(1) operations at both ends, and readers that take items from
 * the middle (`scan`): a taken item leaves a hole (`undefined`) that counts in
 * `length` until it reaches the front; `shift` returns it as `undefined`.
 */
export class Deque<T> {
  #first: Segment<T> = new Segment();
  #last: Segment<T> = this.#first;
  #length = 0;
  /** Items put at the front so far: a cursor visits the new ones first. */
  #unshifts = 0;
  /** Holes (`scan` took their item) not yet shifted out, counted in `length`. */
  #holes = 0;
  /** Compactions so far. */
  #epoch = 0;
  /** One emptied segment kept for the next growth: a queue passing messages through allocates none. */
  #spare: Segment<T> | undefined;

  #segment(): Segment<T> {
    const seg = this.#spare;
    if (seg === undefined) return new Segment();
    this.#spare = undefined;
    return seg;
  }

  #recycle(seg: Segment<T>): void {
    seg.gen++;
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
    this.#unshifts++;
    let seg = this.#first;
    if (seg.head === 0) {
      if (seg.tail === 0) {
        // Empty segment: start it from the end so the next unshifts fit too.
        seg.gen++;
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
    if (item === undefined) this.#holes--;
    if (seg.head === seg.tail) {
      if (seg === this.#last) {
        seg.gen++;
        seg.head = seg.tail = 0;
      } else {
        this.#first = seg.next!;
        this.#first.prev = undefined;
        this.#recycle(seg);
      }
    }
    return item;
  }

  /** Holes in `length`: items taken from the middle by `scan`, not yet shifted out. */
  get holes(): number {
    return this.#holes;
  }

  /**
   * Rebuilds the deque without its holes, in order. O(length); `scan`'s
   * caller runs it when holes are most of the deque (items taken from behind
   * one that stays, say), so memory stays proportional to the items held.
   * Every cursor starts again at the front on its next scan.
   */
  compact(): void {
    const items = [...this];
    this.#first = this.#last = new Segment();
    this.#length = this.#holes = 0;
    this.#epoch++;
    for (const item of items) this.push(item);
  }

  /** The front item, without removing it. */
  peek(): T | undefined {
    if (this.#length === 0) return undefined;
    let seg = this.#first;
    if (seg.head === seg.tail) seg = seg.next!;
    return seg.items[seg.head];
  }

  /** Items front to back, holes left out (for snapshots and tests; O(n)). */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let seg: Segment<T> | undefined = this.#first; seg; seg = seg.next) {
      for (let i = seg.head; i < seg.tail; i++) {
        const item = seg.items[i];
        if (item !== undefined) yield item;
      }
    }
  }

  /**
   * Takes the first item from `cursor` on that `want` accepts, leaving a hole,
   * and leaves the cursor after it; undefined (cursor at the back) when none.
   * Items unshifted since the cursor's last scan are visited first: they are
   * in front of it, and visited again on each scan until one finds nothing
   * there to take. Cost: the items visited, each once per cursor, plus that
   * front window; a cursor whose segment was reused starts again at the front,
   * past which nothing it already visited remains.
   */
  scan(cursor: DequeCursor<T>, want: (item: T) => boolean): T | undefined {
    const fresh = this.#unshifts - cursor.unshifts;
    if (fresh > 0) {
      // The window of items unshifted since the last scan is at the front. A take from it leaves
      // the cursor's count alone: the rest of the window is looked at again next time.
      let left = fresh;
      for (let seg: Segment<T> | undefined = this.#first; seg && left > 0; seg = seg.next) {
        for (let i = seg.head; i < seg.tail && left > 0; i++, left--) {
          const item = seg.items[i];
          if (item !== undefined && want(item)) {
            seg.items[i] = undefined;
            this.#holes++;
            return item;
          }
        }
      }
      cursor.unshifts = this.#unshifts;
    }
    let seg = cursor.seg;
    let i = cursor.i;
    if (cursor.epoch !== this.#epoch) {
      cursor.epoch = this.#epoch;
      seg = undefined;
    }
    if (seg === undefined || seg.gen !== cursor.gen) {
      seg = this.#first;
      i = seg.head;
    }
    for (;;) {
      if (i < seg.head) i = seg.head;
      const tail = seg.tail;
      for (; i < tail; i++) {
        const item = seg.items[i];
        if (item !== undefined && want(item)) {
          seg.items[i] = undefined;
          this.#holes++;
          cursor.seg = seg;
          cursor.gen = seg.gen;
          cursor.i = i + 1;
          return item;
        }
      }
      const next: Segment<T> | undefined = seg.next;
      if (next === undefined) break;
      seg = next;
      i = seg.head;
    }
    cursor.seg = seg;
    cursor.gen = seg.gen;
    cursor.i = i;
    return undefined;
  }
}
