/**
 * Bindings from topics into queues (`BIND <topic pattern> queue:<name>`):
 * what a topic publish is also enqueued in. Kept in one JSON record in a
 * store queue of its own (`$relayr.bindings`, see record_store.ts), so they
 * survive a restart with the log store. Which bindings a topic name matches
 * is worked out once per name and cached (`ROUTE_CACHE_TOPICS_MAX` names, the
 * cache starts over when full or when the bindings change), so a publish
 * costs one map lookup, not a pattern match per binding.
 *
 * @module
 */
import { BINDINGS_MAX, ROUTE_CACHE_TOPICS_MAX } from "../config/mod.ts";
import { compileFilter, type Filter } from "../filter/mod.ts";
import { destinationError, type FilterOption, matches } from "../protocol/mod.ts";
import type { Store } from "../storage/mod.ts";
import { RecordStore } from "./record_store.ts";
import type { BindingStats } from "./stats.ts";
import { BrokerError } from "./types.ts";

/** Name of the store queue that holds the bindings record. */
export const BINDINGS_QUEUE = "$relayr.bindings";

/** The bindings record, version 1. */
export interface BindingsRecord {
  v: 1;
  bindings: { pattern: string; queue: string; filter?: string }[];
}

/** One binding: a topic pattern, the queue it feeds, an optional selector, and its counts. */
export class Route {
  /** Copies enqueued through it. */
  routed = 0;
  /** Publishes it refused (its queue was full under `reject`). */
  rejected = 0;
  constructor(
    readonly pattern: string,
    readonly queue: string,
    public filter: Filter | undefined,
    public filterSource: string | undefined,
  ) {}

  /** Its figures for the admin API. */
  stats(): BindingStats {
    return {
      pattern: this.pattern,
      queue: this.queue,
      ...(this.filterSource === undefined ? {} : { filter: this.filterSource }),
      routed: this.routed,
      rejected: this.rejected,
    };
  }
}

const NONE: readonly Route[] = [];

/** The broker's bindings. */
export class Routes {
  #routes = new Map<string, Route>();
  #cache = new Map<string, readonly Route[]>();
  #state: RecordStore<BindingsRecord>;

  constructor(store: Store, nextId: () => number) {
    this.#state = new RecordStore(store, BINDINGS_QUEUE, nextId, () => this.#record(), check);
  }

  /** Number of bindings. */
  get size(): number {
    return this.#routes.size;
  }

  /** Bindings whose pattern matches topic `name` (cached per name). */
  match(name: string): readonly Route[] {
    let rs = this.#cache.get(name);
    if (rs !== undefined) return rs;
    const found: Route[] = [];
    for (const r of this.#routes.values()) if (matches(r.pattern, name)) found.push(r);
    rs = found.length === 0 ? NONE : found;
    if (this.#cache.size >= ROUTE_CACHE_TOPICS_MAX) this.#cache.clear();
    this.#cache.set(name, rs);
    return rs;
  }

  /** Adds a binding, or replaces the selector of the same (pattern, queue); resolves when stored. */
  bind(pattern: string, queue: string, filter: FilterOption | undefined): Promise<void> {
    const key = `${pattern} ${queue}`;
    const r = this.#routes.get(key);
    if (r !== undefined) {
      r.filter = filter?.match;
      r.filterSource = filter?.source;
    } else {
      if (this.#routes.size >= BINDINGS_MAX) {
        throw new BrokerError("LIMIT", `the server holds ${BINDINGS_MAX} bindings`);
      }
      this.#routes.set(key, new Route(pattern, queue, filter?.match, filter?.source));
      this.#cache.clear();
    }
    return this.#state.save();
  }

  /** Removes a binding (none: nothing to do); resolves when stored. */
  unbind(pattern: string, queue: string): Promise<void> {
    if (!this.#routes.delete(`${pattern} ${queue}`)) return Promise.resolve();
    this.#cache.clear();
    return this.#state.save();
  }

  /** The bindings stored before a restart. */
  restore(): void {
    for (const b of this.#state.load()?.bindings ?? []) {
      const filter = b.filter === undefined
        ? undefined
        : { source: b.filter, match: compileFilter(b.filter) };
      this.#routes.set(
        `${b.pattern} ${b.queue}`,
        new Route(b.pattern, b.queue, filter?.match, filter?.source),
      );
    }
    this.#cache.clear();
  }

  /** Every binding's figures, by pattern then queue. */
  stats(): BindingStats[] {
    return [...this.#routes.keys()].sort().map((k) => this.#routes.get(k)!.stats());
  }

  #record(): BindingsRecord {
    const bindings: BindingsRecord["bindings"] = [];
    for (const r of this.#routes.values()) {
      bindings.push({
        pattern: r.pattern,
        queue: r.queue,
        ...(r.filterSource === undefined ? {} : { filter: r.filterSource }),
      });
    }
    return { v: 1, bindings };
  }
}

function check(x: unknown, id: number): BindingsRecord {
  const rec = x as BindingsRecord;
  const ok = rec?.v === 1 && Array.isArray(rec.bindings) &&
    rec.bindings.every((b) =>
      typeof b?.pattern === "string" && destinationError(b.pattern, true) === undefined &&
      typeof b.queue === "string" && destinationError(b.queue, false) === undefined &&
      (b.filter === undefined || typeof b.filter === "string")
    );
  if (!ok) throw new Error(`the bindings record ${id} is not version 1`);
  return rec;
}
