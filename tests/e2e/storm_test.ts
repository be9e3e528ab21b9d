/**
 * Connection storm (issue #15), the suite's size: 2,000 connections opened as
 * fast as a client can, each with a CONNECT and a subscription, then all closed
 * at once (bench/storm.ts does it, and `deno task bench:storm` runs the full
 * 10,000). The broker must stay live throughout and free everything.
 *
 * What "answers a ping in time" asserts here: the broker's own event-loop lag
 * (`/api/stats` `event_loop_lag_ms.max`, read every second) stays under
 * `LOOP_LAG_MS_MAX`: that is how long a PING waits behind other work inside the
 * broker. A late timer is late for two reasons, though: the broker's own work
 * (what is asserted), and the time its thread sat runnable while the OS ran
 * other processes on the two shared cores (105-245 ms of "lag" under a load of
 * 8, 23 ms on a quiet machine). The second is the machine's, and Linux counts
 * it per thread (`/proc/<pid>/schedstat`'s run-queue wait), so the test takes
 * the broker's whole wait since it started off the largest lag: what is left
 * is work the broker did. That never fails for a busy machine, and still fails
 * for a broker that blocks its loop while the machine is quiet; `deno task
 * bench:storm` holds the plain bound. The probe's client-side round trip holds
 * the scheduling of three processes, so it gets only a liveness bound,
 * `PONG_MS_MAX`; the bench prints both.
 */
import assert from "node:assert/strict";
import {
  describe,
  LOOP_LAG_MS_MAX,
  runStorm,
  stormBroker,
  stormFileLimit,
} from "../../bench/storm.ts";

/** Connections of the in-suite storm: big enough to show per-connection costs, a few seconds long. */
const STORM_CONNECTIONS = 2_000;
/** A client-side PONG round trip, scheduling noise of a shared machine included. */
const PONG_MS_MAX = 2_000;
/**
 * RSS with every storm connection open, per connection, at most (measured 23-29 KiB here on Deno:
 * ~11 KiB of heap, ~1.6 KiB of buffers, the rest the runtime's socket and its allocator).
 */
const RSS_PER_CONNECTION_BYTES_MAX = 48 * 1024;

const dec = new TextDecoder();

/**
 * How long process `pid`'s main thread (where its event loop runs) waited for a core since it
 * started, in ms: the second field of Linux's `/proc/<pid>/schedstat`; 0 where it cannot be read.
 */
async function runQueueWaitMs(pid: number): Promise<number> {
  try {
    const fields = (await Deno.readTextFile(`/proc/${pid}/schedstat`)).trim().split(/\s+/);
    return Number(fields[1]) / 1e6 || 0;
  } catch {
    return 0;
  }
}

/** The hard open-file limit children of this process may raise themselves to. */
async function hardFileLimit(): Promise<number> {
  const out = await new Deno.Command("sh", { args: ["-c", "ulimit -Hn"], stdout: "piped" })
    .output();
  const text = dec.decode(out.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}

const HARD_LIMIT = await hardFileLimit();
const FILE_LIMIT = stormFileLimit(STORM_CONNECTIONS);
if (HARD_LIMIT < FILE_LIMIT) {
  console.warn(`storm: hard file limit ${HARD_LIMIT} < ${FILE_LIMIT}, storm test ignored`);
}

Deno.test({
  name: `storm: ${STORM_CONNECTIONS} connections open, subscribe and close; the broker stays live`,
  ignore: HARD_LIMIT < FILE_LIMIT,
  async fn() {
    const broker = await stormBroker("deno", STORM_CONNECTIONS);
    try {
      const r = await runStorm({ broker, connections: STORM_CONNECTIONS, fileLimit: FILE_LIMIT });
      const waitedMs = await runQueueWaitMs(broker.pid);
      console.log(`storm: ${describe(r)}; its loop waited ${waitedMs.toFixed(1)} ms for a core`);
      assert.equal(r.drained.closed_by_reason.INTERNAL_ERROR, 0);
      assert.equal(
        r.drained.closed_by_reason.CLIENT_CLOSED - r.before.closed_by_reason.CLIENT_CLOSED,
        STORM_CONNECTIONS,
      );
      assert.ok(
        r.lagMaxMs - waitedMs < LOOP_LAG_MS_MAX,
        `broker loop lag ${r.lagMaxMs} ms, of which at most ${waitedMs.toFixed(1)} ms the OS's`,
      );
      assert.ok(r.pongMaxMs < PONG_MS_MAX, `slowest PONG ${r.pongMaxMs.toFixed(1)} ms`);
      const perConnection = (r.peak.mem.rss - r.before.mem.rss) / STORM_CONNECTIONS;
      assert.ok(
        perConnection <= RSS_PER_CONNECTION_BYTES_MAX,
        `RSS ${(perConnection / 1024).toFixed(1)} KiB per connection`,
      );
      // Memory given back after the close is checked by `deno task bench:storm`, which waits the
      // ~30 s the engine takes to collect an idle broker's garbage; too long for the suite.
    } finally {
      await broker.stop();
    }
  },
});
