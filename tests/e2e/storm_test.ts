/**
 * Connection storm (issue #15), the suite's size: 2,000 connections opened as
 * fast as a client can, each with a CONNECT and a subscription, then all closed
 * at once (bench/storm.ts does it, and `deno task bench:storm` runs the full
 * 10,000). The broker must stay live throughout and free everything.
 *
 * What "answers a ping in time" asserts here: the broker's own event-loop lag
 * (`/api/stats` `event_loop_lag_ms.max`, read every second) stays under
 * `LOOP_LAG_MS_MAX`: that is how long a PING waits behind other work inside the
 * broker. The probe's client-side round trip also holds the time the OS kept
 * one of three processes off the two shared cores (the suite runs tests in
 * parallel with other engineers' runs), so it gets only a liveness bound,
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
      console.log(`storm: ${describe(r)}`);
      assert.equal(r.drained.closed_by_reason.INTERNAL_ERROR, 0);
      assert.equal(
        r.drained.closed_by_reason.CLIENT_CLOSED - r.before.closed_by_reason.CLIENT_CLOSED,
        STORM_CONNECTIONS,
      );
      assert.ok(r.lagMaxMs < LOOP_LAG_MS_MAX, `broker loop lag ${r.lagMaxMs} ms`);
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
