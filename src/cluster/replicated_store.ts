/**
 * `ReplicatedStore`: the node's real store (memory or log) wrapped so that
 * each queue is replicated to its replica set. The broker does not learn
 * about replication: on the queue's leader, `push` appends locally and to
 * the followers and resolves once a majority of the set holds the record;
 * a removal (ACK, drop, dead-letter, purge) is replicated the same way, and
 * `synced()` (which ACK and NACK replies wait for, `waitsForSync` being
 * true) covers the majority of the tick's removals. On a node that does not
 * lead the queue, the queue hands out nothing (`take` finds nothing) and
 * refuses writes with `NOT_LEADER` or `UNAVAILABLE`; its copy is kept by
 * repl_follower.ts from the leader's records.
 *
 * A declared topic's log (`topic:<name>`) and its durables' positions
 * (`durables:topic:<name>`) are replicated the same way, under the topic's
 * own leadership (topic_leader.ts). The state records (queue
 * declarations, bindings) and scheduled topic messages go to the inner
 * store as they are (not replicated, docs/CLUSTERING.md).
 *
 * @module
 */
import { BrokerError, IdMap } from "../broker/mod.ts";
import {
  type Message,
  MessageState,
  type QueueStore,
  type RemoveReason,
  type ScanCursor,
  type Store,
  type SyncStats,
} from "../storage/mod.ts";
import type { FrameWriter } from "./repl_frames.ts";
import { DURABLES_PREFIX } from "./topic_leader.ts";
import type { ReplState, ReplStateFiles } from "./repl_state.ts";

/** What a queue is to this node. */
export type Role = "none" | "follower" | "recovering" | "leader";

/** What a replicated queue asks of replication (replication.ts). */
export interface ReplHost {
  /** Whether `q` may take a write now (still its leader, lease alive); steps it down when not. */
  writable(q: ReplicatedQueueStore): boolean;
  /** Sends a new message to the followers. */
  pub(q: ReplicatedQueueStore, msg: Message): void;
  /** Sends a removal to the followers. */
  del(q: ReplicatedQueueStore, id: number): void;
  /** Sends a NACK's delay to the followers: message `id` is not due before `dueAt`. */
  due(q: ReplicatedQueueStore, id: number, dueAt: number): void;
  /** The promise of this tick's records of `q` on a majority (one per queue per tick). */
  commit(q: ReplicatedQueueStore): Promise<void>;
  /** Why `q` refuses a write here: `NOT_LEADER <leader>` or `UNAVAILABLE`. */
  refusal(q: ReplicatedQueueStore): BrokerError;
  /** Loads a queue's saved state. */
  load(name: string): ReplState;
  /**
   * Holds a publish while this node claims or recovers the queue: the promise
   * settles when it is stored on a majority once the queue is served, or
   * fails after the commit bound. Undefined: it cannot be held here.
   */
  hold(q: ReplicatedQueueStore, msg: Message, dueAt: number): Promise<void> | undefined;
}

/** A publish waiting for its queue to be served here. */
export interface Held {
  readonly msg: Message;
  /** Its scheduled time (0: none), as `push` was given it. */
  readonly dueAt: number;
  /** When it was held (ms): past `CLUSTER_COMMIT_MS_MAX` it is refused. */
  readonly at: number;
  resolve(): void;
  reject(e: unknown): void;
}

/** One pending commit: the records of one tick of one queue. */
export class Batch {
  /** Its number in the queue's leadership: a follower that acknowledged it holds every one before. */
  readonly no: number;
  /** When it was made (ms): past `CLUSTER_COMMIT_MS_MAX` it fails. */
  readonly createdAt: number;
  /** Settles when a majority holds its records (or fails with `UNAVAILABLE`). */
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (e: unknown) => void;
  /** Called when it commits (a new leader's snapshot round). */
  onCommit?: () => void;

  constructor(no: number, now: number) {
    this.no = no;
    this.createdAt = now;
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.promise.catch(() => {}); // a caller may drop it
  }
}

