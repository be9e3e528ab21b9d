/**
 * Replication of queues between nodes (docs/CLUSTERING.md, "Replication").
 *
 * - **Leader.** The leader of a queue dials each follower of its replica set
 *   (`REPL <node-id>` on the cluster port), sends it a snapshot of the queue
 *   (what it holds now), then every new message (`PUB`) and every removal
 *   (`DEL`), each with its epoch and a record number (lsn). The records of
 *   one tick of one queue are one commit batch: it commits once the leader
 *   and enough followers to make a majority of the set have acknowledged
 *   them (`ACK` counts frames per connection), or fails with `UNAVAILABLE`
 *   after `CLUSTER_COMMIT_MS_MAX`.
 * - **Follower.** It applies the records to its own store of the queue (the
 *   log store when the node has one, so the copy survives its own crash),
 *   saves the queue's epoch and lsn (repl_state.ts), and acknowledges only
 *   once both are stored as its `--fsync` says. It refuses (`FENCED`) any
 *   record of an epoch lower than the highest it promised, or than the
 *   leader epoch it sees in etcd.
 * - **New leader.** Only a member of the queue's replica set (etcd
 *   `relayr/replicas/<queue>`) claims a queue whose leader is gone. It asks
 *   the set for what each holds (`FETCH`: each then promises the new epoch),
 *   waits for a majority including itself, takes the most complete copy
 *   (largest data epoch, then lsn: any two majorities meet, so it holds every
 *   committed record; `PULL` fetches it when it is another node's), sends
 *   it to the followers of its new set, and serves once a majority of both
 *   the old and the new set hold it and etcd has the new set. What was in
 *   flight at the old leader is ready again, so it is delivered again.
 * - **Deposed.** A leader whose lease is gone, or that a replica fences, or
 *   that sees another leader in etcd, stops serving the queue at once: its
 *   pending commits fail with `UNAVAILABLE`, and its copy is replaced by the
 *   new leader's snapshot.
 *
 * @module
 */
import { BrokerError } from "../broker/mod.ts";
import {
  CLUSTER_COMMIT_MS_MAX,
  CLUSTER_HELD_MAX,
  CLUSTER_LEADERS_MAX,
  CLUSTER_MEMBERS_MAX,
  CLUSTER_REPL_BATCHES_MAX,
  CLUSTER_REPL_TICK_MS,
} from "../config/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import type { WatchEvent } from "./meta.ts";
import type { LeaderInfo, MemberInfo } from "./node.ts";
import { FrameWriter } from "./repl_frames.ts";
import type { ReplState } from "./repl_state.ts";
import { refusal, ReplCore } from "./repl_core.ts";
import { accept } from "./repl_follower.ts";
import { flushSoon, reshape } from "./repl_leader.ts";
import { dial } from "./repl_links.ts";
import { recover, stepDown } from "./repl_recovery.ts";
import {
  Batch,
  type ReplHost,
  type ReplicatedQueueStore,
  type ReplicatedStore,
  unavailable,
} from "./replicated_store.ts";

/** Where etcd keeps each queue's replica set (under `relayr/`). */
export const REPLICAS_KEY = "replicas/";

/** What replication needs from the node around it. */
export interface ReplicationOptions {
  readonly nodeId: string;
  /** `--replicas`: copies of each queue, the leader's included. */
  readonly replicas: number;
  readonly store: ReplicatedStore;
  readonly dial: (hostname: string, port: number) => Promise<Conn>;
  /** The queue's leader as etcd has it. */
  readonly leader: (queue: string) => LeaderInfo | undefined;
  /** Whether this node still leads `queue` (its key, its lease alive). */
  readonly leads: (queue: string) => boolean;
  /** Writes the replica set while `epoch` leads the queue; false when it no longer does. */
  readonly putSet: (queue: string, epoch: number, value: string) => Promise<boolean>;
  /** A queue became servable here: the broker delivers its messages (raises its ids first). */
  readonly serving: (queue: string, maxId: number) => void;
  /** This node stopped serving `queue` (deposed): its local consumers are told. */
  readonly deposed?: (queue: string, why: string) => void;
  /** Whether the broker still uses a queue (an empty unused copy is forgotten). */
  readonly used: (queue: string) => boolean;
  /** A publish waits for this node to claim a queue: claim now rather than at the next interval. */
  readonly claimSoon: () => void;
  readonly log: (level: "info" | "warn", message: string) => void;
}

