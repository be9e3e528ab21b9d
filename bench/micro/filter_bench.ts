/**
 * Filter micro benchmarks, through the broker with a client that only counts
 * frames (the broker's own cost, without sockets):
 * - a selector on a message's header (parsed once per message) and fields;
 * - a queue where one consumer's selector takes 1% of the messages and
 *   another consumer takes the rest, against the same queue unfiltered;
 * - the same 1% consumer alone on a queue with a backlog of 100,000
 *   messages it does not take: each delivery must not rescan the backlog.
 *
 * Run: deno bench --allow-all bench/micro/filter_bench.ts
 */
import { compileFilter } from "../../src/filter/mod.ts";
import { defaultPubOptions, encodeHeaders } from "../../src/protocol/mod.ts";
import { benchBroker, CountingClient } from "./counting.ts";

/** A payload with header `hit: yes|no` and a 16-byte body, and its PUB options. */
function message(hit: boolean) {
  const block = encodeHeaders([["hit", hit ? "yes" : "no"], ["region", "eu"]]);
  const payload = new Uint8Array(block.length + 16);
  payload.set(block);
  return { payload, o: { ...defaultPubOptions(), hdrBytes: block.length } };
}
const HIT = message(true);
const MISS = message(false);
const sel = (source: string) => ({ source, match: compileFilter(source) });
const subOpts = (filter?: string) =>
  ({ ack: "none", ...(filter ? { filter: sel(filter) } : {}) }) as never;

{
  const f = compileFilter("hit = 'yes' AND region IN ('eu', 'us') AND priority < 5");
  const b = benchBroker();
  // A fresh message per call: the header map is parsed once per message, as in the broker.
  Deno.bench({
    name: "selector: 3 conditions on a fresh message (parses its headers)",
    group: "selector",
    baseline: true,
    fn() {
      b.publish("queue:sel", HIT.payload, HIT.o);
      const q = b.queues.get("queue:sel")!;
      const m = q.store.take(0)!;
      if (!f(m)) throw new Error("no match");
      q.store.remove(m, "acked");
    },
  });
}

for (const filtered of [false, true]) {
  const b = benchBroker();
  const rare = new CountingClient();
  const rest = new CountingClient();
  const name = filtered ? "queue:one-percent" : "queue:plain";
  b.subscribe(rare, name, "rare", subOpts(filtered ? "hit = 'yes'" : undefined)).activate();
  b.subscribe(rest, name, "rest", subOpts(filtered ? "hit <> 'yes'" : undefined)).activate();
  let i = 0;
  Deno.bench({
    name: filtered
      ? "queue: 2 filtered consumers, one takes 1% (per publish + delivery)"
      : "queue: 2 unfiltered consumers (per publish + delivery)",
    group: "queue-1pct",
    baseline: !filtered,
    fn() {
      const m = ++i % 100 === 0 ? HIT : MISS;
      b.publish(name, m.payload, m.o);
    },
  });
}

{
  const b = benchBroker();
  const rare = new CountingClient();
  for (let i = 0; i < 100_000; i++) b.publish("queue:backlog", MISS.payload, MISS.o);
  b.subscribe(rare, "queue:backlog", "rare", subOpts("hit = 'yes'")).activate();
  let i = 0;
  Deno.bench({
    name: "queue: 1% consumer alone over a 100,000-message backlog (per publish)",
    group: "queue-1pct",
    fn() {
      const m = ++i % 100 === 0 ? HIT : MISS;
      b.publish("queue:backlog", m.payload, m.o);
    },
  });
}
