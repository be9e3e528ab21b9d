/**
 * Solo topics: a topic with one exact subscriber and nothing else (no other
 * binding, no held message, not declared, never blocked, no trouble
 * counted) has no `Topic`. The broker's topics map points at the
 * subscription, which keeps the topic's name and a `SoloTopic`: the figures
 * a `Topic` would show. Most subscriptions are to a topic of their own and
 * most topics are idle most of the time, so this is the common case: a
 * `Topic` (12 fields) and its one-slot bindings array were ~0.16 KiB of
 * heap per subscription on Bun, 0.3 of its 0.5 KiB.
 *
 * A solo topic is made a `Topic` on first need (`TopicSet.promote`): a
 * publish to it, a second subscriber or a wildcard that matches it, a
 * declaration, a look at it through `Broker.topics`. Nothing is published
 * while it is solo, so its figures stay as they are until then. The sweep
 * makes a `Topic` solo again once it was idle for a sweep and is plain
 * again with its one exact subscriber (no delivery of it in flight): a topic
 * published to all the time stays a `Topic`, one published to now and then
 * pays a `Topic` per burst.
 *
 * @module
 */
import type { TopicStats } from "./stats.ts";
import type { TopicHost } from "./topic.ts";
import type { TopicSet } from "./topic_set.ts";

/**
 * What a solo topic keeps beside its subscription: the set to make its
 * `Topic` in, and its counters (4 fields: 48 B on Bun, where a `Topic` and
 * its bindings array are 160). One shared instance (all zero) for
 * every solo topic that never had a message.
 */
export class SoloTopic {
  constructor(
    readonly set: TopicSet,
    /** Messages published to it. */
    readonly published: number,
    /** Deliveries made from it (first deliveries). */
    readonly delivered: number,
    /** Id of the last message published to it (0: none). */
    readonly lastId: number,
  ) {}

  /** Its set's host (as `Topic.host`: an exact subscription reads either). */
  get host(): TopicHost {
    return this.set.host;
  }
}

/** The admin figures of solo topic `name`, as its `Topic` would give them (one subscriber, caught up). */
export function soloStats(name: string, t: SoloTopic): TopicStats {
  return {
    name,
    declared: false,
    retention: null,
    subscribers: 1,
    retained: 0,
    retained_bytes: 0,
    max_lag_msgs: 0,
    max_lag_bytes: 0,
    published: t.published,
    delivered: t.delivered,
    dropped: 0,
    slow_consumers: 0,
    retention_dropped: 0,
    durables: [],
  };
}
