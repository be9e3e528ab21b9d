/**
 * The SDK's body codecs: a property test that JSON and MessagePack encode and
 * decode any value they hold to an equal one, the content types a codec
 * sets, and round trips through a real broker over TCP (`msg.decode()`
 * picks the codec from the content type the publisher's codec set).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BadArgumentError,
  codecOf,
  connect,
  decodeBody,
  decodeEnvelope,
  encodeBody,
  type Message,
} from "../src/client/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { startTestBroker } from "./helpers.ts";

/** Values MessagePack holds exactly: no undefined, no NaN/-0 (which compare unequal to themselves). */
const packable = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)),
    fc.string(),
    fc.uint8Array(),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(fc.string().filter((k) => k !== "__proto__"), tie("value"), { maxKeys: 5 }),
  ),
})).value;

Deno.test("codec: msgpack round-trips any value it holds (property)", () => {
  fc.assert(
    fc.property(packable, (v) => {
      const back = decodeBody(encodeBody(v, "msgpack"), "msgpack");
      assert.deepEqual(normalise(back), normalise(v));
    }),
    { seed: 12, numRuns: 500 },
  );
});

Deno.test("codec: json round-trips any JSON value (property)", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      assert.deepEqual(decodeBody(encodeBody(v, "json"), "json"), JSON.parse(JSON.stringify(v)));
    }),
    { seed: 12, numRuns: 500 },
  );
});

Deno.test("codec: content types, raw, and values a codec cannot take", () => {
  assert.equal(codecOf("application/json; charset=utf-8"), "json");
  assert.equal(codecOf("application/cloudevents+json"), "json");
  assert.equal(codecOf("application/x-msgpack"), "msgpack");
  assert.equal(codecOf("application/octet-stream"), "raw");
  assert.equal(codecOf("text/plain"), undefined);
  assert.equal(codecOf(undefined), undefined);
  const bytes = new Uint8Array([0, 255]);
  assert.equal(encodeBody(bytes, "raw"), bytes, "raw bytes are not copied");
  assert.deepEqual(encodeBody("hé", "raw"), new TextEncoder().encode("hé"));
  assert.throws(() => encodeBody({}, "raw"), BadArgumentError);
  assert.throws(() => encodeBody(undefined, "json"), BadArgumentError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => encodeBody(1, "yaml" as any), BadArgumentError);
});

Deno.test("codec: publish with a codec, decode by content type, over a real broker", async () => {
  const broker = await startTestBroker();
  const c = await connect(`127.0.0.1:${broker.port}`, { runtime: denoRuntime, reconnect: false });
  try {
    const sub = await c.subscribe("queue:codec", { ack: "none" });
    const value = { id: 7, tags: ["a", "b"], price: 9.99, blob: new Uint8Array([1, 2, 3]) };
    await c.publish("queue:codec", value, { codec: "msgpack" });
    await c.publish("queue:codec", { id: 8 }, { codec: "json" });
    await c.publish("queue:codec", new Uint8Array([9, 9]), { codec: "raw" });
    await c.publish("queue:codec", { id: 9 }, {
      codec: "json",
      contentType: "application/vnd.x+json",
    });
    await c.publish("queue:codec", "plain text");
    const got: Message[] = [];
    for await (const m of sub) if (got.push(m) === 5) break;
    assert.deepEqual(got.map((m) => m.contentType), [
      "application/msgpack",
      "application/json",
      "application/octet-stream",
      "application/vnd.x+json",
      undefined,
    ]);
    assert.deepEqual(normalise(got[0].decode()), normalise(value));
    assert.deepEqual(got[1].decode(), { id: 8 });
    assert.deepEqual(got[1].json(), { id: 8 }, "json() stays");
    assert.deepEqual(got[2].decode(), new Uint8Array([9, 9]));
    assert.deepEqual(got[3].decode(), { id: 9 }, "a +json type decodes as JSON");
    assert.throws(() => got[4].decode(), BadArgumentError);
    assert.equal(got[4].decode("raw") instanceof Uint8Array, true);
    assert.ok(
      got[0].size < JSON.stringify({ ...value, blob: [1, 2, 3] }).length,
      "msgpack is smaller",
    );
  } finally {
    await c.close();
    await broker.stop();
  }
});

Deno.test("envelope: a delivered message as one value and back, over a real broker", async () => {
  const broker = await startTestBroker();
  const c = await connect(`127.0.0.1:${broker.port}`, { runtime: denoRuntime, reconnect: false });
  try {
    const sub = await c.subscribe("topic:env");
    const id = await c.publish("topic:env", { a: 1 }, {
      codec: "json",
      headers: { "Trace-Id": "t1" },
      priority: 4,
      correlationId: "c-9",
      replyTo: "queue:back",
      ttlMs: 60_000,
    });
    let got: Message | undefined;
    for await (const m of sub) {
      got = m;
      break;
    }
    const e = decodeEnvelope(got!.toEnvelope());
    assert.deepEqual({ ...e, body: new TextDecoder().decode(e.body) }, {
      destination: "topic:env",
      id: Number(id),
      delivery: 1,
      priority: 4,
      ttlMs: 60_000,
      correlationId: "c-9",
      replyTo: "queue:back",
      contentType: "application/json",
      headers: [["Trace-Id", "t1"]],
      body: '{"a":1}',
    });
  } finally {
    await c.close();
    await broker.stop();
  }
});

/** Byte arrays as plain Uint8Array (msgpackr gives a Buffer on some runtimes), for deepEqual. */
function normalise(v: unknown): unknown {
  if (v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  }
  return v;
}
