/**
 * `copyBytes` and `copyRange` on Deno (the Bun path is checked under Bun by
 * tests/bun_adapter_check.ts).
 */
import assert from "node:assert/strict";
import { copyBytes, copyRange } from "../src/runtime/mod.ts";

/** Ranges on both sides of copyRange's 64-byte switch, and whole arrays. */
const CASES = [
  [0, 0, 5],
  [0, 16, 0],
  [3, 63, 9],
  [5, 64, 3],
  [1, 65, 0],
  [100, 256, 1000],
  [17, 8191, 7],
  [0, 9000, 0],
];

for (const [name, copy] of [["copyBytes", copyBytes], ["copyRange", copyRange]] as const) {
  Deno.test(`${name}: copies exactly the range, a whole array included, and nothing around it`, () => {
    const src = new Uint8Array(9000);
    for (let i = 0; i < src.length; i++) src[i] = (i * 31 + (i >> 8)) & 255;
    for (const [srcOff, len, dstOff] of CASES) {
      const dst = new Uint8Array(9100).fill(0xee);
      const end = copy(dst, dstOff, src, srcOff, len);
      if (name === "copyRange") assert.equal(end, dstOff + len, "returns the end");
      assert.deepEqual(dst.subarray(dstOff, dstOff + len), src.subarray(srcOff, srcOff + len));
      assert.ok(dst.subarray(0, dstOff).every((b) => b === 0xee), `before ${srcOff}+${len}`);
      assert.ok(dst.subarray(dstOff + len).every((b) => b === 0xee), `after ${srcOff}+${len}`);
    }
  });
}
