/**
 * A broker over the memory store and a fake clock, and small helpers to
 * publish and subscribe as the connection does, for the broker unit tests.
 */
import assert from "node:assert/strict";
import { Broker, type BrokerOptions, type Subscription } from "../../src/broker/mod.ts";
import { defaultPubOptions, type PubOptions, type SubOptions } from "../../src/protocol/mod.ts";
import { MemoryStore } from "../../src/storage/mod.ts";
import { FakeClock } from "../fake_clock.ts";
import type { FakeClient } from "./fake_client.ts";

/** A broker and the clock it reads. */
export interface TestBroker {
  broker: Broker;
  clock: FakeClock;
}

/** A broker with test defaults (small limits are set per test), reading a fake clock. */
export function testBroker(o: Partial<BrokerOptions> = {}): TestBroker {
  const clock = new FakeClock();
  return { broker: new Broker(testBrokerOptions(clock, o)), clock };
}

/** The test defaults of `testBroker` over `o` (a memory store unless `o` names one). */
export function testBrokerOptions(clock: FakeClock, o: Partial<BrokerOptions> = {}): BrokerOptions {
  return {
    store: new MemoryStore(),
    maxDeliveries: 5,
    queueMessagesMax: 10_000,
    queueBytesMax: 1 << 20,
    queueOverflow: "reject",
    slowConsumer: "disconnect",
    subPendingMessagesMax: 1000,
    subPendingBytesMax: 1 << 20,
    ackTimeoutMs: 30_000,
    prefetch: 1000,
    clock,
    ...o,
  };
}

/** Publishes `text` to `dest` (options as the parser makes them); returns the id. */
export function pub(
  broker: Broker,
  dest: string,
  text: string,
  o?: Partial<PubOptions>,
): number {
  const opts: PubOptions | undefined = o === undefined
    ? undefined
    : { ...defaultPubOptions(), ...o };
  const id = broker.publish(dest, new TextEncoder().encode(text), opts);
  assert.equal(typeof id, "number", "the memory store confirms at once");
  return id as number;
}

/** Subscribes as the connection does (subscribe, then activate after the OK). */
export function sub(
  broker: Broker,
  client: FakeClient,
  dest: string,
  sid: string,
  o: Partial<SubOptions> = {},
): Subscription {
  const s = broker.subscribe(client, dest, sid, {
    sid,
    ack: undefined,
    prefetch: undefined,
    ackTimeoutMs: undefined,
    ...o,
  });
  s.activate();
  return s;
}

/** Moves the clock on by `ms` and runs the periodic sweep, as the server's timer does. */
export function advance(t: TestBroker, ms: number): void {
  t.clock.advance(ms);
  t.broker.sweep();
}

/** The stats of queue `name` (fails if the broker has no such queue). */
export function queueStats(broker: Broker, name: string) {
  const q = broker.queueStats({ offset: 0, limit: 1000 }).list.find((s) => s.name === name);
  assert.ok(q, `no queue ${name}`);
  return q;
}

/** The stats of topic `name` (fails if the broker has no such topic). */
export function topicStats(broker: Broker, name: string) {
  const t = broker.topicStats({ offset: 0, limit: 1000 }).list.find((s) => s.name === name);
  assert.ok(t, `no topic ${name}`);
  return t;
}
