/**
 * The hand-written SubscribeResponse encoder (src/grpc/codec.ts) against
 * the generated decoder (proto-loader, from the same descriptor): every
 * field, ids of every digit count, varint lengths across their byte
 * boundaries, bodies on both sides of the copy-loop threshold, and a batch
 * of many messages.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { DeliveryBatch, errorResponse, openedResponse } from "../src/grpc/codec.ts";
import { brokerServiceDefinition } from "../src/grpc/mod.ts";
import { decodePublishBatch, type PublishRequest, WireError } from "../src/grpc/publish_codec.ts";
import { encodeHeaders } from "../src/protocol/mod.ts";
import { Message } from "../src/storage/mod.ts";
import { rng } from "./helpers.ts";

const encoder = new TextEncoder();
// deno-lint-ignore no-explicit-any
const decode = (bytes: Uint8Array): any =>
  brokerServiceDefinition().Subscribe.responseDeserialize(Buffer.from(bytes));
const DEST = encoder.encode("topic:orders.eu");

Deno.test("grpc codec: plain messages of every size and id decode field by field", () => {
  const batch = new DeliveryBatch();
  const random = rng(7);
  const cases: { id: number; body: Uint8Array; delivery: number }[] = [];
  for (const size of [0, 1, 63, 64, 127, 128, 16383, 16384, 70_000]) {
    for (const id of [0, 9, 10, 99_999_999, 100_000_000, 1_839_754_870_337_536, 2 ** 53 - 1]) {
      const body = new Uint8Array(size).map(() => Math.floor(random() * 256));
      const delivery = 1 + Math.floor(random() * 300);
      cases.push({ id, body, delivery });
      const msg = new Message(id, "", body, 0, 0, 0, 0, undefined, undefined, undefined);
      batch.add(DEST, msg, delivery);
    }
  }
  assert.equal(batch.count, cases.length);
  const out = decode(batch.take());
  assert.equal(batch.count, 0);
  assert.equal(out.messages.length, cases.length);
  out.messages.forEach((m: Record<string, unknown>, i: number) => {
    const c = cases[i];
    assert.equal(m.msg_id, String(c.id));
    assert.equal(m.destination, "topic:orders.eu");
    assert.deepEqual(new Uint8Array(m.body as Uint8Array), c.body);
    assert.equal(m.delivery, c.delivery);
    assert.equal(m.priority, 0);
    assert.deepEqual(m.headers, {});
  });
});

Deno.test("grpc codec: options, headers (repeated keys joined) and priority", () => {
  const block = encodeHeaders([["Trace-Id", "a"], ["Trace-Id", "b"], ["x", "ü"]]);
  const body = encoder.encode("hello");
  const payload = new Uint8Array(block.length + body.length);
  payload.set(block);
  payload.set(body, block.length);
  const msg = new Message(
    42,
    "",
    payload,
    block.length,
    9,
    5000,
    Date.now() + 5000,
    "c-1",
    "queue:r",
    "text/plain",
  );
  const batch = new DeliveryBatch();
  batch.add(DEST, msg, 3);
  const [m] = decode(batch.take()).messages;
  assert.deepEqual(
    {
      ...m,
      body: new TextDecoder().decode(m.body),
    },
    {
      destination: "topic:orders.eu",
      body: "hello",
      headers: { "Trace-Id": "a, b", x: "ü" },
      msg_id: "42",
      priority: 9,
      ttl_ms: 5000,
      correlation_id: "c-1",
      reply_to: "queue:r",
      content_type: "text/plain",
      delivery: 3,
    },
  );
});

Deno.test("grpc codec: the opening and error responses", () => {
  assert.equal(decode(openedResponse("g17")).sub_id, "g17");
  const e = decode(errorResponse("UNKNOWN_MSG_ID", "msg_id:1 not in flight"));
  assert.deepEqual(e.error, { code: "UNKNOWN_MSG_ID", message: "msg_id:1 not in flight" });
  assert.deepEqual(e.messages, []);
});

// deno-lint-ignore no-explicit-any
const encodeBatch = (batch: any): Uint8Array =>
  brokerServiceDefinition().PublishStream.requestSerialize(batch);

Deno.test("grpc codec: PublishBatch views match what the generated encoder wrote", () => {
  const random = rng(11);
  const messages: PublishRequest[] = [];
  for (const size of [0, 1, 127, 128, 70_000]) {
    messages.push({
      destination: size % 2 === 0 ? "queue:a" : "topic:b.c",
      body: new Uint8Array(size).map(() => Math.floor(random() * 256)),
      headers: size === 128 ? { "Trace-Id": "t", "k.v": "ü" } : {},
      priority: size % 10,
      ttl_ms: size === 0 ? 0 : 2_592_000_000,
      correlation_id: size === 1 ? "c" : "",
      reply_to: size === 1 ? "queue:r" : "",
      content_type: size === 127 ? "application/json" : "",
      delay_ms: size === 128 ? 5000 : 0,
      deliver_at_ms: size === 127 ? 2 ** 42 : 0,
      dedup_id: size === 1 ? "d-1" : "",
    });
  }
  const views = decodePublishBatch(encodeBatch({ messages }));
  assert.equal(views.length, messages.length);
  views.forEach((v, i) => {
    const m = messages[i];
    assert.equal(v.destination, m.destination);
    assert.deepEqual(v.buf.subarray(v.off, v.off + v.len), m.body);
    assert.equal(
      Object.getPrototypeOf(v.buf),
      Uint8Array.prototype,
      "a plain Uint8Array, not a Buffer",
    );
    assert.deepEqual(Object.fromEntries(v.headers ?? []), m.headers);
    assert.deepEqual(
      [
        v.priority,
        v.ttlMs,
        v.correlationId,
        v.replyTo,
        v.contentType,
        v.delayMs,
        v.deliverAt,
        v.dedupId,
      ],
      [
        m.priority,
        m.ttl_ms,
        m.correlation_id,
        m.reply_to,
        m.content_type,
        m.delay_ms,
        m.deliver_at_ms,
        m.dedup_id,
      ],
    );
  });
});

Deno.test("grpc codec: a malformed PublishBatch is a WireError, never a crash or a bad view", () => {
  const good = encodeBatch({ messages: [{ destination: "queue:a", body: encoder.encode("xyz") }] });
  for (let cut = 1; cut < good.length; cut++) {
    try {
      decodePublishBatch(good.subarray(0, cut));
    } catch (e) {
      assert.ok(e instanceof WireError, `cut at ${cut}: ${e}`);
    }
  }
  assert.throws(() => decodePublishBatch(new Uint8Array([0x0a, 0x05, 0x0a, 0x7f])), WireError);
  assert.throws(() => decodePublishBatch(new Uint8Array([0x0b])), WireError); // wire type 3
  assert.throws(() => decodePublishBatch(new Uint8Array(10).fill(0xff)), WireError);
  // Unknown fields are skipped (a newer client's additions).
  const withUnknown = new Uint8Array([...good, 0x78, 0x01, 0x85, 0x01, 1, 2, 3, 4]);
  assert.equal(decodePublishBatch(withUnknown).length, 1);
});
