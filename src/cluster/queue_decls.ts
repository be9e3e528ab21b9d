/**
 * Queue declarations across the cluster (docs/CLUSTERING.md, "Queue
 * declarations across nodes"). A `DECLARE queue:<name>` is forwarded to the
 * queue's leader like any queue command; there it is kept in etcd as well as
 * in the node's state record, so that a later leader serves the queue by the
 * same settings (its limits, overflow policy, dead letters...).
 *
 * - **Stored by the leader** at `relayr/queues/<queue>`, under the fence of
 *   its leader key (a deposed leader's write is refused), without a lease.
 *   The command is answered `OK` once etcd holds it; `UNAVAILABLE` when it
 *   does not (the leader changed, etcd away): outcome unknown, retry.
 * - **Adopted by every node** from its watch: set over any declaration the
 *   node held of that queue, and applied to the queue if the node has it. A
 *   node that becomes the queue's leader has it then before it serves the
 *   queue (the declaration's key was written before the old leader's key
 *   went, and the watch delivers in order).
 * - **Idempotent, one contract**: the same settings again are `OK` (no write
 *   when etcd holds them already), others `DECLARE_CONFLICT`, checked at the
 *   leader; declarations of one queue run one after the other there, so two
 *   racing DECLAREs cannot both be answered `OK`.
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import { DECLARED_QUEUES_MAX } from "../config/mod.ts";
import { defaultQueueDeclareOptions, type QueueDeclareOptions } from "../protocol/mod.ts";
import { type FencedDeclarations, putDeclaration } from "./fenced_declaration.ts";
import type { WatchEvent } from "./meta.ts";

/** Where etcd keeps the queue declarations (under `relayr/`). */
export const QUEUES_KEY = "queues/";

/** What the queue declarations need from the node around them. */
export interface QueueDeclarationsOptions extends FencedDeclarations {
  readonly broker: Broker;
}

/** The cluster's queue declarations, as this node sees them (see the module comment). */
export class QueueDeclarations {
  readonly #o: QueueDeclarationsOptions;
  /** The declarations etcd holds, as the watch last told them (bounded by `DECLARED_QUEUES_MAX`). */
  #stored = new Map<string, QueueDeclareOptions>();
  /**
   * The DECLARE of each queue running here now: the next one of that queue
   * waits for it. Bounded by the connections (a read loop waits for its answer).
   */
  #running = new Map<string, Promise<void>>();

  constructor(options: QueueDeclarationsOptions) {
    this.#o = options;
  }

  /** A key under `relayr/` that is neither a member nor a leader: a queue declaration, maybe. */
  keyChanged(e: WatchEvent): boolean {
    const prefix = `relayr/${QUEUES_KEY}`;
    if (!e.key.startsWith(prefix)) return false;
    const queue = e.key.slice(prefix.length);
    // Nothing deletes a declaration; a deleted key leaves the node's as it is.
    if (e.kv === undefined) return void this.#stored.delete(queue), true;
    const d = parseDeclaration(e.kv.value);
    if (d === undefined || !queue.startsWith("queue:")) {
      this.#o.log("warn", `ignored a bad queue declaration in etcd at ${e.key}`);
      return true;
    }
    if (!this.#stored.has(queue) && this.#stored.size >= DECLARED_QUEUES_MAX) return true;
    this.#stored.set(queue, d);
    this.#adopt(queue, d);
    return true;
  }

  /** A `DECLARE queue:` at this node, the queue's leader (see the module comment). */
  declare(queue: string, d: QueueDeclareOptions): Promise<void> {
    const before = this.#running.get(queue) ?? Promise.resolve();
    const run = before.then(() => this.#declare(queue, d));
    const mine = run.catch(() => {});
    this.#running.set(queue, mine);
    void mine.then(() => {
      if (this.#running.get(queue) === mine) this.#running.delete(queue);
    });
    return run;
  }

  async #declare(queue: string, d: QueueDeclareOptions): Promise<void> {
    const b = this.#o.broker;
    const fresh = b.checkQueueDeclaration(queue, d); // DECLARE_CONFLICT, LIMIT
    const stored = this.#stored.get(queue);
    if (!fresh && stored !== undefined) return; // the same settings, held by etcd already
    await putDeclaration(this.#o, queue, QUEUES_KEY + queue, JSON.stringify(d));
    this.#stored.set(queue, d);
    await this.#adopt(queue, d);
  }

  /** Applies the cluster's declaration of `queue` here (its state record stored too). */
  #adopt(queue: string, d: QueueDeclareOptions): Promise<void> {
    return this.#o.broker.adoptQueueDeclaration(queue, d).catch((e) => {
      this.#o.log("warn", `declaration of ${queue} not stored here: ${(e as Error).message}`);
    });
  }
}

/** A declaration's value from etcd (options left out are absent); undefined when it is not one. */
function parseDeclaration(value: string): QueueDeclareOptions | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const num = (k: string): number | undefined | false => {
    const n = v[k];
    if (n === undefined) return undefined;
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : false;
  };
  const d = defaultQueueDeclareOptions();
  for (
    const k of [
      "maxMessages",
      "maxBytes",
      "ttlMs",
      "maxDeliveries",
      "ackTimeoutMs",
      "dedupWindowMs",
    ] as const
  ) {
    const n = num(k);
    if (n === false) return undefined;
    d[k] = n;
  }
  const o = v.overflow;
  if (o !== undefined && o !== "reject" && o !== "drop_oldest") return undefined;
  d.overflow = o;
  const dlq = v.dlq;
  if (dlq !== undefined && dlq !== null && (typeof dlq !== "string" || !dlq.startsWith("queue:"))) {
    return undefined;
  }
  d.dlq = dlq;
  return d;
}
