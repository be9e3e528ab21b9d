/**
 * `RemoteSubscription` at the broker's seams: a fake `Client` (the client
 * connection) and a recording upstream port (the proxy connection to a
 * leader). Two leaders can hand one client the same message id; the second
 * delivery gets a fresh client-visible id, and an ACK/NACK of either reaches
 * its own leader with that leader's id. A redelivery by the leader replaces
 * the delivery in flight under the id the client already knows.
 */
import assert from "node:assert/strict";
import type { ReplyWait } from "../../src/broker/mod.ts";
import { FrameParser, type MsgFrame } from "../../src/client/mod.ts";
import { type IdSource, RemoteSubscription, type UpstreamPort } from "../../src/cluster/mod.ts";
import { FakeClient } from "../broker/fake_client.ts";

const encoder = new TextEncoder();

/** An upstream port that records the settles it is asked to send. */
class RecordingUpstream implements UpstreamPort {
  readonly sent: string[] = [];
  constructor(readonly node: string) {}
  ack(upstreamId: number, clientId: number, _reply: ReplyWait): void {
    this.sent.push(`ACK ${upstreamId} (client ${clientId})`);
  }
  nack(upstreamId: number, clientId: number, delayMs: number, _reply: ReplyWait): void {
    this.sent.push(`NACK ${upstreamId} (client ${clientId}) ${delayMs}`);
  }
  unsub(sid: string, forget: boolean): void {
    this.sent.push(`UNSUB ${sid} ${forget}`);
  }
  resume(): void {}
}

/** Parses MSG bytes as the upstream reads them and hands each frame to `sub`. */
function deliver(sub: RemoteSubscription, wire: string, now = 1): void {
  const parser = new FrameParser({
    onMsg: (f: MsgFrame) => sub.deliver(f, now),
    onOk: () => {},
    onErr: () => {},
    onPing: () => {},
    onPong: () => {},
    onInfo: () => {},
  });
  parser.push(encoder.encode(wire));
}

const noReply: ReplyWait = { answer: () => {} };

Deno.test("RemoteSubscription: the same id from two leaders gets a fresh one; settles map back", () => {
  const client = new FakeClient();
  let next = Number.MAX_SAFE_INTEGER;
  const ids: IdSource = {
    freshId: () => {
      let id: number;
      do id = next--; while (client.inflight.has(id));
      return id;
    },
  };
  const up1 = new RecordingUpstream("n1");
  const up3 = new RecordingUpstream("n3");
  const a = new RemoteSubscription(client, "queue:a", "sa", {
    sid: "sa",
    ack: undefined,
    prefetch: undefined,
    ackTimeoutMs: undefined,
  }, ids);
  const b = new RemoteSubscription(client, "queue:b", "sb", {
    sid: "sb",
    ack: undefined,
    prefetch: undefined,
    ackTimeoutMs: undefined,
  }, ids);
  a.upstream = up1;
  b.upstream = up3;
  const id = 1_830_000_000_000 * 1024 + 7;

  deliver(a, `MSG queue:a sub_id:sa msg_id:${id} 2\r\nA1\r\n`);
  deliver(b, `MSG queue:b sub_id:sb msg_id:${id} 2\r\nB1\r\n`);
  const [m1, m2] = client.take();
  assert.equal(m1.id, id, "the first keeps the leader's id");
  assert.equal(m1.sid, "sa");
  assert.notEqual(m2.id, id, "the second gets a fresh one");
  assert.equal(m2.id, Number.MAX_SAFE_INTEGER);
  assert.equal(m2.sid, "sb");
  assert.equal(client.inflight.size, 2);
  assert.equal(a.inflight.size, 1);
  assert.equal(b.inflight.size, 1);

  // The client ACKs the fresh id: n3 hears its own id; NACKs the other: n1 hears its id.
  const db = client.inflight.take(m2.id)!;
  db.sub.ack(db, noReply);
  assert.deepEqual(up3.sent, [`ACK ${id} (client ${m2.id})`]);
  const da = client.inflight.take(id)!;
  da.sub.nack(da, 250, noReply);
  assert.deepEqual(up1.sent, [`NACK ${id} (client ${id}) 250`]);
  assert.equal(client.inflight.size, 0);

  // n1 redelivers (its ack timeout) a message still in flight here: it replaces the old
  // delivery under the id the client already has, counted as a second delivery.
  deliver(a, `MSG queue:a sub_id:sa msg_id:${id + 1} 2\r\nA2\r\n`);
  deliver(b, `MSG queue:b sub_id:sb msg_id:${id + 1} 2\r\nB2\r\n`);
  const [, fresh] = client.take();
  assert.equal(fresh.id, Number.MAX_SAFE_INTEGER - 1);
  deliver(b, `MSG queue:b sub_id:sb msg_id:${id + 1} delivery:2 2\r\nB2\r\n`);
  const [again] = client.take();
  assert.equal(again.id, fresh.id, "a redelivery keeps the client-visible id");
  assert.equal(again.delivery, 2);
  assert.equal(client.inflight.size, 2, "replaced, not added");
  assert.equal(b.inflight.size, 1);

  // The upstream of b breaks: its deliveries leave the client's in-flight index (an ACK of
  // them is then one of an unknown id), a's stay.
  b.detach();
  assert.equal(client.inflight.has(fresh.id), false);
  assert.equal(client.inflight.has(id + 1), true);
  // Closing a tells its leader (UNSUB) and takes its deliveries out of flight.
  a.close(false);
  assert.deepEqual(up1.sent.at(-1), "UNSUB sa false");
  assert.equal(client.inflight.size, 0);
});

Deno.test("RemoteSubscription: ack:none deliveries are not in flight and keep the leader's id", () => {
  const client = new FakeClient();
  const s = new RemoteSubscription(
    client,
    "queue:a",
    "s",
    { sid: "s", ack: "none", prefetch: undefined, ackTimeoutMs: undefined },
    { freshId: () => 1 },
  );
  s.upstream = new RecordingUpstream("n1");
  deliver(s, "MSG queue:a sub_id:s msg_id:42 1\r\nx\r\n");
  assert.deepEqual(client.noAckIds, [42]);
  assert.equal(client.inflight.size, 0);
  assert.equal(client.take()[0].id, 42);
});
