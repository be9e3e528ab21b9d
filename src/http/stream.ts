/**
 * The live stats stream (`GET /api/stream`): Server-Sent Events, one small
 * delta a second (rates, gauges, latency percentiles of that second), not
 * the whole stats object. One timer serves every client, and runs only while
 * one is connected; at most `STREAM_CLIENTS_MAX` clients at once.
 *
 * @module
 */
import { LATENCY_BUCKETS_S } from "../broker/mod.ts";
import { STREAM_CLIENTS_MAX, STREAM_INTERVAL_MS } from "../config/mod.ts";
import type { Timer } from "../runtime/mod.ts";
import type { Server } from "../server/mod.ts";

/** One second of the broker, as the stream pushes it. */
export interface StatsDelta {
  /** Epoch ms of the sample. */
  t: number;
  /** Seconds since the previous sample (the rates are per second over it). */
  dt_s: number;
  in_msgs_s: number;
  out_msgs_s: number;
  in_bytes_s: number;
  out_bytes_s: number;
  published_s: number;
  connections: number;
  queues: number;
  topics: number;
  rss: number;
  heap_used: number;
  /** Event-loop lag: the last probe's and the maximum of the probe's window; null when not probing. */
  loop_lag_ms: { last: number; max: number } | null;
  /** Publish-to-first-delivery latency of the deliveries in this interval (bucket upper bounds); null: none. */
  latency_ms: { count: number; p50: number; p90: number; p99: number } | null;
  /** Mean and last store fsync of this interval; null for the memory store or when none ran. */
  fsync_ms: { count: number; mean: number; last: number } | null;
  /** Connections closed so far, by any reason. */
  closed: number;
}

/** The figures a delta is the difference of. */
interface Sample {
  t: number;
  inMsgs: number;
  outMsgs: number;
  inBytes: number;
  outBytes: number;
  published: number;
  latency: number[];
  syncs: number;
  syncMs: number;
}

const encoder = new TextEncoder();

/** The stream's clients and its one timer. */
export class StatsStream {
  #server: Server;
  #clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  #timer: Timer | undefined;
  #last: Sample | undefined;

  constructor(server: Server) {
    this.#server = server;
  }

  /** Clients connected now. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Answers `GET /api/stream`: an event stream, or 503 when `STREAM_CLIENTS_MAX` are connected. */
  open(): Response {
    if (this.#clients.size >= STREAM_CLIENTS_MAX) {
      return new Response(
        JSON.stringify({ error: `the stream has its ${STREAM_CLIENTS_MAX} clients already` }),
        { status: 503, headers: { "content-type": "application/json", "retry-after": "5" } },
      );
    }
    let self: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        self = controller;
        this.#clients.add(controller);
        controller.enqueue(encoder.encode(`retry: 2000\n\n`));
        if (this.#timer === undefined) {
          this.#last = this.#sample();
          this.#timer = this.#server.clock.every(STREAM_INTERVAL_MS, () => this.#push());
        }
      },
      cancel: () => this.#drop(self),
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  }

  /** Ends every stream (the HTTP server waits for open responses before it stops). */
  close(): void {
    for (const c of [...this.#clients]) {
      try {
        c.close();
      } catch { /* already errored */ }
      this.#drop(c);
    }
  }

  /** The delta since the previous sample, and makes now the previous one. */
  delta(): StatsDelta {
    const prev = this.#last ?? this.#sample();
    const now = this.#last = this.#sample();
    const s = this.#server.serverStats();
    const dt = Math.max(0.001, (now.t - prev.t) / 1000);
    const rate = (a: number, b: number) => Math.max(0, Math.round((a - b) / dt));
    const syncs = now.syncs - prev.syncs;
    return {
      t: Math.round(now.t),
      dt_s: dt,
      in_msgs_s: rate(now.inMsgs, prev.inMsgs),
      out_msgs_s: rate(now.outMsgs, prev.outMsgs),
      in_bytes_s: rate(now.inBytes, prev.inBytes),
      out_bytes_s: rate(now.outBytes, prev.outBytes),
      published_s: rate(now.published, prev.published),
      connections: s.connections,
      queues: s.queues,
      topics: s.topics,
      rss: s.mem.rss,
      heap_used: s.mem.heap_used,
      loop_lag_ms: s.event_loop_lag_ms,
      latency_ms: percentiles(now.latency.map((n, i) => n - prev.latency[i])),
      fsync_ms: syncs === 0 ? null : {
        count: syncs,
        mean: (now.syncMs - prev.syncMs) / syncs,
        last: this.#server.broker.options.store.syncs!.lastMs,
      },
      closed: Object.values(s.closed_by_reason).reduce((a, b) => a + b, 0),
    };
  }

  #push(): void {
    const bytes = encoder.encode(`data: ${JSON.stringify(this.delta())}\n\n`);
    for (const c of [...this.#clients]) {
      try {
        c.enqueue(bytes);
      } catch {
        this.#drop(c); // its reader went away between two ticks
      }
    }
  }

  #drop(c: ReadableStreamDefaultController<Uint8Array>): void {
    this.#clients.delete(c);
    if (this.#clients.size > 0) return;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #sample(): Sample {
    const server = this.#server;
    const s = server.serverStats();
    const syncs = server.broker.options.store.syncs;
    return {
      t: server.clock.now(),
      inMsgs: s.in_msgs,
      outMsgs: s.out_msgs,
      inBytes: s.in_bytes,
      outBytes: s.out_bytes,
      published: s.published_msgs,
      latency: Array.from(server.broker.latency.counts),
      syncs: syncs?.count ?? 0,
      syncMs: syncs?.totalMs ?? 0,
    };
  }
}

/** p50/p90/p99 of bucket counts (each the upper bound of its bucket, in ms); null when empty. */
function percentiles(counts: number[]): StatsDelta["latency_ms"] {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const at = (q: number) => {
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i];
      if (seen >= q * total) return bound(i);
    }
    return bound(counts.length - 1);
  };
  return { count: total, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** Upper bound of bucket `i` in ms; the overflow bucket reports the last finite bound. */
function bound(i: number): number {
  const b = LATENCY_BUCKETS_S[Math.min(i, LATENCY_BUCKETS_S.length - 1)];
  return b * 1000;
}
