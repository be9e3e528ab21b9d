/**
 * Live heap per subscription in the broker alone, on Deno or Bun: `--count`
 * stand-in connections (default 3,000) each subscribe to 1, then to `--subs`
 * topics of their own (default 10), in a fresh broker each time; the heap is
 * read after full collections before and after. Prints the heap per
 * connection for both and per subscription beyond the first (the difference,
 * divided by `subs - 1`). The connection's own map of subscriptions is
 * mimicked by a `Map` per connection; sids and topic names are decoded from
 * bytes, as the parser makes them. No sockets: this is what the broker's
 * objects cost, where `bench:conns` measures the whole server's RSS.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc bench/sub_heap.ts [--count N] [--subs K]
 * bun bench/sub_heap.ts [--count N] [--subs K]
 * ```
 *
 * On Bun the heap is `heapStats().heapSize` of `bun:jsc` after
 * `Bun.gc(true)`, with the kinds of cell a subscription added (`objectTypeCounts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Broker, type Client, InFlight } from "../src/broker/mod.ts";
import { testBrokerOptions } from "../tests/broker/harness.ts";
import { FakeClock } from "../tests/fake_clock.ts";

const { values } = parseArgs({
  args: (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2),
  options: { count: { type: "string", default: "3000" }, subs: { type: "string", default: "10" } },
});
const COUNT = Number(values.count);
const SUBS = Math.max(2, Number(values.subs));

interface BunJsc {
  heapStats(): { heapSize: number; objectTypeCounts: Record<string, number> };
}
const g = globalThis as unknown as {
  Bun?: { gc(full: boolean): void };
  gc?: () => void;
  process: { memoryUsage(): { heapUsed: number } };
};
const JSC = "bun:jsc"; // named through a variable: Deno never resolves it
const jsc = g.Bun === undefined ? undefined : (await import(JSC)) as BunJsc;
if (g.Bun === undefined && g.gc === undefined) {
  throw new Error("run with --v8-flags=--expose-gc on Deno");
}

/** The live heap and (Bun) cell counts, after full collections. */
function heap(): { bytes: number; cells: Record<string, number> } {
  if (jsc !== undefined) {
    g.Bun!.gc(true);
    const s = jsc.heapStats();
    return { bytes: s.heapSize, cells: s.objectTypeCounts };
  }
  for (let i = 0; i < 4; i++) g.gc!();
  return { bytes: g.process.memoryUsage().heapUsed, cells: {} };
}

/** A connection that takes everything and keeps nothing. */
class Idle implements Client {
  static #next = 1;
  readonly id = Idle.#next++;
  readonly inflight = new InFlight();
  wantsMore(): boolean {
    return true;
  }
  sendMsg(): void {}
  slowConsumer(): void {}
  delivered(): void {}
}

const enc = new TextEncoder();
const dec = new TextDecoder();
/** A flat string from bytes, as the parser decodes a token. */
const token = (s: string) => dec.decode(enc.encode(s));

/** Heap per connection with `k` subscriptions each, and the cells they added. */
function measure(k: number): { per: number; cells: [string, number][] } {
  const broker = new Broker(testBrokerOptions(new FakeClock()));
  const conns = Array.from({ length: COUNT }, () => ({ client: new Idle(), subs: new Map() }));
  const h0 = heap();
  for (let i = 0; i < COUNT; i++) {
    for (let j = 0; j < k; j++) {
      const sid = token(`s${j}`);
      const dest = token(j === 0 ? `topic:c.${i}` : `topic:c.${i}.${j}`);
      const s = broker.subscribe(conns[i].client, dest, sid, {
        sid,
        ack: undefined,
        prefetch: undefined,
        ackTimeoutMs: undefined,
      });
      s.activate();
      conns[i].subs.set(sid, s);
    }
  }
  const h1 = heap();
  const cells = Object.entries(h1.cells)
    .map(([kind, n]): [string, number] => [kind, (n - (h0.cells[kind] ?? 0)) / COUNT / k])
    .filter(([, n]) => n >= 0.05)
    .sort((a, b) => b[1] - a[1]);
  const per = (h1.bytes - h0.bytes) / COUNT;
  void [broker, conns]; // alive until read
  return { per, cells };
}

const one = measure(1);
const many = measure(SUBS);
const runtime = g.Bun === undefined ? "deno" : "bun";
console.log(
  `${runtime}: ${COUNT} connections, heap per connection with 1 subscription ${
    one.per.toFixed(0)
  } B, with ${SUBS} ${many.per.toFixed(0)} B: ${
    ((many.per - one.per) / (SUBS - 1)).toFixed(0)
  } B per subscription beyond the first`,
);
for (const [kind, n] of many.cells) console.log(`  ${n.toFixed(2)} ${kind} per subscription`);
