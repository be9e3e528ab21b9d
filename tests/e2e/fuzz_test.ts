/**
 * Seeded fuzzing of a live server: random bytes and mutated valid frames
 * from several connections at once; afterwards the server must have closed
 * nothing for an internal error, and a well-behaved client must still work.
 *
 * No assertion waits on a sleep being long enough: each fuzz connection ends
 * with a half-close (FIN) and reads until the server closes its side, which
 * the server does only after it has handled every frame before the FIN (or
 * stopped at a fatal framing error). By then the close reason is recorded, so
 * an INTERNAL_ERROR from the last frame of the last connection is counted
 * before the counters are read.
 */
import assert from "node:assert/strict";
import { ALLOWED_CLOSES, CORPUS, garbage, mutate } from "../../bench/fuzz_frames.ts";
import { RawClient, rng, startTestBroker, waitFor } from "../helpers.ts";

/** Bound on waiting for the server to finish one fuzz connection (it takes milliseconds). */
const FINISH_TIMEOUT_MS = 5000;

const SEEDS = 40;
const CONNS_PER_SEED = 3;
const SENDS_PER_SEED = 60;

/**
 * A fuzz connection: writes whatever it is given (the server may close it at
 * any point for a framing error), then half-closes and reads to the end.
 */
class FuzzConn {
  #conn: Deno.TcpConn;
  #broken = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async connect(port: number): Promise<FuzzConn> {
    return new FuzzConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(data: Uint8Array): Promise<void> {
    if (this.#broken) return;
    try {
      let off = 0;
      while (off < data.length) off += await this.#conn.write(data.subarray(off));
    } catch {
      this.#broken = true; // the server closed this one for a framing error: that is allowed
    }
  }

  /**
   * Sends FIN and reads until the server closes the connection: then it has
   * handled everything sent (or stopped at a fatal error) and recorded why it
   * closed. Fails if the server keeps it open past `FINISH_TIMEOUT_MS`.
   */
  async finish(): Promise<void> {
    try {
      if (!this.#broken) await this.#conn.closeWrite();
    } catch {
      // already reset by the server
    }
    const buf = new Uint8Array(16 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) =>
      timer = setTimeout(() => r("timeout"), FINISH_TIMEOUT_MS)
    );
    try {
      for (;;) {
        let n: number | null | "timeout";
        try {
          n = await Promise.race([this.#conn.read(buf), timeout]);
        } catch {
          return; // reset by the server after a fatal error: closed too
        }
        if (n === "timeout") {
          throw new Error(
            `the server did not close a fuzz connection within ${FINISH_TIMEOUT_MS} ms`,
          );
        }
        if (n === null) return;
      }
    } finally {
      clearTimeout(timer);
      try {
        this.#conn.close(); // also settles a read still pending after a timeout
      } catch { /* closed */ }
    }
  }
}

function closesSummary(counts: Record<string, number>): string {
  return Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).join(" ");
}

Deno.test("fuzz: random and mutated frames never break the server", async () => {
  const broker = await startTestBroker(["--max-payload", "4096", "--ack-timeout", "100"]);
  const server = broker.server;
  try {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = rng(seed);
      const conns = await Promise.all(
        Array.from({ length: CONNS_PER_SEED }, () => FuzzConn.connect(broker.port)),
      );
      for (let k = 0; k < SENDS_PER_SEED; k++) {
        const c = conns[Math.floor(r() * conns.length)];
        const pick = r();
        const data = pick < 0.15
          ? garbage(r)
          : pick < 0.6
          ? mutate(r, CORPUS[Math.floor(r() * CORPUS.length)])
          : new TextEncoder().encode(CORPUS[Math.floor(r() * CORPUS.length)]);
        await c.send(data);
      }
      await Promise.all(conns.map((c) => c.finish()));
      const internal = server.closedConnections.filter((c) => c.reason === "INTERNAL_ERROR");
      assert.equal(
        server.closedByReason.INTERNAL_ERROR,
        0,
        `seed ${seed} hit a server bug: ${internal.map((c) => c.detail).join("\n")}`,
      );
    }
    // Every fuzz connection is closed and accounted for, each for an allowed reason.
    const fuzzConns = SEEDS * CONNS_PER_SEED;
    await waitFor(() => server.connections.size === 0, 2000, "fuzz connections to close");
    assert.equal(server.totalConnections, fuzzConns);
    const counts: Record<string, number> = { ...server.closedByReason };
    const closed = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.equal(closed, fuzzConns, closesSummary(counts));
    for (const [reason, n] of Object.entries(counts)) {
      if (n > 0) {
        assert.ok(ALLOWED_CLOSES.has(reason), `unexpected closes: ${closesSummary(counts)}`);
      }
    }
    assert.ok(counts.CLIENT_CLOSED > 0 && counts.BAD_FRAME > 0, closesSummary(counts));

    // A well-behaved client still gets the full service.
    const sub = await RawClient.connect(broker.port);
    const pub = await RawClient.connect(broker.port);
    try {
      await sub.send("SUB topic:after sub_id:ok\r\nSUB queue:after sub_id:q\r\n");
      assert.equal(await sub.line(), "OK");
      assert.equal(await sub.line(), "OK");
      await pub.pub("topic:after", "still");
      await pub.pub("queue:after", "works");
      assert.match(await pub.line(), /^OK msg_id:/);
      assert.match(await pub.line(), /^OK msg_id:/);
      const got = (await sub.msgs(2)).map((f) => new TextDecoder().decode(f.payload)).sort();
      assert.deepEqual(got, ["still", "works"]);
      // A final round-trip on each: everything before it has been handled.
      for (const c of [sub, pub]) {
        await c.send("PING\r\n");
        assert.equal(await c.line(), "PONG");
      }
      assert.equal(server.closedByReason.INTERNAL_ERROR, 0, "no server bug was hit");
      assert.equal(server.connections.size, 2);
    } finally {
      await sub.close();
      await pub.close();
    }
  } finally {
    await broker.stop();
  }
});
