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

/** When the log is forced to the device (see docs/PERSISTENCE.md). */
export type FsyncPolicy = "always" | "interval" | "never";

/** The fsync policies, for the settings table and validation. */
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ["always", "interval", "never"];
