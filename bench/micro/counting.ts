/**
 * What the broker micro benchmarks share: a client that only counts the
 * frames it is sent, and a broker over the memory store with limits that a
 * benchmark never reaches (the broker's own cost, without sockets).
 */
import { Broker, type Client, InFlight } from "../../src/broker/mod.ts";
import { MemoryStore, type Message } from "../../src/storage/mod.ts";

/** A `Client` that always takes more and counts what it is sent. */
export class CountingClient implements Client {
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

/** A broker with limits out of a benchmark's reach. */
export function benchBroker(): Broker {
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
