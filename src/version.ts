/** The Relayr version, shown by `--version`, `INFO` and the stats API. */
export const VERSION = "0.1.0";
