/**
 * Topic fan-out micro benchmark: one publish to 1 and 4 caught-up
 * subscribers through the broker, with a client that only counts frames
 * (the broker's own cost, without sockets).
 */
import { Broker, type Client, InFlight } from "../../src/broker/mod.ts";
import { MemoryStore, type Message } from "../../src/storage/mod.ts";

class CountingClient implements Client {
  readonly id = 1;
  readonly inflight = new InFlight();
  frames = 0;
  wantsMore(): boolean {
    return true;
  }
  sendMsg(_head: Uint8Array, _msg: Message, _delivery: number): void {
    this.frames++;
  }
  slowConsumer(): void {}
  delivered(): void {}
}

function broker(): Broker {
  return new Broker({
    store: new MemoryStore(),
    maxDeliveries: 5,
    queueMessagesMax: 1e7,
    queueBytesMax: 2 ** 40,
    queueOverflow: "reject",
    slowConsumer: "disconnect",
    subPendingMessagesMax: 65536,
    subPendingBytesMax: 2 ** 26,
    ackTimeoutMs: 30_000,
    prefetch: 1000,
  });
}

const payload = new Uint8Array(16);
for (const subs of [1, 4]) {
  const b = broker();
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
  const b = broker();
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
