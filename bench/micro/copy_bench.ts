/**
 * The payload copy of the encoders: the small-copy rule written inline (a
 * byte loop below 64 bytes, else `copyBytes`), as outbound.ts had it, against
 * `copyRange` (src/runtime/buffer.ts), the one function that now holds it.
 * Each iteration appends 64 payloads of one size to a buffer, as a batch of
 * MSG frames does.
 */
import { copyBytes, copyRange } from "../../src/runtime/mod.ts";

const PER_ITER = 64;
const out = new Uint8Array(PER_ITER * 300);
const src = new Uint8Array(4096).map((_, i) => i);

for (const size of [16, 48, 63, 64, 256]) {
  // Read per payload, as a frame's size is: a constant would let the JIT fold the rule away.
  const sizes = new Int32Array(PER_ITER).fill(size);
  Deno.bench({
    name: `inline rule, ${size} B x ${PER_ITER}`,
    group: `copy ${size}`,
    baseline: true,
    fn() {
      let pos = 0;
      for (let k = 0; k < PER_ITER; k++) {
        const off = (k * 7) & 1023;
        const len = sizes[k];
        if (len < 64) { for (let i = 0; i < len; i++) out[pos++] = src[off + i]; }
        else {
          copyBytes(out, pos, src, off, len);
          pos += len;
        }
      }
    },
  });
  Deno.bench({
    name: `copyRange, ${size} B x ${PER_ITER}`,
    group: `copy ${size}`,
    fn() {
      let pos = 0;
      for (let k = 0; k < PER_ITER; k++) pos = copyRange(out, pos, src, (k * 7) & 1023, sizes[k]);
    },
  });
}
