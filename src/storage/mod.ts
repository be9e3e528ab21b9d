/**
 * Message storage: the `Store` seam, the memory store, the durable log
 * store, and the data structures they are built from.
 *
 * @module
 */
export { ID_SEQ_PER_MS, Message, MessageOptions, MessageState } from "./message.ts";
export type { QueueStore, RemoveReason, ScanCursor, Store, SyncStats } from "./store.ts";
export { StoreError } from "./store.ts";
export { MemoryQueueStore, MemoryStore, type RemoveHook } from "./memory.ts";
export { Deque, DequeCursor } from "./deque.ts";
export { Ring } from "../ring.ts";
export { Heap } from "./heap.ts";
export {
  crc32c,
  format,
  FSYNC_POLICIES,
  type FsyncPolicy,
  type LogFn,
  LogQueueStore,
  LogStore,
  type LogStoreOptions,
  type RecoveryStats,
} from "./log/mod.ts";
