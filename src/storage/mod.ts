/**
 * Message storage: the `Store` seam, the memory store, and the data
 * structures they are built from.
 *
 * @module
 */
export { Message, MessageState } from "./message.ts";
export type { QueueStore, RemoveReason, Store } from "./store.ts";
export { StoreError } from "./store.ts";
export { MemoryQueueStore, MemoryStore, type RemoveHook } from "./memory.ts";
export { Deque } from "./deque.ts";
export { Ring } from "./ring.ts";
export { Heap } from "./heap.ts";