/** A queue's store with replication (see the module comment). */
export class ReplicatedQueueStore implements QueueStore {
  readonly name: string;
  /** The node's own store of the queue (memory or log): where its copy lives. */
  readonly inner: QueueStore;
  /**
   * Every live message by id: a follower applies removals by id, a leader
   * snapshots from it. An `IdMap`: a `Map` boxed each id (ids are over 2^31),
   * one heap number per record on the leader and on every follower.
   */
  readonly index = new IdMap<Message>();
  role: Role = "none";
  /** The leadership epoch while leading or recovering. */
  epoch = 0;
  /** What this node remembers of the queue (saved in repl_state.ts). */
  state: ReplState;
  /** The replica set while leading, this node first; `oldSet` too while the set changes (both must agree). */
  set: string[] = [];
  oldSet: string[] | undefined;
  /** A member being brought in to replace one that left (gets the records, not counted yet). */
  joining: string | undefined;
  /** The batch the joining member's snapshot stands for: it holds the queue once it acknowledged it. */
  joinNo = 0;
  /** Commit batches not yet on a majority, oldest first. */
  readonly pending: Batch[] = [];
  batchNo = 0;
  committedNo = 0;
  /** Per follower: the newest batch it is known to hold (its acknowledgements). */
  readonly peerBatch = new Map<string, number>();
  /** This tick's batch, made by the first record of the tick. */
  tickBatch: Batch | undefined;
  /** The local store's promise of this tick's records (`--fsync always`): the leader's state waits for it. */
  tickLocal: Promise<void> | undefined;
  /** Frames of this tick for the followers (repl_leader.ts sends them at the tick's end). */
  frames: FrameWriter | undefined;
  /** Publishes waiting for this node to claim or recover the queue. */
  readonly held: Held[] = [];
  /** A snapshot arriving (follower, or a new leader pulling the most complete copy). */
  staging: Map<number, Message> | undefined;
  /**
   * A copy's due times of messages its leader gave back with a NACK delay
   * (`DUE` frames; delayed ones in a snapshot), by id: the copy keeps them
   * ready (a store cannot delay a ready message), and a new leader delays
   * them again before it serves the queue (`adoptDues`), so that a
   * redelivery the old leader scheduled is neither lost nor early. At most
   * one per message of the copy (removed with it).
   */
  readonly dues = new Map<number, number>();
  #host: ReplHost;
  #touched: Set<ReplicatedQueueStore> | undefined;
  #lastLocal: Promise<void> | undefined;
  #lastCommit: Promise<void> | undefined;
  #lastBoth: Promise<void> | undefined;

  /**
   * `touched`: where a removal records its queue, so that the store's
   * `synced()` (which ACK replies wait for) covers its majority this tick.
   */
  constructor(
    name: string,
    inner: QueueStore,
    host: ReplHost,
    touched?: Set<ReplicatedQueueStore>,
  ) {
    this.name = name;
    this.inner = inner;
    this.#host = host;
    this.#touched = touched;
    this.state = host.load(name);
    // What the inner store recovered from disk (ready again after a restart).
    for (const m of inner.messages()) this.index.set(m.id, m);
  }

  get ready(): number {
    return this.inner.ready;
  }
  get inflight(): number {
    return this.inner.inflight;
  }
  get delayed(): number {
    return this.inner.delayed;
  }
  get scheduled(): number {
    return this.inner.scheduled;
  }
  get size(): number {
    return this.inner.size;
  }
  get bytes(): number {
    return this.inner.bytes;
  }
  get removed(): Readonly<Record<RemoveReason, number>> {
    return this.inner.removed;
  }

  push(msg: Message, dueAt?: number): void | Promise<void> {
    if (this.role !== "leader" || !this.#host.writable(this)) {
      const held = this.#host.hold(this, msg, dueAt ?? 0);
      if (held !== undefined) return held;
      throw this.#host.refusal(this);
    }
    const local = this.inner.push(msg, dueAt);
    if (local !== undefined) this.tickLocal = local;
    this.index.set(msg.id, msg);
    this.#host.pub(this, msg);
    const commit = this.#host.commit(this);
    if (local === undefined) return commit;
    // One combined promise per tick (the local fsync's and the majority's), not one per message.
    if (local !== this.#lastLocal || commit !== this.#lastCommit) {
      this.#lastLocal = local;
      this.#lastCommit = commit;
      this.#lastBoth = Promise.all([local, commit]).then(() => {});
      this.#lastBoth.catch(() => {});
    }
    return this.#lastBoth;
  }

  /**
   * The dedup ids of the inner store's recovery, and those of the messages
   * this copy holds (replicated with them): the window a leader serves by.
   */
  recoveredDedupIds(): readonly { id: number; dedupId: string }[] {
    const out = [...this.inner.recoveredDedupIds()];
    for (const m of this.index.values()) {
      const dedupId = m.dedupId;
      if (dedupId !== undefined && m.state !== MessageState.DONE) out.push({ id: m.id, dedupId });
    }
    return out;
  }

  take(now: number): Message | undefined {
    return this.role === "leader" ? this.inner.take(now) : undefined;
  }

  takeMatching(
    cursor: ScanCursor,
    match: (m: Message) => boolean,
    now: number,
  ): Message | undefined {
    return this.role === "leader" ? this.inner.takeMatching(cursor, match, now) : undefined;
  }

  newCursor(): ScanCursor {
    return this.inner.newCursor();
  }

