/**
 * One small JSON state record kept in a store queue of its own: each change
 * writes a new record and removes the previous one, at most once per tick
 * (changes in one tick share one write); a restart reads the record with the
 * highest id. The declared topics' state (`$relayr.topics`) and the bindings
 * (`$relayr.bindings`) are two of them.
 *
 * @module
 */
import { Message, type QueueStore, type Store } from "../storage/mod.ts";

/** Writes a state record, coalesced per tick; `save()` resolves when it is as durable as the store makes it. */
export class RecordStore<R> {
  #store: QueueStore;
  #nextId: () => number;
  #record: () => R;
  #check: (x: unknown, id: number) => R;
  #pending: Promise<void> | undefined;
  #resolve: () => void = () => {};
  #reject: (e: unknown) => void = () => {};

  /**
   * `name` is the store queue (no client can name it: `$` is not a name
   * character); `record` builds the record to write; `check` validates a
   * loaded one (throws when it is not a record it knows).
   */
  constructor(
    store: Store,
    name: string,
    nextId: () => number,
    record: () => R,
    check: (x: unknown, id: number) => R,
  ) {
    this.#store = store.openQueue(name);
    this.#nextId = nextId;
    this.#record = record;
    this.#check = check;
  }

  /** The last record written before the restart, if any. */
  load(): R | undefined {
    let latest: Message | undefined;
    for (const m of this.#store.messages()) {
      if (latest === undefined || m.id > latest.id) latest = m;
    }
    if (latest === undefined) return undefined;
    return this.#check(JSON.parse(new TextDecoder().decode(latest.payload)), latest.id);
  }

  /** Writes the record at the end of this tick; the promise settles when it is stored. */
  save(): Promise<void> {
    if (this.#pending === undefined) {
      this.#pending = new Promise<void>((resolve, reject) => {
        this.#resolve = resolve;
        this.#reject = reject;
      });
      // Callers that do not wait (a durable's position moved) must not see an unhandled rejection.
      this.#pending.catch(() => {});
      queueMicrotask(this.#write);
    }
    return this.#pending;
  }

  #write = (): void => {
    const resolve = this.#resolve;
    const reject = this.#reject;
    this.#pending = undefined;
    let stored: void | Promise<void>;
    try {
      const payload = new TextEncoder().encode(JSON.stringify(this.#record()));
      const name = this.#store.name;
      const msg = new Message(
        this.#nextId(),
        name,
        payload,
        0,
        0,
        0,
        0,
        undefined,
        undefined,
        undefined,
      );
      stored = this.#store.push(msg);
      // The previous records go: the store holds them oldest first. A crash
      // between the two leaves both, and `load` takes the newer.
      while (this.#store.size > 1) this.#store.dropOldest();
    } catch (e) {
      return reject(e);
    }
    if (stored === undefined) resolve();
    else stored.then(resolve, reject);
  };
}
