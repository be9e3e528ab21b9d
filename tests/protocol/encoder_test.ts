/** The MSG encoders agree with the textual form in docs/PROTOCOL.md. */
import assert from "node:assert/strict";
import {
  defaultPubOptions,
  msgHead,
  msgTail,
  PLAIN_TAIL_BYTES_MAX,
  writePlainTail,
} from "../../src/protocol/mod.ts";
import { rng } from "../helpers.ts";

const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const fields = (id: number, size: number) => ({ id, size, ...defaultPubOptions() });

Deno.test("encoder: the in-place tail writes ids and sizes of every length exactly", () => {
  const r = rng(11);
  const ids = [
    0,
    1,
    9,
    10,
    99_999_999,
    100_000_000,
    100_000_001,
    1_838_892_215_346_176,
    9_007_199_254_740_991,
  ];
  for (let i = 0; i < 2000; i++) ids.push(Math.floor(r() * 10 ** Math.floor(r() * 16)));
  const buf = new Uint8Array(PLAIN_TAIL_BYTES_MAX + 4);
  for (const id of ids) {
    const size = Math.floor(r() * 2 ** 21);
    const end = writePlainTail(buf, 2, id, size);
    assert.equal(dec(buf.subarray(2, end)), ` msg_id:${id} ${size}\r\n`);
    assert.equal(
      dec(buf.subarray(2, end)),
      dec(msgTail(fields(id, size), 2)).replace(" delivery:2", ""),
    );
    // The same message again (fan-out) comes from the kept copy: same bytes.
    const again = writePlainTail(buf, 1, id, size);
    assert.equal(dec(buf.subarray(1, again)), ` msg_id:${id} ${size}\r\n`);
  }
});

Deno.test("encoder: ascending ids (counted up in place) are written exactly", () => {
  const r = rng(12);
  const buf = new Uint8Array(PLAIN_TAIL_BYTES_MAX + 4);
  // Starts just below carries through 9s, a new digit, and the two int32 halves of writeId.
  for (
    const start of [0, 5, 89, 999_990, 99_999_990, 1_838_892_215_346_170, 9_007_199_254_730_000]
  ) {
    let id = start;
    for (let i = 0; i < 200; i++) {
      const size = i % 50 === 49 ? 17 : 16; // a size change now and then encodes anew
      const end = writePlainTail(buf, 3, id, size);
      assert.equal(dec(buf.subarray(3, end)), ` msg_id:${id} ${size}\r\n`);
      // Mostly a few apart; now and then a new millisecond (~1024 apart) or a jump past
      // countUpDigits' int32 range, which encodes anew.
      id += 1 +
        Math.floor(r() * (i % 7 === 6 ? 30 : i % 23 === 22 ? 5000 : i % 61 === 60 ? 2 ** 33 : 9));
    }
  }
});

Deno.test("encoder: options appear in the documented order", () => {
  const t = msgTail({
    ...fields(5, 10),
    priority: 3,
    ttlMs: 100,
    correlationId: "c",
    replyTo: "topic:r",
    contentType: "text/plain",
    hdrBytes: 4,
  }, 3);
  assert.equal(
    dec(t),
    " msg_id:5 priority:3 ttl:100 correlation_id:c reply_to:topic:r content_type:text/plain hdr:4 delivery:3 10\r\n",
  );
});

Deno.test("encoder: MSG heads are views of shared slabs, each with its own bytes", () => {
  const heads = Array.from(
    { length: 500 },
    (_, i) => [msgHead(`topic:t.${i}`, `s${i}`), i] as const,
  );
  for (const [h, i] of heads) assert.equal(dec(h), `MSG topic:t.${i} sub_id:s${i}`);
  const buffers = new Set(heads.map(([h]) => h.buffer));
  assert.ok(buffers.size < 20, `500 heads in ${buffers.size} buffers, not one each`);
  // Non-ASCII names and long ones get their own bytes, and leave the others intact.
  assert.equal(dec(msgHead("topic:café", "s")), "MSG topic:café sub_id:s");
  const long = `topic:${"l".repeat(1000)}`;
  assert.equal(dec(msgHead(long, "s")), `MSG ${long} sub_id:s`);
  const next = msgHead("topic:next", "s");
  assert.equal(dec(next), "MSG topic:next sub_id:s");
  for (const [h, i] of heads) assert.equal(dec(h), `MSG topic:t.${i} sub_id:s${i}`);
});
