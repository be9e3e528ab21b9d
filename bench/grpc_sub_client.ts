/**
 * The counting gRPC subscriber of bench/grpc.ts, runnable on its own under
 * Bun or Deno: opens one Subscribe stream on `topic:bench.g`, counts the
 * messages of each SubscribeResponse without decoding them, and prints one
 * JSON line `{"rate": msgs/s}` measured over `seconds` after `warmupMs`.
 * bench/grpc.ts runs it under Bun when Bun is installed: grpc-js reads
 * faster there, so the client is less of a ceiling on what is measured.
 *
 *   bun bench/grpc_sub_client.ts <grpc port> <seconds> <warm-up ms>
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { brokerServiceDefinition } from "../src/grpc/mod.ts";

/** Counts `Message`s (field 1) of an encoded SubscribeResponse. */
export function countMessages(buf: Uint8Array): number {
  let p = 0;
  let n = 0;
  while (p < buf.length) {
    const tag = buf[p++];
    let len = 0;
    let shift = 1;
    for (;;) {
      const b = buf[p++];
      len += (b & 0x7f) * shift;
      if (b < 0x80) break;
      shift *= 128;
    }
    if (tag === 0x0a) n++;
    p += len;
  }
  return n;
}

/** Subscribes, waits `warmupMs`, counts for `seconds`; resolves the rate in msgs/s. */
export async function countRate(port: number, seconds: number, warmupMs: number): Promise<number> {
  let counted = 0;
  const def = { ...brokerServiceDefinition() };
  def.Subscribe = {
    ...def.Subscribe,
    responseDeserialize: (b: Uint8Array) => {
      counted += countMessages(b);
      return true; // not null: that would end the stream
    },
  };
  const Ctor = grpc.makeClientConstructor(def, "relayr.v1.Broker");
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  // deno-lint-ignore no-explicit-any
  const call = (client as any).Subscribe();
  call.on("data", () => {});
  call.on("error", () => {});
  call.write({ open: { destination: "topic:bench.g" } });
  await new Promise((r) => setTimeout(r, warmupMs));
  const from = counted;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const rate = (counted - from) / ((performance.now() - t0) / 1000);
  call.cancel();
  // Closing the channel while the cancel is in flight can abort a Deno broker
  // inside nghttp2 (docs/GRPC.md): let the cancel land first.
  await new Promise((r) => setTimeout(r, 200));
  client.close();
  return rate;
}

if (import.meta.main) {
  // Bun also has `process.argv`; Deno has `Deno.args`.
  const g = globalThis as { Deno?: { args: string[] }; process?: { argv: string[] } };
  const args = g.Deno?.args ?? g.process!.argv.slice(2);
  const rate = await countRate(Number(args[0]), Number(args[1]), Number(args[2]));
  console.log(JSON.stringify({ rate }));
}
