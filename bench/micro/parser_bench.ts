/**
 * Parser and encoder micro benchmarks: frames per second through the pure
 * parser for a 64 KiB chunk of pipelined PUBs, and the MSG tail writer.
 */
import {
  type Frame,
  Parser,
  PLAIN_TAIL_BYTES_MAX,
  writePlainTail,
} from "../../src/protocol/mod.ts";

const enc = new TextEncoder();
function chunkOf(frame: string): { chunk: Uint8Array; frames: number } {
  const one = enc.encode(frame);
  const frames = Math.floor(65536 / one.length);
  const chunk = new Uint8Array(frames * one.length);
  for (let i = 0; i < frames; i++) chunk.set(one, i * one.length);
  return { chunk, frames };
}

for (const size of [16, 256, 4096]) {
  const { chunk, frames } = chunkOf(`PUB topic:bench.x ${size}\r\n${"x".repeat(size)}\r\n`);
  const parser = new Parser();
  const out: Frame[] = [];
  Deno.bench({
    name: `parser: 64 KiB chunk of ${size} B PUBs (${frames} frames)`,
    group: "parser",
    fn() {
      out.length = 0;
      parser.push(chunk, out);
      if (out.length !== frames) throw new Error("lost frames");
    },
  });
}

{
  const { chunk, frames } = chunkOf("ACK msg_id:1838892215346176\r\n");
  const parser = new Parser();
  const out: Frame[] = [];
  Deno.bench({
    name: `parser: 64 KiB chunk of ACKs (${frames} frames)`,
    group: "parser",
    fn() {
      out.length = 0;
      parser.push(chunk, out);
    },
  });
}

{
  const buf = new Uint8Array(PLAIN_TAIL_BYTES_MAX);
  let id = 1_838_892_215_346_176;
  Deno.bench({
    name: "encoder: MSG tail written in place",
    group: "encoder",
    fn() {
      writePlainTail(buf, 0, id++, 256);
    },
  });
}
