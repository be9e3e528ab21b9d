/**
 * decimal(), decimalId(), digits16() and digitsEnd(): the digits both parsers
 * read byte counts, options and message ids with. A table of inputs against
 * each site's digit limit, and the id reader at every border: 1 to 16 digits,
 * each byte next to 0-9 in each position, 2^53 and past it, with and without
 * the view, inside other bytes and at an offset into its buffer.
 */
import assert from "node:assert/strict";
import { decimal, decimalId, digits16, digitsEnd, ID_DIGITS_MAX } from "../../src/protocol/mod.ts";

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

/**
 * decimalId() of `text` inside other digits (so that only `[s, e)` may be
 * read), in a chunk that starts 3 bytes into its buffer (as a socket chunk
 * may), through a view of the chunk and from the bytes; both must agree with
 * each other and with decimal()'s byte loop.
 */
function id(text: string): number {
  const whole = enc.encode(`xyz9${text}9`);
  const buf = whole.subarray(3);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const viaView = decimalId(buf, view, 1, 1 + text.length);
  const viaBytes = decimalId(buf, null, 1, 1 + text.length);
  const loop = decimal(buf, 1, 1 + text.length, ID_DIGITS_MAX);
  const name = JSON.stringify(text);
  assert.equal(viaView, viaBytes, `view and bytes disagree on ${name}`);
  assert.equal(viaView, Number.isSafeInteger(loop) ? loop : -1, `the loop disagrees on ${name}`);
  return viaView;
}

Deno.test("decimalId: 1 to 16 digits agree with Number(), through the view and the loop", () => {
  let seed = 11;
  const digit = () => (seed = (seed * 1103515245 + 12345) >>> 0) % 10;
  for (let len = 1; len <= ID_DIGITS_MAX; len++) {
    for (let i = 0; i < 300; i++) {
      const text = Array.from({ length: len }, digit).join("");
      const want = Number(text);
      assert.equal(id(text), Number.isSafeInteger(want) ? want : -1, text);
    }
    assert.equal(id("9".repeat(len)), len < 16 ? 10 ** len - 1 : -1);
    assert.equal(id("0".repeat(len)), 0); // leading zeros are read as written
  }
  assert.equal(id("1".repeat(17)), -1); // 17 digits: too many
  assert.equal(id(""), -1);
});

Deno.test("decimalId: 2^53 - 1 is the largest id; past it, -1 (never a rounded other id)", () => {
  assert.equal(id("9007199254740991"), Number.MAX_SAFE_INTEGER);
  assert.equal(id("9007199254740990"), Number.MAX_SAFE_INTEGER - 1);
  assert.equal(id("9007199254740992"), -1); // 2^53
  assert.equal(id("9007199254740993"), -1); // rounds to 2^53
  assert.equal(id("9007199254740999"), -1);
  assert.equal(id("9999999999999999"), -1);
  assert.equal(id("1000000000000000"), 1e15);
  assert.equal(id("1838892215346176"), 1838892215346176);
});

Deno.test("decimalId: a byte next to 0-9 in any of the 16 places is no id", () => {
  // '/' and ':' border the digits; 0x00, space, 0x7f, 0x80 and 0xff are the other edges a
  // SWAR check could carry across.
  const strangers = [0x2f, 0x3a, 0x00, 0x20, 0x7f, 0x80, 0xff, 0x06, 0xc9];
  const base = enc.encode("1838892215346176");
  for (const len of [1, 8, 9, 15, 16]) {
    for (let at = 0; at < len; at++) {
      for (const b of strangers) {
        const bytes = base.slice(0, len);
        bytes[at] = b;
        const whole = new Uint8Array(len + 2);
        whole.set(bytes, 1);
        const view = new DataView(whole.buffer);
        assert.equal(decimalId(whole, view, 1, 1 + len), -1, `${len} digits, ${b} at ${at}`);
        assert.equal(decimalId(whole, null, 1, 1 + len), -1, `${len} digits, ${b} at ${at}`);
        if (len === 16) {
          assert.equal(digits16(whole, view, 1), -1);
          assert.equal(digits16(whole, null, 1), -1);
        }
      }
    }
  }
});

Deno.test("digits16 reads at any offset into a view; digitsEnd stops at the first non-digit", () => {
  const buf = enc.encode("ab1838892215346176cd0123456789012345");
  const view = new DataView(buf.buffer);
  assert.equal(digits16(buf, view, 2), 1838892215346176);
  assert.equal(digits16(buf, view, 20), 123456789012345);
  assert.equal(digits16(buf, view, 1), -1);
  for (const at of [2, 20, 1]) assert.equal(digits16(buf, null, at), digits16(buf, view, at));
  assert.equal(digitsEnd(buf, 2, buf.length), 18);
  assert.equal(digitsEnd(buf, 2, 10), 10); // the limit bounds the scan
  assert.equal(digitsEnd(buf, 0, buf.length), 0);
  assert.equal(digitsEnd(buf, 20, buf.length), buf.length);
});
