/**
 * Declared topics: retention, replay (`start:`) and durable subscriptions,
 * and their one state record in the store (see topic_state.ts). The broker
 * hands topic declarations, replays and durable subscriptions here; plain
 * topics never come through.
 *
 * @module
 */
import { DECLARED_TOPICS_MAX, DURABLES_MAX } from "../config/mod.ts";
import { hasWildcard, type RetentionOptions, type StartPosition } from "../protocol/mod.ts";
import { ID_SEQ_PER_MS, type Message, type Store } from "../storage/mod.ts";
import { AdminError } from "./admin.ts";
import { Durable } from "./durable.ts";
import type { QueueDeclaration } from "./queue_settings.ts";
import type { SubscriptionOptions } from "./subscription.ts";
import type { Retention, Topic, TopicHost } from "./topic.ts";
import { DurablesStore, type TopicStateRecord, TopicStateStore } from "./topic_state.ts";
import { ExactSubscription, type TopicSubscription } from "./topic_subscription.ts";
import { BrokerError, type Client } from "./types.ts";

/** What declared topics need from the broker. */
export interface DeclaredHost extends TopicHost {
  /** Defaults for limits a DECLARE leaves out. */
  readonly queueMessagesMax: number;
  readonly queueBytesMax: number;
  /** The topic of that name, if it exists. */
  topic(name: string): Topic | undefined;
  /** Creates a topic (throws `LIMIT` when the broker is full). */
  newTopic(name: string): Topic;
  /** A fresh message id. */
  nextId(): number;
  /** Queue declarations, stored in the same state record. */
  queueDeclarations(): QueueDeclaration[];
}

/** A replay or durable subscription request. */
export interface ReplayRequest {
  client: Client;
  dest: string;
  sid: string;
  durable: string | undefined;
  start: StartPosition | undefined;
  ack: "explicit" | "none" | undefined;
}

/** The declared topics of one broker. */
export class DeclaredTopics {
  #host: DeclaredHost;
  #store: Store;
  #declared = new Set<Topic>();
  #state: TopicStateStore;
  /**
   * (cluster) Declared topics are led: each is declared here only while this
   * node leads it (`adopt`/`release`, src/cluster/topic_leader.ts), and the
   * node's state record holds no topic.
   */
  readonly #led: boolean;
  /** (cluster) Per adopted topic: its durables' positions, in a store queue the cluster replicates. */
  #records = new Map<Topic, DurablesStore>();
  /** (cluster) Adopted topics whose durables moved since `durablesSaved()` last asked. */
  #moved = new Set<Topic>();

  constructor(host: DeclaredHost, store: Store, led = false) {
    this.#host = host;
    this.#store = store;
    this.#led = led;
    this.#state = new TopicStateStore(store, () => host.nextId(), () => this.#record());
  }

  /** Declared topics. */
  get size(): number {
    return this.#declared.size;
  }

