/**
 * The durable store: a segmented, checksummed, append-only log per queue,
 * recovered on start. Its format is in `format.ts`, its guarantees in
 * docs/PERSISTENCE.md.
 *
 * @module
 */
export { LogStore, type LogStoreOptions, type RecoveryStats } from "./log_store.ts";
export { LogQueueStore } from "./queue_log.ts";
export { FSYNC_POLICIES, type FsyncPolicy, type LogFn } from "./types.ts";
export { crc32c } from "./crc32c.ts";
export * as format from "./format.ts";