/** One queue in `/api/cluster`'s `replication`. */
export interface ReplQueueStats {
  queue: string;
  role: string;
  epoch: number;
  data_epoch: number;
  lsn: number;
  /** Messages its copy holds (ready, in flight, delayed). */
  messages: number;
  /** The replica set (while leading), this node first. */
  replicas: string[];
  /** Per follower: commit batches it has not acknowledged yet (0: caught up). */
  lag: { node: string; batches: number; connected: boolean }[];
}

/** `/api/cluster`'s `replication`. */
export interface ReplicationStats {
  replicas: number;
  queues: ReplQueueStats[];
  /** Leaderships taken (recoveries started). */
  elections: number;
  /** Recoveries finished: the queue served again. */
  recoveries: number;
  /** Commit batches that missed `CLUSTER_COMMIT_MS_MAX`. */
  commit_timeouts: number;
  /** Records refused from a deposed leader, and leaderships given up because a replica refused. */
  fenced: number;
}

/** Replication of this node's queues (see the module comment). */
export class Replication implements ReplHost {
  readonly #c: ReplCore;
  #timer: ReturnType<typeof setInterval>;

  constructor(o: ReplicationOptions) {
    this.#c = new ReplCore(o);
    o.store.host = this;
    this.#timer = setInterval(() => tick(this.#c), CLUSTER_REPL_TICK_MS);
  }

  // --- the cluster node's events ---

