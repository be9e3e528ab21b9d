/**
 * The log format: checksum vectors, header and record round trips, and the
 * reader's refusal of every torn or flipped record.
 */
import assert from "node:assert/strict";
import { Message } from "../../src/storage/mod.ts";
import { crc32c, format } from "../../src/storage/log/mod.ts";

const { RecordType, RecordWriter, readRecord, encodeSegmentHeader, decodeSegmentHeader } = format;

Deno.test("crc32c: the standard check values, and continuation", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  const b = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(crc32c(b, cut, 1000, crc32c(b, 0, cut)), crc32c(b), `split at ${cut}`);
  }
});

Deno.test("segment header: round trip; a flipped byte or a short file is refused", () => {
  const h = { seq: 42, floorId: 123456789, createdAt: 1.8e12, name: "queue:orders.eu" };
  const b = encodeSegmentHeader(h);
  const d = decodeSegmentHeader(b);
  assert.ok("header" in d);
  assert.deepEqual(d.header, h);
  assert.equal(d.size, b.length);
  // A version 1 segment (written before DEDUP records existed) is still read.
  assert.equal(b[4], format.FORMAT_VERSION);
  const v1 = b.slice();
  v1[4] = 1;
  new DataView(v1.buffer).setUint32(v1.length - 4, crc32c(v1, 0, v1.length - 4), true);
  const d1 = decodeSegmentHeader(v1);
  assert.ok("header" in d1 && d1.header.name === h.name, "version 1 is readable");
  for (let i = 0; i < b.length; i++) {
    const x = b.slice();
    x[i] ^= 0x10;
    assert.ok("error" in decodeSegmentHeader(x), `flip at ${i}`);
  }
  for (let n = 0; n < b.length; n++) {
    const r = decodeSegmentHeader(b.subarray(0, n));
    assert.ok("error" in r, `cut at ${n}`);
  }
  // A newer version than this build reads is refused by name (the checksum is not what stops it).
  const v3 = b.slice();
  v3[4] = 3;
  const r = decodeSegmentHeader(v3);
  assert.ok("error" in r && /version 3/.test(r.error));
  const v0 = b.slice();
  v0[4] = 0;
  const r0 = decodeSegmentHeader(v0);
  assert.ok("error" in r0 && /version 0/.test(r0.error));
});

function sample(): Message {
  const m = new Message(
    987654321,
    "queue:q",
    new TextEncoder().encode("K: v\r\n\r\nbody ü"),
    8,
    7,
    60_000,
    1.8e12 + 60_000,
    "corr",
    "queue:reply",
    undefined,
    1.8e12,
  );
  return m;
}

Deno.test("records: every kind round-trips", () => {
  const w = new RecordWriter(16);
  const m = sample();
  w.message(RecordType.PUB, m);
  w.deliver(m.id, 3);
  w.requeue(m.id, 3, 1.8e12 + 5);
  w.remove(m.id, "dead_lettered");
  m.deliveries = 4;
  w.message(RecordType.COPY, m);
  w.dedup(m.id, "order-42-é");
  const b = w.bytes().slice();
  const got = [];
  for (let pos = 0; pos < b.length;) {
    const r = readRecord(b, pos, "queue:q");
    assert.ok(r.ok, `record at ${pos}`);
    got.push(r.record);
    pos = r.next;
  }
  assert.equal(got.length, 6);
  const pub = got[0] as { msg: Message };
  assert.equal(pub.msg.id, m.id);
  assert.deepEqual(pub.msg.payload, m.payload);
  assert.deepEqual(
    [pub.msg.hdrBytes, pub.msg.priority, pub.msg.ttlMs, pub.msg.expiresAt, pub.msg.acceptedAt],
    [8, 7, 60_000, 1.8e12 + 60_000, m.acceptedAt], // the accept time lives in the id
  );
  assert.deepEqual(
    [pub.msg.correlationId, pub.msg.replyTo, pub.msg.contentType],
    ["corr", "queue:reply", undefined],
  );
  assert.equal(pub.msg.deliveries, 0);
  assert.deepEqual(got[1], { type: RecordType.DELIVER, id: m.id, deliveries: 3 });
  assert.deepEqual(got[2], {
    type: RecordType.REQUEUE,
    id: m.id,
    deliveries: 3,
    dueAt: 1.8e12 + 5,
  });
  assert.deepEqual(got[3], { type: RecordType.REMOVE, id: m.id, reason: "dead_lettered" });
  assert.equal((got[4] as { msg: Message }).msg.deliveries, 4);
  assert.deepEqual(got[5], { type: RecordType.DEDUP, id: m.id, dedupId: "order-42-é" });
});

Deno.test("records: every flipped bit and every cut is detected", () => {
  const w = new RecordWriter();
  w.message(RecordType.PUB, sample());
  const b = w.bytes().slice();
  for (let i = 0; i < b.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const x = b.slice();
      x[i] ^= bit;
      const r = readRecord(x, 0, "queue:q");
      assert.ok(!r.ok, `flip ${bit} at ${i}`);
    }
  }
  for (let n = 0; n < b.length; n++) {
    const r = readRecord(b.subarray(0, n), 0, "queue:q");
    assert.ok(!r.ok && r.torn, `cut at ${n}`);
  }
});

Deno.test("records: a message that cannot be stored faithfully is refused before writing", () => {
  const bad = new Message(
    1.5,
    "queue:q",
    new Uint8Array(1),
    0,
    0,
    0,
    0,
    undefined,
    undefined,
    undefined,
    0,
  );
  assert.throws(() => format.checkMessage(bad), { name: "StoreError" });
  const badPrio = new Message(
    1,
    "queue:q",
    new Uint8Array(1),
    0,
    12,
    0,
    0,
    undefined,
    undefined,
    undefined,
    0,
  );
  assert.throws(() => format.checkMessage(badPrio), /priority/);
  const badHdr = new Message(
    1,
    "queue:q",
    new Uint8Array(1),
    5,
    0,
    0,
    0,
    undefined,
    undefined,
    undefined,
    0,
  );
  assert.throws(() => format.checkMessage(badHdr), /header size/);
});
