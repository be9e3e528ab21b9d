/**
 * What a SUB makes: a queue consumer, a replay or durable subscription of a
 * declared topic, or a plain (maybe wildcard) topic subscription, with the
 * server's defaults filled in. Kept apart from broker.ts because it is the
 * one place that chooses between the kinds of subscription; once made, each
 * kind is served by its own set (`QueueSet`, `DeclaredTopics`, `TopicSet`).
 *
 * @module
 */
import { hasWildcard, type SubOptions } from "../protocol/mod.ts";
import type { DeclaredTopics } from "./declared.ts";
import { QueueConsumer } from "./queue.ts";
import type { QueueSet } from "./queue_set.ts";
import type { Subscription } from "./subscription.ts";
import type { TopicHost } from "./topic.ts";
import type { TopicSet } from "./topic_set.ts";
import { PatternSubscription, type TopicSubscription } from "./topic_subscription.ts";
import { BrokerError, type BrokerOptions, type Client, type TopicInterest } from "./types.ts";

/** The broker's parts a new subscription is made in. */
export interface SubscribeParts {
  /** The broker: the host of plain topic subscriptions, its defaults and the cluster's link. */
  host: TopicHost & {
    readonly options: BrokerOptions;
    readonly interest: TopicInterest | undefined;
  };
  qs: QueueSet;
  ts: TopicSet;
  declared: DeclaredTopics;
}

/** `Broker.subscribe`: starts a subscription of `client` to `dest` (`sid` unique on the connection). */
export function subscribe(
  p: SubscribeParts,
  client: Client,
  dest: string,
  sid: string,
  o: SubOptions,
): Subscription {
  const prefetch = o.prefetch ?? p.host.options.prefetch;
  const ackTimeoutMs = o.ackTimeoutMs ?? p.host.options.ackTimeoutMs;
  if (dest.startsWith("queue:")) {
    if (o.durable !== undefined || o.start !== undefined) {
      throw new BrokerError("BAD_ARGUMENT", "durable and start are for declared topics");
    }
    const q = p.qs.open(dest);
    const c = new QueueConsumer(sid, q, client, {
      explicit: o.ack !== "none",
      prefetch,
      ackTimeoutMs: o.ackTimeoutMs ?? q.settings.ackTimeoutMs,
      filter: o.filter,
    });
    q.addConsumer(c);
    return c;
  }
  let s: TopicSubscription;
  if (o.durable !== undefined || o.start !== undefined) {
    s = p.declared.subscribe(
      { client, dest, sid, durable: o.durable, start: o.start, ack: o.ack },
      { prefetch, ackTimeoutMs, filter: o.filter },
    );
  } else {
    const so = { explicit: o.ack === "explicit", prefetch, ackTimeoutMs, filter: o.filter };
    s = hasWildcard(dest)
      ? p.ts.subscribePattern(new PatternSubscription(sid, dest, client, p.host, so))
      : p.ts.subscribeExact(sid, dest, client, so);
  }
  p.ts.tracked(s);
  p.host.interest?.added(s.pattern);
  return s;
}
