/**
 * HTTP monitoring: health and readiness probes, Prometheus metrics and a JSON
 * stats API, on their own port. The handler is a pure `(Request) => Response`
 * over plain stats objects; `startMonitoring` puts it on a port through the
 * runtime.
 *
 * @module
 */
import type { Runtime } from "../runtime/mod.ts";
import { createHandler } from "./handler.ts";
import { LoopLag } from "./loop_lag.ts";
import type { StatsSource } from "./stats.ts";

export { createHandler, type Handler } from "./handler.ts";
export { renderMetrics } from "./metrics.ts";
export { LoopLag } from "./loop_lag.ts";
export { Exposition, EXPOSITION_CONTENT_TYPE } from "./exposition.ts";
export * from "./stats.ts";

/** The monitoring server. */
export interface Monitoring {
  /** The bound HTTP port. */
  readonly port: number;
  /** Stops serving and stops the lag probe. */
  close(): Promise<void>;
}

/** Starts the monitoring endpoints on `hostname:port` (the event-loop lag probe with them). */
export function startMonitoring(
  runtime: Runtime,
  options: { hostname: string; port: number },
  source: Omit<StatsSource, "runtime" | "loopLag">,
): Monitoring {
  const lag = new LoopLag();
  const handler = createHandler({ ...source, runtime, loopLag: () => lag.read() });
  const http = runtime.serveHttp(options, handler);
  lag.start();
  let closed: Promise<void> | undefined;
  return {
    port: http.port,
    close() {
      return closed ??= (async () => {
        lag.stop();
        await http.close();
      })();
    },
  };
}