  /** Durables over all declared topics, connected or not. */
  get durables(): number {
    let n = 0;
    for (const t of this.#declared) n += t.durables.size;
    return n;
  }

  /**
   * Declares `dest` with retention, or changes its limits; limits not given
   * take the queue limits (and no age limit). Resolves when stored.
   */
  declare(dest: string, o: RetentionOptions): Promise<void> {
    if (this.#led) {
      // The cluster's forwarding runs a topic DECLARE at the topic's leader (TopicLeaders.declare);
      // what reaches here (gRPC) would declare it on this node alone.
      throw new BrokerError(
        "BAD_ARGUMENT",
        `in a cluster ${dest} is declared at its leader: send DECLARE over TCP or WebSocket`,
      );
    }
    const h = this.#host;
    const r: Retention = {
      messages: o.messages ?? h.queueMessagesMax,
      bytes: o.bytes ?? h.queueBytesMax,
      ageMs: o.ageMs ?? 0,
    };
    const t = h.topic(dest);
    if (t?.retention !== undefined) t.declare(r, t.store!);
    else {
      if (this.#declared.size >= DECLARED_TOPICS_MAX) {
        throw new BrokerError("LIMIT", `the server holds ${DECLARED_TOPICS_MAX} declared topics`);
      }
      this.#add(t ?? h.newTopic(dest), r);
    }
    return this.#state.save();
  }

  /** A SUB with `durable` or `start`: on a declared topic, bound from a retained message. */
  subscribe(req: ReplayRequest, o: Omit<SubscriptionOptions, "explicit">): TopicSubscription {
    const { dest, durable: name, start } = req;
    if (hasWildcard(dest)) {
      throw new BrokerError(
        "BAD_DESTINATION",
        "a durable subscription or a replay takes one topic, not a wildcard",
      );
    }
    const t = this.#host.topic(dest);
    if (t?.retention === undefined) {
      throw new BrokerError("NOT_DECLARED", `${dest} is not declared: DECLARE it first`);
    }
    if (name !== undefined && req.ack === "none") {
      throw new BrokerError("BAD_ARGUMENT", "a durable subscription takes explicit acks");
    }
    const d = name === undefined ? undefined : this.#durable(t, name, start);
    const after = d?.position ?? startAfter(t, start);
    const explicit = d !== undefined || req.ack === "explicit";
    const s = new ExactSubscription(req.sid, t.name, t, req.client, { explicit, ...o }, d);
    s.replay = true;
    s.bind(t.seqAfter(after));
    if (d !== undefined) void this.#save(t);
    return s;
  }

  /** Deletes durable `name` of topic `dest` (admin); resolves once the state record is stored. */
  deleteDurable(dest: string, name: string): Promise<void> {
    const t = this.#host.topic(dest);
    const d = t?.retention === undefined ? undefined : t.durables.get(name);
    if (d === undefined) {
      throw new AdminError("NOT_FOUND", `${dest} has no durable ${JSON.stringify(name)}`);
    }
    if (d.sub !== undefined) {
      throw new AdminError(
        "CONFLICT",
        `durable ${JSON.stringify(name)} of ${dest} has a live subscription`,
      );
    }
    t!.durables.delete(name);
    return this.#save(t!);
  }

  /** A promise that settles once the state record with what changed by now is stored. */
  saved(): Promise<void> {
    return this.#state.save();
  }

  /** A durable of `topic` may have moved: its position is stored at the end of the tick. */
  moved(topic: Topic | undefined): void {
    void (topic === undefined ? this.#state.save() : this.#save(topic));
  }

  /** A promise that settles once durable positions changed by now are stored. */
  durablesSaved(): Promise<void> {
    if (!this.#led) return this.#state.save();
    const saves = [...this.#moved].map((t) => this.#records.get(t)!.save());
    this.#moved.clear();
    return saves.length === 1 ? saves[0] : Promise.all(saves).then(() => {});
  }

  /** Stores the durables of `t`: its own record in a cluster, else the state record. */
  #save(t: Topic): Promise<void> {
    if (!this.#led) return this.#state.save();
    const rec = this.#records.get(t);
    if (rec === undefined) return Promise.resolve();
    this.#moved.add(t);
    return rec.save();
  }

  /** Periodic retention work. */
  sweep(now: number): void {
    for (const t of this.#declared) t.sweep(now);
  }

  /** Declarations, durables and retained messages from the store, at start; returns the queue declarations. */
  restore(logs: string[]): QueueDeclaration[] {
    const h = this.#host;
    const rec = this.#state.load();
    if (this.#led) {
      // The logs are copies the cluster replicates; a topic is declared when this node leads it.
      for (const name of logs) this.#store.openQueue(name);
      return rec?.queues ?? [];
    }
    for (const x of rec?.topics ?? []) {
      this.#add(h.topic(x.name) ?? h.newTopic(x.name), {
        messages: x.messages,
        bytes: x.bytes,
        ageMs: x.ageMs,
      });
    }
    // A log whose declaration was lost (not yet stored at a crash) is kept under default limits.
    for (const name of logs) {
      if (h.topic(name) !== undefined) continue;
      this.#add(h.newTopic(name), {
        messages: h.queueMessagesMax,
        bytes: h.queueBytesMax,
        ageMs: 0,
      });
    }
    for (const x of rec?.durables ?? []) {
      const t = h.topic(x.topic);
      if (t === undefined) continue;
      const d = new Durable(x.name, x.acked);
      d.skipped = x.skipped;
      t.durables.set(d.name, d);
    }
    for (const t of this.#declared) {
      t.restore([...t.store!.messages()].sort((a, b) => a.id - b.id));
    }
    return rec?.queues ?? [];
  }

  /**
   * (cluster) This node leads declared topic `name`: declared here with
   * `retention`, over its replicated store and the log recovered in it
   * (oldest first); a topic adopted already takes the new limits.
   */
  adopt(name: string, retention: Retention, msgs: readonly Message[], durables: string): void {
    const h = this.#host;
    const t = h.topic(name) ?? h.newTopic(name);
    if (t.retention !== undefined) return t.declare(retention, t.store!);
    t.adopt(retention, this.#store.openQueue(name), msgs);
    this.#declared.add(t);
    const rec = new DurablesStore(this.#store, durables, () => h.nextId(), () => ({
      v: 1,
      durables: [...t.durables.values()].map((d) => ({
        name: d.name,
        acked: d.settle(),
        skipped: d.skipped,
      })),
    }));
    for (const x of rec.load()?.durables ?? []) {
      if (this.durables >= DURABLES_MAX) break;
      const d = new Durable(x.name, x.acked);
      d.skipped = x.skipped;
      t.durables.set(d.name, d);
    }
    this.#records.set(t, rec);
  }