  /**
   * Settles a message, replicated, while leading. On a node that no longer
   * leads (a deposed leader's consumer ACKs late) the copy is left as its
   * leader has it, and `synced()` answers the ACK as refused.
   */
  remove(msg: Message, reason: RemoveReason): void {
    if (msg.state === MessageState.DONE) return;
    // Its ACK's reply waits for this removal's majority, or is refused when not leading.
    this.#touched?.add(this);
    if (this.role !== "leader") return;
    this.inner.remove(msg, reason);
    this.index.delete(msg.id);
    this.#host.del(this, msg.id);
  }

  /**
   * A NACK's requeue: a replica's copy is ready anyway, but a delay goes to
   * the followers (`DUE`), and the NACK's reply waits for its majority.
   */
  requeue(msg: Message, delayMs: number, now: number): void {
    this.inner.requeue(msg, delayMs, now);
    if (this.role !== "leader" || msg.state !== MessageState.DELAYED) return;
    this.#touched?.add(this);
    this.#host.due(this, msg.id, msg.dueAt);
  }

  purge(): number {
    if (this.role !== "leader") throw this.#host.refusal(this);
    const n = this.inner.purge();
    for (const m of this.index.values()) {
      if (m.state !== MessageState.DONE) continue;
      this.index.delete(m.id);
      this.#host.del(this, m.id);
    }
    return n;
  }

  dropOldest(): Message | undefined {
    if (this.role !== "leader") return undefined;
    const m = this.inner.dropOldest();
    if (m !== undefined) {
      this.index.delete(m.id);
      this.#host.del(this, m.id);
    }
    return m;
  }

  /** Expiry is local everywhere (each replica expires by the same `expiresAt`): not replicated. */
  sweep(now: number): number {
    return this.inner.sweep(now);
  }

  nextDueAt(): number {
    return this.inner.nextDueAt();
  }

  messages(): Iterable<Message> {
    return this.inner.messages();
  }

  /** Live messages in id order (publish order), pruning the index of the ones that left by expiry. */
  *live(): IterableIterator<Message> {
    for (const m of this.index.values().sort((a, b) => a.id - b.id)) {
      if (m.state === MessageState.DONE) this.index.delete(m.id);
      else yield m;
    }
  }

  /** A follower's copy takes a message (once: a snapshot may repeat what it has). */
  applyPub(msg: Message): void {
    // Delayed after a delivery: a NACK's delay, kept beside the copy (`dues`).
    if (msg.state === MessageState.DELAYED && msg.deliveries > 0) this.dues.set(msg.id, msg.dueAt);
    if (this.index.has(msg.id)) return;
    // A scheduled message waits for its time; anything else is ready (in flight at the
    // leader is ready here: after a failover it is delivered again).
    const scheduled = msg.state === MessageState.DELAYED && msg.deliveries === 0;
    const stored = this.inner.push(msg, scheduled ? msg.dueAt : 0);
    // Waited for through the store's `synced()` before the acknowledgement.
    if (stored !== undefined) stored.catch(() => {});
    this.index.set(msg.id, msg);
  }

  /** A follower's copy drops a message the leader removed. */
  applyDel(id: number): void {
    const m = this.index.get(id);
    if (m === undefined) return;
    this.index.delete(id);
    this.dues.delete(id);
    if (m.state !== MessageState.DONE) this.inner.remove(m, "acked");
  }

  /** A follower's copy learns a NACK's delay of a message it holds. */
  applyDue(id: number, dueAt: number): void {
    if (this.index.has(id)) this.dues.set(id, dueAt);
  }

  /** The due time a copy keeps for ready message `m` (0: none, or past `now`). */
  dueOf(m: Message, now: number): number {
    if (m.state !== MessageState.READY) return 0;
    const due = this.dues.get(m.id) ?? 0;
    return due > now ? due : 0;
  }

  /**
   * This node starts serving the queue: the copy's ready messages with a due
   * time still to come are delayed again until it (one pass over the queue,
   * at most one take per such message), and the due times are forgotten: the
   * store holds them now.
   */
  adoptDues(now: number): void {
    const dues = this.dues;
    if (dues.size === 0) return;
    const inner = this.inner;
    const cursor = inner.newCursor();
    const waits = (m: Message) => (dues.get(m.id) ?? 0) > now;
    for (let i = dues.size; i > 0; i--) {
      const m = inner.takeMatching(cursor, waits, now);
      if (m === undefined) break;
      inner.requeue(m, dues.get(m.id)! - now, now);
    }
    dues.clear();
  }

  /** The copy becomes the staged snapshot: what it lacks is added, what the snapshot lacks removed. */
  applySnapshot(): void {
    const staged = this.staging ?? new Map<number, Message>();
    this.staging = undefined;
    for (const m of this.index.values()) {
      if (staged.has(m.id)) continue;
      this.index.delete(m.id);
      this.dues.delete(m.id);
      if (m.state !== MessageState.DONE) this.inner.remove(m, "purged");
    }
    for (const m of staged.values()) this.applyPub(m);
  }

