/**
 * The durable state of declared topics: their retention limits and the
 * positions of their durable subscriptions, kept as one small JSON record in
 * a store queue of its own (`$relayr.topics`). Each change writes a new
 * record and removes the previous one, at most once per tick (changes in one
 * tick, such as a batch of ACKs, share one write); a restart reads the record
 * with the highest id. One record rather than one per durable keeps recovery
 * trivial; it is bounded by `DECLARED_TOPICS_MAX` and `DURABLES_MAX`.
 *
 * @module
 */
import { Message, type QueueStore, type Store } from "../storage/mod.ts";

/** Name of the store queue that holds the state record (no client can name it: `$` is not a name character). */
export const STATE_QUEUE = "$relayr.topics";

/** The state record, version 1. */
export interface TopicStateRecord {
  v: 1;
  topics: { name: string; messages: number; bytes: number; ageMs: number }[];
  durables: { topic: string; name: string; acked: number; skipped: number }[];
}

/** Writes the state record, coalesced per tick; `save()` resolves when it is as durable as the store makes it. */
export class TopicStateStore {
  #store: QueueStore;
  #nextId: () => number;
  #record: () => TopicStateRecord;
  #pending: Promise<void> | undefined;
  #resolve: () => void = () => {};
  #reject: (e: unknown) => void = () => {};

  constructor(store: Store, nextId: () => number, record: () => TopicStateRecord) {
    this.#store = store.openQueue(STATE_QUEUE);
    this.#nextId = nextId;
    this.#record = record;
  }

  /** The last record written before the restart, if any. */
  load(): TopicStateRecord | undefined {
    let latest: Message | undefined;
    for (const m of this.#store.messages()) {
      if (latest === undefined || m.id > latest.id) latest = m;
    }
    if (latest === undefined) return undefined;
    const rec = JSON.parse(new TextDecoder().decode(latest.payload)) as TopicStateRecord;
    if (rec?.v !== 1 || !Array.isArray(rec.topics) || !Array.isArray(rec.durables)) {
      throw new Error(`the topic state record ${latest.id} is not version 1`);
    }
    return rec;
  }

  /** Writes the state at the end of this tick; the promise settles when it is stored. */
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
      const msg = new Message(
        this.#nextId(),
        STATE_QUEUE,
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
