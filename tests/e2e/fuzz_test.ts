/**
 * Seeded fuzzing of a live server: random bytes and mutated valid frames
 * from several connections at once; afterwards the server must have closed
 * nothing for an internal error, and a well-behaved client must still work.
 */
import assert from "node:assert/strict";
import { RawClient, rng, startTestBroker } from "../helpers.ts";

const CORPUS = [
  'CONNECT {"version":"1.0","client_id":"fz"}\r\n',
  "PUB queue:fz 5\r\nhello\r\n",
  "PUB topic:fz.a priority:3 ttl:1000 correlation_id:x reply_to:topic:r 2\r\nhi\r\n",
  "PUB topic:fz.b hdr:9 11\r\nK: v\r\n\r\n\r\nab\r\n",
  "SUB topic:fz.* sub_id:a\r\n",
  "SUB queue:fz sub_id:q prefetch:2 ack:explicit\r\n",
  "SUB topic:fz.a sub_id:e ack:explicit prefetch:1 ack_timeout:50\r\n",
  "UNSUB a\r\n",
  "ACK msg_id:1 msg_id:2\r\n",
  "NACK msg_id:3 delay:10\r\n",
  "PING\r\n",
  "PONG\r\n",
  "INFO\r\n",
];

function mutate(r: () => number, s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  const out = Array.from(b);
  const edits = 1 + Math.floor(r() * 3);
  for (let e = 0; e < edits && out.length > 0; e++) {
    const i = Math.floor(r() * out.length);
    const kind = r();
    if (kind < 0.3) out[i] = Math.floor(r() * 256);
    else if (kind < 0.5) out.splice(i, 1);
    else if (kind < 0.7) out.splice(i, 0, [32, 10, 13, 58, 48][Math.floor(r() * 5)]);
    else if (kind < 0.85) out.splice(i, 0, ...out.slice(i, i + Math.floor(r() * 20)));
    else out[i] = 48 + Math.floor(r() * 10);
  }
  return new Uint8Array(out);
}

function garbage(r: () => number): Uint8Array {
  const n = Math.floor(r() * 300);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

Deno.test("fuzz: random and mutated frames never break the server", async () => {
  const broker = await startTestBroker(["--max-payload", "4096", "--ack-timeout", "100"]);
  try {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const conns = await Promise.all([1, 2, 3].map(() => RawClient.connect(broker.port)));
      for (let k = 0; k < 60; k++) {
        const c = conns[Math.floor(r() * conns.length)];
        const pick = r();
        const data = pick < 0.15
          ? garbage(r)
          : pick < 0.6
          ? mutate(r, CORPUS[Math.floor(r() * CORPUS.length)])
          : new TextEncoder().encode(CORPUS[Math.floor(r() * CORPUS.length)]);
        try {
          await c.send(data);
        } catch {
          // the server may have closed this one for a framing error: that is allowed
        }
      }
      await new Promise((res) => setTimeout(res, 5));
      for (const c of conns) await c.close();
    }
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(broker.server.closedByReason.INTERNAL_ERROR, 0, "no server bug was hit");
    // A well-behaved client still gets the full service.
    const sub = await RawClient.connect(broker.port);
    const pub = await RawClient.connect(broker.port);
    await sub.send("SUB topic:after sub_id:ok\r\nSUB queue:after sub_id:q\r\n");
    assert.equal(await sub.line(), "OK");
    assert.equal(await sub.line(), "OK");
    await pub.pub("topic:after", "still");
    await pub.pub("queue:after", "works");
    assert.match(await pub.line(), /^OK msg_id:/);
    assert.match(await pub.line(), /^OK msg_id:/);
    const got = (await sub.msgs(2)).map((f) => new TextDecoder().decode(f.payload)).sort();
    assert.deepEqual(got, ["still", "works"]);
    await sub.close();
    await pub.close();
  } finally {
    await broker.stop();
  }
});
