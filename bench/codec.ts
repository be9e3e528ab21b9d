/**
 * The SDK's body codecs measured on the runtime that runs this file: JSON
 * (`JSON.stringify` + UTF-8, and back) against MessagePack (`msgpackr`,
 * plain: no records), encode and decode of a typical event object, and the
 * encoded size. Runs on Deno and Bun alike:
 *
 *   deno run -A bench/codec.ts
 *   bun bench/codec.ts
 *
 * Numbers swing on a shared machine: compare the rows of one run.
 */
import { type Codec, decodeBody, encodeBody } from "../src/client/mod.ts";

const N = 200_000;
const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";

const event = {
  event: "order_placed",
  order_id: "ord-1234567890",
  customer: { id: 424242, name: "Ada Lovelace", tier: "gold" },
  items: [
    { sku: "A-100", qty: 2, price: 19.99 },
    { sku: "B-200", qty: 1, price: 5.5 },
  ],
  total: 45.48,
  paid: true,
  created_at: 1767225600000,
};

function time(fn: () => void): number {
  for (let i = 0; i < N / 10; i++) fn(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < N; i++) fn();
  return N / ((performance.now() - t0) / 1000);
}

const rows: string[] = [];
for (const codec of ["json", "msgpack"] as Codec[]) {
  const bytes = encodeBody(event, codec);
  let sink = 0;
  const enc = time(() => sink += encodeBody(event, codec).length);
  const dec = time(() => sink += (decodeBody(bytes, codec) as typeof event).items.length);
  if (sink === 0) throw new Error("unreachable");
  rows.push(
    `${runtime.padEnd(5)} ${codec.padEnd(8)} ${String(bytes.length).padStart(4)} B  ` +
      `encode ${Math.round(enc / 1000).toLocaleString("en")} k/s  ` +
      `decode ${Math.round(dec / 1000).toLocaleString("en")} k/s`,
  );
}
console.log(rows.join("\n"));
