/**
 * Types shared by the files of the log store.
 *
 * @module
 */

/** Where the store reports notable events (recovery, truncation, I/O errors). */
export type LogFn = (
  level: "debug" | "info" | "warn" | "error",
  message: string,
  props?: Record<string, unknown>,
) => void;

// The policies are a setting (`--fsync`): config owns their list, the store re-exports it.
export { FSYNC_POLICIES, type FsyncPolicy } from "../../config/mod.ts";