  /** Fails every pending commit (the leadership is gone): their replies say `UNAVAILABLE`. */
  rejectAll(e: unknown): void {
    this.tickBatch = undefined;
    for (const b of this.pending.splice(0)) b.reject(e);
  }
}

/** The node's store in cluster mode (see the module comment). */
export class ReplicatedStore implements Store {
  /** The node's own store (memory or log). */
  readonly inner: Store;
  /** The replicated queues by name (topics' stores are the inner store's, not here). */
  readonly queues = new Map<string, ReplicatedQueueStore>();
  /** Queues whose removals this tick `synced()` must cover. */
  readonly touched = new Set<ReplicatedQueueStore>();
  /** Replication, once the node joined the cluster (replication.ts sets it). */
  host: ReplHost | undefined;
  #tickSynced: Promise<void> | undefined;
  #tickKey = "";
  #tickLocal: void | Promise<void> = undefined;

  /** The queues' replication state files. */
  readonly states: ReplStateFiles;

  constructor(inner: Store, states: ReplStateFiles) {
    this.inner = inner;
    this.states = states;
  }

  get kind(): "memory" | "log" {
    return this.inner.kind;
  }
  get syncs(): Readonly<SyncStats> | undefined {
    return this.inner.syncs;
  }

  openQueue(name: string): QueueStore {
    if (
      !name.startsWith("queue:") && !name.startsWith("topic:") && !name.startsWith(DURABLES_PREFIX)
    ) {
      return this.inner.openQueue(name);
    }
    return this.queue(name);
  }

  /** The replicated store of a queue, made on first use. */
  queue(name: string): ReplicatedQueueStore {
    let q = this.queues.get(name);
    if (q === undefined) {
      q = new ReplicatedQueueStore(name, this.inner.openQueue(name), this.#delegate, this.touched);
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * The queues' host: replication once it runs. The broker opens the queues
   * found on disk before the node joins the cluster; until then they refuse
   * writes and hand out nothing, as on any node that does not lead them.
   */
  readonly #delegate: ReplHost = {
    writable: (q) => this.host?.writable(q) ?? false,
    pub: (q, m) => this.host?.pub(q, m),
    del: (q, id) => this.host?.del(q, id),
    due: (q, id, dueAt) => this.host?.due(q, id, dueAt),
    commit: (q) => this.host?.commit(q) ?? Promise.reject(unavailable("not in the cluster yet")),
    refusal: (q) => this.host?.refusal(q) ?? unavailable(`${q.name}: not in the cluster yet`),
    load: (name) => this.states.load(name),
    hold: (q, m, dueAt) => this.host?.hold(q, m, dueAt),
  };

  dropQueue(name: string): void {
    const q = this.queues.get(name);
    if (q === undefined) return this.inner.dropQueue(name);
    // A queue this node leads or copies stays: replication still writes to it.
    if (q.role !== "none" || q.size > 0 || q.held.length > 0) return;
    this.queues.delete(name);
    this.inner.dropQueue(name);
  }

  queueNames(): string[] {
    return this.inner.queueNames();
  }
  lastId(): number {
    return this.inner.lastId();
  }
  writePending(): void {
    this.inner.writePending();
  }

  /** ACK and NACK replies wait for `synced()`: for the majority of their removals. */
  readonly waitsForSync = true;

  synced(): void | Promise<void> {
    const local = this.inner.synced();
    if (this.touched.size === 0) return local;
    const host = this.host!;
    let key = "";
    for (const q of this.touched) key += `${q.name}:${q.role === "leader" ? q.batchNo : "x"} `;
    if (this.#tickSynced !== undefined && key === this.#tickKey && local === this.#tickLocal) {
      return this.#tickSynced;
    }
    this.#tickLocal = local;
    const all: Promise<void>[] = local === undefined ? [] : [local];
    for (const q of this.touched) {
      if (q.role === "leader") all.push(host.commit(q));
      else {
        const p = Promise.reject(host.refusal(q));
        p.catch(() => {});
        all.push(p);
      }
    }
    this.#tickKey = key;
    const p = this.#tickSynced = Promise.all(all).then(() => {});
    p.catch(() => {});
    return p;
  }

  /** End of a tick (replication's flush): the next `synced()` starts afresh. */
  endTick(): void {
    this.touched.clear();
    this.#tickSynced = undefined;
    this.#tickKey = "";
    this.#tickLocal = undefined;
  }

  async close(): Promise<void> {
    await this.states.close();
    await this.inner.close();
  }
}

/** `UNAVAILABLE` with a reason. */
export function unavailable(why: string): BrokerError {
  return new BrokerError("UNAVAILABLE", why);
}
