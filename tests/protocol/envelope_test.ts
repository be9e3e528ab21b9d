/**
 * The binary envelope: every envelope round-trips (property test), the
 * layout is the one docs/PROTOCOL.md gives, and damaged input is a
 * `SyntaxError`, never another exception: every cut, every flipped byte.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  ENVELOPE_MAGIC,
} from "../../src/protocol/mod.ts";

const envelope: fc.Arbitrary<Envelope> = fc.record({
  destination: fc.string(),
  id: fc.maxSafeNat(),
  delivery: fc.nat(),
  priority: fc.integer({ min: 1, max: 9 }),
  ttlMs: fc.nat(),
  correlationId: fc.string(),
  replyTo: fc.string(),
  contentType: fc.string(),
  headers: fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 4 }),
  body: fc.uint8Array({ maxLength: 64 }),
}, { requiredKeys: ["body"] });

/** The envelope as decode gives it back: the body as a plain copy, priority 0 left out. */
function plain(e: Envelope): Envelope {
  const out = { ...e, body: Uint8Array.from(e.body) };
  if (out.priority === 0) delete out.priority;
  return out;
}

Deno.test("envelope: any message round-trips (property)", () => {
  fc.assert(
    fc.property(envelope, (e) => {
      assert.deepEqual(plain(decodeEnvelope(encodeEnvelope(e))), plain(e));
    }),
    { seed: 7, numRuns: 1000 },
  );
});

Deno.test("envelope: the layout of docs/PROTOCOL.md, byte for byte", () => {
  const body = new TextEncoder().encode("hello");
  assert.deepEqual([...encodeEnvelope({ body })], [ENVELOPE_MAGIC, 1, 0, 0, ...body]);
  const e = encodeEnvelope({
    destination: "queue:a",
    id: 300,
    priority: 5,
    contentType: "x",
    headers: [["K", "v"]],
    body: new Uint8Array([9]),
  });
  assert.deepEqual([...e], [
    ENVELOPE_MAGIC,
    1,
    0b1100_0011, // destination, id, content_type, headers
    5,
    7,
    ...new TextEncoder().encode("queue:a"),
    0xac, // 300 as LEB128
    0x02,
    1,
    0x78, // "x"
    1, // one header
    1,
    0x4b, // "K"
    1,
    0x76, // "v"
    9, // the body
  ]);
  assert.throws(() => encodeEnvelope({ body, priority: 10 }), RangeError);
  assert.throws(() => encodeEnvelope({ body, id: -1 }), RangeError);
});

Deno.test("envelope: damaged input is a SyntaxError, never another exception (property)", () => {
  fc.assert(
    fc.property(envelope, fc.nat(), fc.integer({ min: 1, max: 255 }), (e, at, flip) => {
      const b = encodeEnvelope(e);
      const cut = b.subarray(0, at % (b.length + 1));
      const flipped = b.slice();
      flipped[at % b.length] ^= flip;
      for (const x of [cut, flipped]) {
        try {
          decodeEnvelope(x);
        } catch (err) {
          assert.ok(
            err instanceof SyntaxError,
            `${(err as Error).name}: ${(err as Error).message}`,
          );
        }
      }
    }),
    { seed: 7, numRuns: 2000 },
  );
  assert.throws(() => decodeEnvelope(new Uint8Array([ENVELOPE_MAGIC, 2, 0, 0])), /version 2/);
  assert.throws(() => decodeEnvelope(new Uint8Array([1, 2, 3])), /not a Relayr envelope/);
  const huge = [ENVELOPE_MAGIC, 1, 0b10, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
  assert.throws(() => decodeEnvelope(Uint8Array.from(huge)), /varint over 8 bytes/);
});
