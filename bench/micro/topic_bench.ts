/**
 * Topic fan-out micro benchmark: one publish to 1 and 4 caught-up
 * subscribers through the broker, with a client that only counts frames
 * (the broker's own cost, without sockets); and a queue's publish and
 * dispatch, without and with explicit acks.
 */
import type { Message } from "../../src/storage/mod.ts";
import { benchBroker, CountingClient } from "./counting.ts";

const payload = new Uint8Array(16);
for (const subs of [1, 4]) {
  const b = benchBroker();
  const client = new CountingClient();
  for (let i = 0; i < subs; i++) b.subscribe(client, "topic:fan", `s${i}`, {} as never);
  Deno.bench({
    name: `topic: publish to ${subs} subscriber(s)`,
    group: "topic",
    fn() {
      b.publish("topic:fan", payload, undefined);
    },
  });
}

{
  const b = benchBroker();
  const client = new CountingClient();
  const sub = b.subscribe(client, "queue:work", "w", { ack: "none" } as never);
  sub.activate();
  Deno.bench({
    name: "queue: publish + dispatch to an ack:none consumer",
    group: "queue",
    fn() {
      b.publish("queue:work", payload, undefined);
    },
  });
}

{
  // A consumer with explicit acks whose deliveries in flight swing with each
  // ACK line: 166 publishes delivered, then one line's worth settled.
  const b = benchBroker();
  const ids: number[] = [];
  const client = new (class extends CountingClient {
    override sendMsg(_head: Uint8Array, msg: Message): void {
      ids.push(msg.id);
    }
  })();
  const sub = b.subscribe(client, "queue:acked", "w", { ack: "explicit", prefetch: 1000 } as never);
  sub.activate();
  Deno.bench({
    name: "queue: 166 publishes to an explicit-ack consumer, then their ACK line settled",
    group: "queue",
    fn() {
      b.tick();
      for (let i = 0; i < 166; i++) b.publish("queue:acked", payload, undefined);
      for (const id of ids) {
        const d = client.inflight.take(id)!;
        d.sub.settle(d);
      }
      ids.length = 0;
      sub.activate();
    },
  });
}
