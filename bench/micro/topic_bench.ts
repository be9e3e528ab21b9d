/**
 * Topic fan-out micro benchmark: one publish to 1 and 4 caught-up
 * subscribers through the broker, with a client that only counts frames
 * (the broker's own cost, without sockets).
 */
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
