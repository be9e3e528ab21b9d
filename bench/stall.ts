/**
 * `deno task bench:stall`: the broker's memory while one topic subscriber
 * stops reading. 200 MB (`--mb`) of 4 KiB messages go through one topic with
 * one stalled and one healthy subscriber, under each slow-consumer policy
 * (`--policies`); RSS is sampled from `/api/stats` every 100 ms. Prints, per
 * policy, the RSS growth over the idle broker, what the limits allow
 * (`--sub-pending-bytes` + the 4 MiB outbound high mark), the publisher's and
 * the healthy subscriber's rate, and how many were closed as slow consumers
 * (under `block`, the stalled one after a 2 s pause of the publisher).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BrokerRuntime, startBrokerChild } from "./broker_child.ts";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "200" },
    policies: { type: "string", default: "disconnect,drop-oldest,block" },
    runtime: { type: "string", default: "deno" },
    "sub-pending-bytes": { type: "string", default: String(16 * 1024 * 1024) },
  },
});
const SIZE = 4096;
const total = Math.floor(Number(values.mb) * 1e6 / SIZE);
const pendingBytes = Number(values["sub-pending-bytes"]);
const OUTBOUND_HIGH = 4 * 1024 * 1024;
const enc = new TextEncoder();

async function connect(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

/** Reads until `want` MSG frames have arrived or the socket ends; counts on bytes (the reader must outrun the broker). */
async function countMsgs(conn: Deno.TcpConn, want: number): Promise<number> {
  let buf = new Uint8Array(1024 * 1024);
  let len = 0;
  let n = 0;
  for (;;) {
    if (len === buf.length) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    const r = await conn.read(buf.subarray(len)).catch(() => null);
    if (r === null) return n;
    len += r;
    let i = 0;
    for (;;) {
      const eol = buf.indexOf(10, i);
      if (eol < 0) break;
      let end = i;
      if (buf[i] === 0x4d /* M */) {
        let sp = eol - 2;
        while (buf[sp] !== 0x20) sp--;
        let size = 0;
        for (let k = sp + 1; k < eol - 1; k++) size = size * 10 + buf[k] - 48;
        end = eol + 1 + size + 2;
        if (end > len) break;
        n++;
      } else end = eol + 1;
      i = end;
      if (n === want) return n;
    }
    buf.copyWithin(0, i, len);
    len -= i;
  }
}

async function run(policy: string, runtime: BrokerRuntime): Promise<void> {
  const broker = await startBrokerChild({
    runtime,
    args: ["--memory", "--slow-consumer", policy, "--sub-pending-bytes", String(pendingBytes)]
      .concat(["--sub-pending-messages", "100000000", "--slow-consumer-block-ms", "2000"]),
  });
  try {
    const stalled = await connect(broker.port);
    await stalled.write(enc.encode("SUB topic:stall sub_id:stalled\r\n"));
    const healthy = await connect(broker.port);
    await healthy.write(enc.encode("SUB topic:stall sub_id:healthy\r\n"));
    const pub = await connect(broker.port);
    const start = (await broker.serverStats()).mem;
    const base = start.rss;
    let peak = base;
    let heapPeak = start.heap_used;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = (await broker.serverStats()).mem;
        peak = Math.max(peak, m.rss);
        heapPeak = Math.max(heapPeak, m.heap_used);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const t0 = performance.now();
    const healthyDone = countMsgs(healthy, total).then((n) => [n, performance.now() - t0]);
    const body = "x".repeat(SIZE);
    const chunk = enc.encode(`PUB topic:stall ${SIZE}\r\n${body}\r\n`.repeat(64));
    await pub.write(enc.encode('CONNECT {"verbose":false}\r\n'));
    for (let i = 0; i < total; i += 64) {
      let off = 0;
      while (off < chunk.length) off += await pub.write(chunk.subarray(off));
    }
    const pubMs = performance.now() - t0;
    const [healthyN, healthyMs] = await healthyDone;
    sampling = false;
    await sampler;
    const s = await broker.serverStats();
    const grow = (peak - base) / 1e6;
    const allowed = (pendingBytes + OUTBOUND_HIGH) / 1e6;
    console.log(
      `${runtime} ${policy.padEnd(11)} rss +${grow.toFixed(0)} MB, heap +${
        ((heapPeak - start.heap_used) / 1e6).toFixed(0)
      } MB (limits allow ${allowed.toFixed(0)} MB + overhead)  publisher ${
        (total / pubMs * 1000 / 1e3).toFixed(0)
      } k msgs/s  ` +
        `healthy ${healthyN}/${total} at ${
          (healthyN / healthyMs * 1000 / 1e3).toFixed(0)
        } k msgs/s  ` +
        `slow-consumer closes ${s.closed_by_reason.SLOW_CONSUMER}` +
        (policy === "block"
          ? " (the publisher paused 2 s first: --slow-consumer-block-ms 2000)"
          : ""),
    );
    for (const c of [stalled, healthy, pub]) {
      try {
        c.close();
      } catch { /* closed by the broker */ }
    }
  } finally {
    await broker.stop();
  }
}

for (const policy of values.policies!.split(",")) {
  await run(policy, values.runtime as BrokerRuntime);
}
