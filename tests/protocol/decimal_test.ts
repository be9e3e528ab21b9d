/**
 * decimal(): the digits both parsers read byte counts, options and message
 * ids with. A table of inputs against each site's digit limit.
 */
import assert from "node:assert/strict";
import { decimal } from "../../src/protocol/mod.ts";

const enc = new TextEncoder();

/** decimal() of `text` inside other bytes, so that only `[s, e)` may be read. */
function read(text: string, digitsMax: number): number {
  const buf = enc.encode(`9${text}9`);
  return decimal(buf, 1, 1 + text.length, digitsMax);
}

Deno.test("decimal: digits to a number; -1 when empty, too long, or not all digits", () => {
  const cases: [string, number, number][] = [
    ["0", 10, 0],
    ["7", 10, 7],
    ["0042", 10, 42],
    ["4294967295", 10, 4294967295],
    ["9999999999", 10, 9999999999],
    ["12345678901", 10, -1], // 11 digits: over a byte count's 10
    ["999999999999999", 15, 999999999999999],
    ["1000000000000000", 15, -1],
    ["9007199254740991", 16, Number.MAX_SAFE_INTEGER],
    ["", 10, -1],
    ["-1", 10, -1],
    ["+1", 10, -1],
    ["1 ", 10, -1],
    ["1a", 10, -1],
    ["1/", 10, -1], // the bytes either side of 0-9
    ["1:", 10, -1],
  ];
  for (const [text, max, want] of cases) assert.equal(read(text, max), want, JSON.stringify(text));
});

Deno.test("decimal: 16 digits beyond 2^53 are not safe integers (the caller checks)", () => {
  assert.ok(!Number.isSafeInteger(read("9007199254740993", 16)));
  assert.ok(!Number.isSafeInteger(read("9999999999999999", 16)));
});

Deno.test("decimal: every length from 1 to 16 digits, runs of 9 joined, agrees with Number()", () => {
  let seed = 7;
  const digit = () => (seed = (seed * 1103515245 + 12345) >>> 0) % 10;
  for (let len = 1; len <= 16; len++) {
    for (let i = 0; i < 200; i++) {
      const text = Array.from({ length: len }, digit).join("");
      const want = Number(text);
      const got = read(text, 16);
      if (Number.isSafeInteger(want)) assert.equal(got, want, text);
      else assert.ok(!Number.isSafeInteger(got), text);
      assert.equal(read(`${text}x`, 17), -1);
    }
  }
});
