/**
 * Queue micro benchmark in the shape of `deno task bench`'s `queue`
 * scenario, without sockets: two explicit-ack consumers at their prefetch,
 * thousands of messages ready behind them, and each round one consumer's
 * ACK line settled (the room it frees refilled by dispatch) while as many
 * publishes arrive (they find both consumers full and wait in the store).
 */
import type { Message } from "../../src/storage/mod.ts";
import { benchBroker, CountingClient } from "./counting.ts";

/** Ids a consumer was sent and has not acked yet, oldest first. */
class AckingClient extends CountingClient {
  ids: number[] = [];
  override sendMsg(_head: Uint8Array, msg: Message): void {
    this.ids.push(msg.id);
  }
}

const LINE = 166;
const payload = new Uint8Array(16);
const b = benchBroker();
const clients = [new AckingClient(), new AckingClient()];
const subs = clients.map((c, i) =>
  b.subscribe(c, "queue:work", `w${i}`, { ack: "explicit", prefetch: 1000 } as never)
);
for (const s of subs) s.activate();
b.tick();
for (let i = 0; i < 6000; i++) b.publish("queue:work", payload, undefined);
let turn = 0;

Deno.bench({
  name: `queue: 2 consumers at prefetch, ${LINE} publishes and one ACK line of ${LINE} ids`,
  group: "queue",
  fn() {
    b.tick();
    for (let i = 0; i < LINE; i++) b.publish("queue:work", payload, undefined);
    const c = clients[turn];
    turn ^= 1;
    const ids = c.ids.splice(0, LINE);
    for (const id of ids) {
      const d = c.inflight.take(id)!;
      d.sub.settle(d);
    }
    subs[turn ^ 1].activate();
  },
});
