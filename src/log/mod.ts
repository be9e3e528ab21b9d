/**
 * Logging through LogTape: readable lines on a terminal, JSON lines on
 * request (`--log-format json`) for log shippers. Categories start with
 * `relayr`; libraries that log nothing cost nothing.
 *
 * @module
 */
import {
  ansiColorFormatter,
  configureSync,
  defaultTextFormatter,
  getConsoleSink,
  getLogger,
  jsonLinesFormatter,
  type Logger,
  type LogLevel,
  resetSync,
} from "@logtape/logtape";

export type { Logger };

/** Log output settings. */
export interface LogOptions {
  level: "debug" | "info" | "warning" | "error";
  format: "text" | "json";
  /** Colours for a terminal. */
  color: boolean;
}

/** Configures logging once for the process (again replaces it). */
export function setupLogging(o: LogOptions): void {
  resetSync();
  const formatter = o.format === "json"
    ? jsonLinesFormatter
    : o.color
    ? ansiColorFormatter
    : defaultTextFormatter;
  configureSync({
    reset: true,
    sinks: { console: getConsoleSink({ formatter }) },
    loggers: [
      { category: ["relayr"], lowestLevel: o.level as LogLevel, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
}

/** A logger under the `relayr` category. */
export function logger(...category: string[]): Logger {
  return getLogger(["relayr", ...category]);
}