  /** The live members (etcd). */
  membersChanged(members: readonly MemberInfo[]): void {
    this.#c.members.clear();
    for (const m of members) this.#c.members.set(m.id, m);
    for (const f of this.#c.followers.values()) {
      if (f.conn === undefined && !f.dialing && f.timer === undefined) dial(this.#c, f);
    }
  }

  /** A key under `relayr/` that is neither a member nor a leader: the replica sets. */
  keyChanged(e: WatchEvent): void {
    const prefix = `relayr/${REPLICAS_KEY}`;
    if (!e.key.startsWith(prefix)) return;
    const queue = e.key.slice(prefix.length);
    if (e.kv === undefined) return void this.#c.sets.delete(queue);
    if (!this.#c.sets.has(queue) && this.#c.sets.size >= CLUSTER_LEADERS_MAX) return;
    try {
      const v = JSON.parse(e.kv.value) as { epoch: number; nodes: string[] };
      if (
        Array.isArray(v.nodes) && v.nodes.length <= CLUSTER_MEMBERS_MAX &&
        v.nodes.every((n) => typeof n === "string")
      ) {
        this.#c.sets.set(queue, { epoch: Number(v.epoch) || 0, nodes: v.nodes });
      }
    } catch { /* not ours */ }
  }

  /** etcd says who leads `queue` now. */
  leaderChanged(queue: string, leader: LeaderInfo | undefined): void {
    if (this.#c.closed) return;
    const me = this.#c.o.nodeId;
    if (leader?.node === me) {
      const q = this.#c.store.queue(queue);
      if ((q.role === "leader" || q.role === "recovering") && q.epoch === leader.epoch) return;
      recover(this.#c, q, leader.epoch);
      return;
    }
    const q = this.#c.store.queues.get(queue);
    if (q !== undefined && (q.role === "leader" || q.role === "recovering")) {
      stepDown(
        this.#c,
        q,
        leader === undefined ? "its leadership ended" : `${leader.node} leads it`,
      );
    }
    // Publishes held while this node meant to claim the queue: another node won it.
    if (q !== undefined && leader !== undefined) {
      const why = new BrokerError("NOT_LEADER", `${leader.node} ${queue}`);
      for (const h of q.held.splice(0)) h.reject(why);
    }
  }

  /** Whether this node serves `queue` (leads it, its copy recovered): admin actions run only then. */
  serves(queue: string): boolean {
    return this.#c.store.queues.get(queue)?.role === "leader";
  }

  /** Whether this node may claim a leaderless `queue`: a member of its replica set, or a new queue. */
  mayClaim(queue: string): boolean {
    const set = this.#c.sets.get(queue);
    return set === undefined || set.nodes.includes(this.#c.o.nodeId);
  }

  /**
   * Whether this node keeps `queue`'s leadership although the broker forgot
   * it: it holds a copy, or publishes wait for it. The broker forgets an
   * empty queue without consumers at every sweep, and a publish held while
   * the queue is claimed and recovered is not in the queue yet: handing the
   * leadership back then refused it (`has no leader now; retry`).
   */
  keeps(queue: string): boolean {
    const q = this.#c.store.queues.get(queue);
    return q !== undefined && (q.index.size > 0 || q.held.length > 0);
  }

  /** Queues this node holds a copy of (it claims them when their leader is gone). */
  *held(): IterableIterator<string> {
    for (const [name, q] of this.#c.store.queues) {
      if (q.index.size > 0 || q.held.length > 0) yield name;
    }
  }

  // --- ReplHost (the queue stores call these) ---

  load(name: string): ReplState {
    return this.#c.store.states.load(name);
  }

  hold(q: ReplicatedQueueStore, msg: Message, dueAt: number): Promise<void> | undefined {
    // A declared topic's stores are written only once served (forwarding waits for that): a
    // write there now is a deposed leader's, refused before its message reaches a subscriber.
    if (!q.name.startsWith("queue:")) return undefined;
    const l = this.#c.o.leader(q.name);
    const me = this.#c.o.nodeId;
    const ours = q.role === "recovering" || l?.node === me ||
      (l === undefined && this.mayClaim(q.name));
    if (!ours || q.held.length >= CLUSTER_HELD_MAX || this.#c.closed) return undefined;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(() => {});
    q.held.push({ msg, dueAt, at: Date.now(), resolve, reject });
    if (l === undefined) this.#c.o.claimSoon();
    return promise;
  }

  writable(q: ReplicatedQueueStore): boolean {
    // The lease is checked once per tick per queue (at its first record), not per message.
    if (q.tickBatch !== undefined) return true;
    if (this.#c.o.leads(q.name)) return true;
    stepDown(this.#c, q, NOT_LED);
    return false;
  }

  refusal(q: ReplicatedQueueStore): BrokerError {
    return refusal(this.#c, q);
  }

  pub(q: ReplicatedQueueStore, msg: Message): void {
    const lsn = ++q.state.lsn;
    q.state.dataEpoch = q.epoch;
    // Into the queue's frames of this tick, sent to every follower at its end.
    if (q.set.length > 1 || q.joining !== undefined) {
      (q.frames ??= new FrameWriter()).pub(q.name, q.epoch, lsn, msg);
    }
  }

  del(q: ReplicatedQueueStore, id: number): void {
    this.#record(q, "DEL", id);
  }

  due(q: ReplicatedQueueStore, id: number, dueAt: number): void {
    this.#record(q, "DUE", id, dueAt);
  }

  /** A one-line record of `q` at its next lsn (DEL, or DUE with `dueAt`), into this tick's frames, then committed. */
  #record(q: ReplicatedQueueStore, op: "DEL" | "DUE", id: number, dueAt?: number): void {
    const lsn = ++q.state.lsn;
    q.state.dataEpoch = q.epoch;
    if (q.set.length > 1 || q.joining !== undefined) {
      const w = q.frames ??= new FrameWriter();
      if (dueAt === undefined) w.line(op, q.name, q.epoch, lsn, id);
      else w.line(op, q.name, q.epoch, lsn, id, dueAt);
    }
    this.commit(q);
  }

  commit(q: ReplicatedQueueStore): Promise<void> {
    let b = q.tickBatch;
    if (b !== undefined) return b.promise;
    b = q.tickBatch = new Batch(++q.batchNo, Date.now());
    if (q.pending.length >= CLUSTER_REPL_BATCHES_MAX) {
      b.reject(unavailable(`${q.name}: over CLUSTER_REPL_BATCHES_MAX commits waiting`));
    } else q.pending.push(b);
    this.#c.dirty.add(q);
    flushSoon(this.#c);
    return b.promise;
  }

  // --- statistics ---

  stats(): ReplicationStats {
    const queues: ReplQueueStats[] = [];
    for (const q of [...this.#c.store.queues.values()].sort((a, b) => a.name < b.name ? -1 : 1)) {
      if (q.role === "none" && q.index.size === 0) continue;
      queues.push({
        queue: q.name,
        role: q.role,
        epoch: q.role === "leader" || q.role === "recovering" ? q.epoch : q.state.epoch,
        data_epoch: q.state.dataEpoch,
        lsn: q.state.lsn,
        messages: q.size,
        replicas: q.role === "leader" ? q.set : [],
        lag: q.role !== "leader" ? [] : q.set.slice(1).map((node) => ({
          node,
          batches: q.batchNo - (q.peerBatch.get(node) ?? 0),
          connected: this.#c.followers.get(node)?.conn !== undefined,
        })),
      });
    }
    return {
      replicas: this.#c.o.replicas,
      queues,
      elections: this.#c.elections,
      recoveries: this.#c.recovered,
      commit_timeouts: this.#c.timeouts,
      fenced: this.#c.fenced,
    };
  }

  /** A `REPL <node-id>` connection handed over by the interconnect (its first line read). */
  accept(conn: Conn, leader: string): void {
    accept(this.#c, conn, leader);
  }

  /** Stops: closes every replication connection; pending commits fail. */
  async close(): Promise<void> {
    this.#c.closed = true;
    clearInterval(this.#timer);
    for (const q of this.#c.store.queues.values()) q.rejectAll(unavailable("the node is stopping"));
    for (const f of this.#c.followers.values()) {
      clearTimeout(f.timer);
      f.conn?.close();
    }
    for (const c of this.#c.inbound) c.close();
    await Promise.all([...this.#c.reading]);
    await Promise.all([...this.#c.saving]);
  }
}

// --- upkeep ---

/** Why a leader stops serving a queue it no longer `leads` (node.ts): lease lost, or handed back. */
const NOT_LED = "its lease is gone, or this node hands it back";

/** Commit deadlines, lost leases, stalled recoveries, forgotten copies (every `CLUSTER_REPL_TICK_MS`). */
function tick(c: ReplCore): void {
  const now = Date.now();
  for (const q of [...c.store.queues.values()]) {
    if (q.role === "leader" && !c.o.leads(q.name)) stepDown(c, q, NOT_LED);
    // Its lease lived through an etcd outage (etcd restores leases): the key, and so the
    // epoch, are still ours, but the queue stopped being served. Taken up again.
    if (
      (q.role === "none" || q.role === "follower") && c.o.leads(q.name) &&
      c.o.leader(q.name)?.node === c.o.nodeId
    ) recover(c, q, c.o.leader(q.name)!.epoch);
    if (q.role === "leader" && q.oldSet === undefined) reshape(c, q);
    while (q.pending.length > 0 && now - q.pending[0].createdAt > CLUSTER_COMMIT_MS_MAX) {
      if (q.role === "recovering") break; // its own deadline below
      c.timeouts++;
      q.pending.shift()!.reject(
        unavailable(
          `${q.name}: not confirmed by a majority of its replicas within ` +
            `${CLUSTER_COMMIT_MS_MAX} ms; outcome unknown`,
        ),
      );
    }
    while (q.held.length > 0 && now - q.held[0].at > CLUSTER_COMMIT_MS_MAX) {
      q.held.shift()!.reject(unavailable(`${q.name}: no leader ready within the commit bound`));
    }
    if (q.role === "none" && q.size === 0 && q.held.length === 0 && !c.o.used(q.name)) {
      c.store.queues.delete(q.name);
      c.store.inner.dropQueue(q.name);
    }
  }
  for (const [queue, r] of c.recoveries) {
    if (now < r.deadline) continue;
    const q = c.store.queue(queue);
    if (!c.o.leads(queue)) {
      stepDown(c, q, "its lease is gone");
      continue;
    }
    // Not enough answers, or a follower that never acknowledged: ask again.
    c.o.log("warn", `recovery of ${queue} (epoch ${r.epoch}) stalled; trying again`);
    c.recoveries.delete(queue);
    q.role = "none";
    recover(c, q, r.epoch);
  }
}
