/**
 * Redeliveries after a failover are marked (docs/CLUSTERING.md, "Replication
 * of queues"). Delivery counts are not replicated: a follower's copy of a
 * message says nothing of the deliveries its leader made, so a new leader
 * would hand out what was in flight at the old one as `delivery:1`, as if
 * never delivered. Instead, when a node starts serving a queue it took over,
 * it counts one delivery on every recovered message that is visible (ready):
 * the old leader may have delivered any of those. A message still scheduled
 * for later cannot have been, and is left alone.
 *
 * This is RabbitMQ's rule for recovered messages (marked redelivered when
 * they may have been delivered) rather than replicated counts: knowing
 * exactly which messages the old leader delivered would take a replicated
 * record per delivery, and the delivery could go out only once a majority
 * held that record (a leader killed between the two is the case at hand),
 * one more commit round before every delivery. The cost here is one pass
 * over the queue per takeover, and a message the old leader never delivered
 * also counts one (its first delivery says `delivery:2`; a `max_deliveries`
 * rule gives it one delivery less).
 *
 * @module
 */
import { MessageState } from "../storage/mod.ts";
import type { ReplicatedQueueStore } from "./replicated_store.ts";

/**
 * Counts one delivery on every visible message of `q`'s recovered copy (the
 * due scheduled ones made visible first); returns the largest id it holds
 * and how many were marked.
 */
export function markRecovered(
  q: ReplicatedQueueStore,
  now: number,
): { maxId: number; marked: number } {
  // Scheduled messages due by now are made ready first: the old leader may have delivered them.
  q.inner.sweep(now);
  let maxId = 0;
  let marked = 0;
  for (const m of q.live()) {
    if (m.id > maxId) maxId = m.id;
    if (m.state === MessageState.READY) {
      m.deliveries++;
      marked++;
    }
  }
  return { maxId, marked };
}
