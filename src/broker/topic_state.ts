/**
 * The durable state of declared topics: their retention limits and the
 * positions of their durable subscriptions, kept as one small JSON record in
 * a store queue of its own (`$relayr.topics`, see record_store.ts: a batch of
 * ACKs in one tick shares one write). One record rather than one per durable keeps recovery
 * trivial; it is bounded by `DECLARED_TOPICS_MAX` and `DURABLES_MAX`. Queue
 * declarations (`DECLARE queue:`) ride in the same record, bounded by
 * `DECLARED_QUEUES_MAX`.
 *
 * @module
 */
import type { Store } from "../storage/mod.ts";
import type { QueueDeclaration } from "./queue_settings.ts";
import { RecordStore } from "./record_store.ts";

/** Name of the store queue that holds the state record (no client can name it: `$` is not a name character). */
export const STATE_QUEUE = "$relayr.topics";

/** The state record, version 1. */
export interface TopicStateRecord {
  v: 1;
  topics: { name: string; messages: number; bytes: number; ageMs: number }[];
  durables: { topic: string; name: string; acked: number; skipped: number }[];
  /** Declared queues (`DECLARE queue:`); absent in records written before they existed. */
  queues?: QueueDeclaration[];
}

/** The declared topics' state record, in `$relayr.topics`. */
export class TopicStateStore extends RecordStore<TopicStateRecord> {
  constructor(store: Store, nextId: () => number, record: () => TopicStateRecord) {
    super(store, STATE_QUEUE, nextId, record, checkRecord);
  }
}

/** (cluster) The positions of one declared topic's durables, version 1 (topic_leader.ts). */
export interface DurablesRecord {
  v: 1;
  durables: { name: string; acked: number; skipped: number }[];
}

/** (cluster) One declared topic's durables' positions, in a store queue its leader replicates. */
export class DurablesStore extends RecordStore<DurablesRecord> {
  constructor(store: Store, name: string, nextId: () => number, record: () => DurablesRecord) {
    super(store, name, nextId, record, checkDurables);
  }
}

function checkDurables(x: unknown, id: number): DurablesRecord {
  const rec = x as DurablesRecord;
  if (rec?.v !== 1 || !Array.isArray(rec.durables)) {
    throw new Error(`the durables record ${id} is not version 1`);
  }
  return rec;
}

function checkRecord(x: unknown, id: number): TopicStateRecord {
  const rec = x as TopicStateRecord;
  if (rec?.v !== 1 || !Array.isArray(rec.topics) || !Array.isArray(rec.durables)) {
    throw new Error(`the topic state record ${id} is not version 1`);
  }
  return rec;
}