  /** (cluster) This node no longer leads declared topic `name`; returns its replaying subscriptions. */
  release(name: string): TopicSubscription[] {
    const t = this.#host.topic(name);
    if (t?.retention === undefined) return [];
    this.#declared.delete(t);
    this.#records.delete(t);
    this.#moved.delete(t);
    return t.release();
  }

  /** The named durable of `t`, created (starting at `start`) if new. */
  #durable(t: Topic, name: string, start: StartPosition | undefined): Durable {
    let d = t.durables.get(name);
    if (d?.sub !== undefined) {
      throw new BrokerError(
        "DURABLE_IN_USE",
        `durable ${JSON.stringify(name)} of ${t.name} has a live subscription`,
      );
    }
    if (d === undefined) {
      if (this.durables >= DURABLES_MAX) {
        throw new BrokerError("LIMIT", `the server holds ${DURABLES_MAX} durables`);
      }
      d = new Durable(name, startAfter(t, start));
      t.durables.set(name, d);
    }
    return d;
  }

  #add(t: Topic, r: Retention): void {
    t.declare(r, this.#store.openQueue(t.name));
    this.#declared.add(t);
  }

  /** The state record: declarations, and durable positions (live ones brought up to date). */
  #record(): TopicStateRecord {
    const rec: TopicStateRecord = {
      v: 1,
      topics: [],
      durables: [],
      queues: this.#host.queueDeclarations(),
    };
    if (this.#led) return rec;
    for (const t of this.#declared) {
      const r = t.retention!;
      rec.topics.push({ name: t.name, messages: r.messages, bytes: r.bytes, ageMs: r.ageMs });
      for (const d of t.durables.values()) {
        rec.durables.push({ topic: t.name, name: d.name, acked: d.settle(), skipped: d.skipped });
      }
    }
    return rec;
  }
}

/** The position (last settled id) a new durable or a replay starts after. */
function startAfter(t: Topic, start: StartPosition | undefined): number {
  switch (start?.kind) {
    case undefined:
    case "new":
      return t.lastId;
    case "first":
      return -1;
    case "id":
      return start.id - 1;
    case "time":
      return start.ms * ID_SEQ_PER_MS - 1;
  }
}
