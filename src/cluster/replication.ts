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
  CLUSTER_LINK_REDIAL_MS,
  CLUSTER_MEMBERS_MAX,
  CLUSTER_RECOVERY_MS_MAX,
  CLUSTER_REPL_BATCHES_MAX,
  CLUSTER_REPL_PENDING_BYTES_MAX,
  CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX,
  CLUSTER_REPL_TICK_MS,
} from "../config/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import { type Message, MessageState } from "../storage/mod.ts";
import { splitHostPort } from "./interconnect.ts";
import type { WatchEvent } from "./meta.ts";
import type { LeaderInfo, MemberInfo } from "./node.ts";
import { FrameWriter, type ReplFrame, replLine, ReplParser } from "./repl_frames.ts";
import type { ReplState } from "./repl_state.ts";
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

/** A queue's recovery by its new leader. */
interface Recovery {
  readonly epoch: number;
  /** The set the records were written to (from etcd): the answers must be a majority of it. */
  readonly old: string[];
  readonly have: Map<string, { dataEpoch: number; lsn: number }>;
  deadline: number;
  /** The node whose copy is being pulled. */
  pulling: string | undefined;
  pulled?: { dataEpoch: number; lsn: number };
}

/** The leader's side of one follower node: the connection it dialled. */
class Follower {
  readonly id: string;
  conn: Conn | undefined;
  dialing = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  out: Uint8Array[] = [];
  outBytes = 0;
  writing = false;
  /** Frames sent and acknowledged on the current connection. */
  sent = 0;
  acked = 0;
  /** Frame count at which each queue's batch is held (in order). */
  waiters: { seq: number; q: ReplicatedQueueStore; no: number }[] = [];
  waitHead = 0;
  /** Queues whose snapshot went on this connection (records may follow). */
  synced = new Set<ReplicatedQueueStore>();

  constructor(id: string) {
    this.id = id;
  }

  /** Queues `frames` frames (0: the `REPL` line, which is not acknowledged). */
  send(bytes: Uint8Array, frames = 1): void {
    this.out.push(bytes);
    this.outBytes += bytes.length;
    this.sent += frames;
  }
}

const majority = (n: number) => Math.floor(n / 2) + 1;

/** Replication of this node's queues (see the module comment). */
export class Replication implements ReplHost {
  readonly #o: ReplicationOptions;
  readonly #store: ReplicatedStore;
  #followers = new Map<string, Follower>();
  #members = new Map<string, MemberInfo>();
  /** Replica sets as etcd has them. */
  #sets = new Map<string, { epoch: number; nodes: string[] }>();
  #recoveries = new Map<string, Recovery>();
  #inbound = new Set<Conn>();
  #reading = new Set<Promise<void>>();
  #dirty = new Set<ReplicatedQueueStore>();
  /** The leader's own state saves in flight (a close waits for them). */
  #saving = new Set<Promise<void>>();
  #flushing = false;
  #timer: ReturnType<typeof setInterval>;
  #closed = false;
  #elections = 0;
  #recovered = 0;
  #timeouts = 0;
  #fenced = 0;

  constructor(o: ReplicationOptions) {
    this.#o = o;
    this.#store = o.store;
    o.store.host = this;
    this.#timer = setInterval(() => this.#tick(), CLUSTER_REPL_TICK_MS);
  }

  // --- the cluster node's events ---

  /** The live members (etcd). */
  membersChanged(members: readonly MemberInfo[]): void {
    this.#members.clear();
    for (const m of members) this.#members.set(m.id, m);
    for (const f of this.#followers.values()) {
      if (f.conn === undefined && !f.dialing && f.timer === undefined) this.#dial(f);
    }
  }

  /** A key under `relayr/` that is neither a member nor a leader: the replica sets. */
  keyChanged(e: WatchEvent): void {
    const prefix = `relayr/${REPLICAS_KEY}`;
    if (!e.key.startsWith(prefix)) return;
    const queue = e.key.slice(prefix.length);
    if (e.kv === undefined) return void this.#sets.delete(queue);
    if (!this.#sets.has(queue) && this.#sets.size >= CLUSTER_LEADERS_MAX) return;
    try {
      const v = JSON.parse(e.kv.value) as { epoch: number; nodes: string[] };
      if (
        Array.isArray(v.nodes) && v.nodes.length <= CLUSTER_MEMBERS_MAX &&
        v.nodes.every((n) => typeof n === "string")
      ) {
        this.#sets.set(queue, { epoch: Number(v.epoch) || 0, nodes: v.nodes });
      }
    } catch { /* not ours */ }
  }

  /** etcd says who leads `queue` now. */
  leaderChanged(queue: string, leader: LeaderInfo | undefined): void {
    if (this.#closed) return;
    const me = this.#o.nodeId;
    if (leader?.node === me) {
      const q = this.#store.queue(queue);
      if ((q.role === "leader" || q.role === "recovering") && q.epoch === leader.epoch) return;
      this.#recover(q, leader.epoch);
      return;
    }
    const q = this.#store.queues.get(queue);
    if (q !== undefined && (q.role === "leader" || q.role === "recovering")) {
      this.#stepDown(q, leader === undefined ? "its leadership ended" : `${leader.node} leads it`);
    }
    // Publishes held while this node meant to claim the queue: another node won it.
    if (q !== undefined && leader !== undefined) {
      const why = new BrokerError("NOT_LEADER", `${leader.node} ${queue}`);
      for (const h of q.held.splice(0)) h.reject(why);
    }
  }

  /** Whether this node may claim a leaderless `queue`: a member of its replica set, or a new queue. */
  mayClaim(queue: string): boolean {
    const set = this.#sets.get(queue);
    return set === undefined || set.nodes.includes(this.#o.nodeId);
  }

  /** Queues this node holds a copy of (it claims them when their leader is gone). */
  *held(): IterableIterator<string> {
    for (const [name, q] of this.#store.queues) {
      if (q.index.size > 0 || q.held.length > 0) yield name;
    }
  }

  // --- ReplHost (the queue stores call these) ---

  load(name: string): ReplState {
    return this.#store.states.load(name);
  }

  hold(q: ReplicatedQueueStore, msg: Message, dueAt: number): Promise<void> | undefined {
    const l = this.#o.leader(q.name);
    const me = this.#o.nodeId;
    const ours = q.role === "recovering" || l?.node === me ||
      (l === undefined && this.mayClaim(q.name));
    if (!ours || q.held.length >= CLUSTER_HELD_MAX || this.#closed) return undefined;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(() => {});
    q.held.push({ msg, dueAt, at: Date.now(), resolve, reject });
    if (l === undefined) this.#o.claimSoon();
    return promise;
  }

  writable(q: ReplicatedQueueStore): boolean {
    // The lease is checked once per tick per queue (at its first record), not per message.
    if (q.tickBatch !== undefined) return true;
    if (this.#o.leads(q.name)) return true;
    this.#stepDown(q, "its lease is gone");
    return false;
  }

  refusal(q: ReplicatedQueueStore): BrokerError {
    if (q.role === "recovering") {
      return unavailable(`${q.name} is recovering on its new leader; retry`);
    }
    const l = this.#o.leader(q.name);
    if (l === undefined) return unavailable(`${q.name} has no leader now; retry`);
    if (l.node === this.#o.nodeId) return unavailable(`${q.name} is not ready here yet; retry`);
    return new BrokerError("NOT_LEADER", `${l.node} ${q.name}`);
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
    const lsn = ++q.state.lsn;
    q.state.dataEpoch = q.epoch;
    if (q.set.length > 1 || q.joining !== undefined) {
      (q.frames ??= new FrameWriter()).line("DEL", q.name, q.epoch, lsn, id);
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
    this.#dirty.add(q);
    this.#flushSoon();
    return b.promise;
  }

  // --- statistics ---

  stats(): ReplicationStats {
    const queues: ReplQueueStats[] = [];
    for (const q of [...this.#store.queues.values()].sort((a, b) => a.name < b.name ? -1 : 1)) {
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
          connected: this.#followers.get(node)?.conn !== undefined,
        })),
      });
    }
    return {
      replicas: this.#o.replicas,
      queues,
      elections: this.#elections,
      recoveries: this.#recovered,
      commit_timeouts: this.#timeouts,
      fenced: this.#fenced,
    };
  }

  /** Stops: closes every replication connection; pending commits fail. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const q of this.#store.queues.values()) q.rejectAll(unavailable("the node is stopping"));
    for (const f of this.#followers.values()) {
      clearTimeout(f.timer);
      f.conn?.close();
    }
    for (const c of this.#inbound) c.close();
    await Promise.all([...this.#reading]);
    await Promise.all([...this.#saving]);
  }

  // --- leader: sending ---

  /** The followers that get `q`'s records now: connected, and sent its snapshot. */
  *#targets(q: ReplicatedQueueStore): IterableIterator<Follower> {
    for (const id of q.set) {
      if (id === this.#o.nodeId) continue;
      const f = this.#followers.get(id);
      if (f?.conn !== undefined && f.synced.has(q)) yield f;
    }
    if (q.joining !== undefined) {
      const f = this.#followers.get(q.joining);
      if (f?.conn !== undefined && f.synced.has(q)) yield f;
    }
  }

  #flushSoon(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    queueMicrotask(this.#flush);
  }

  /** End of tick: each batch waits at its followers' frame counts; every follower's frames go out. */
  #flush = (): void => {
    this.#flushing = false;
    this.#store.endTick();
    for (const q of this.#dirty) {
      this.#sendFrames(q);
      const b = q.tickBatch;
      q.tickBatch = undefined;
      if (b !== undefined) {
        for (const f of this.#targets(q)) f.waiters.push({ seq: f.sent, q, no: b.no });
      }
      this.#tryCommit(q);
      // The leader's own copy: its lsn, for a later recovery (saved behind its records).
      const local = q.tickLocal;
      q.tickLocal = undefined;
      this.#save(q, local);
    }
    this.#dirty.clear();
    for (const f of this.#followers.values()) if (f.outBytes > 0) this.#write(f);
  };

  /** The queue's frames so far this tick, to each follower that gets its records. */
  #sendFrames(q: ReplicatedQueueStore): void {
    if (q.frames === undefined || q.frames.frames === 0) return;
    const { bytes, frames } = q.frames.take();
    for (const f of this.#targets(q)) f.send(bytes, frames);
  }

  /**
   * Saves the queue's state as it is now; after `after` (the tick's local
   * records on the device) when given, so that it never claims records the
   * local copy might not hold.
   */
  #save(q: ReplicatedQueueStore, after?: Promise<void>): void {
    const st = { ...q.state };
    const save = () => this.#store.states.save(q.name, st);
    try {
      const p = after === undefined ? save() : after.then(save);
      if (p === undefined) return;
      const done = p.catch((e) => this.#o.log("warn", `state of ${q.name}: ${e}`));
      this.#saving.add(done);
      done.then(() => this.#saving.delete(done));
    } catch (e) {
      this.#o.log("warn", `state of ${q.name} not saved: ${(e as Error).message}`);
    }
  }

  async #write(f: Follower): Promise<void> {
    if (f.writing) return;
    f.writing = true;
    while (f.outBytes > 0 && f.conn !== undefined) {
      const conn = f.conn;
      if (f.outBytes > CLUSTER_REPL_PENDING_BYTES_MAX) {
        this.#o.log("warn", `replication to ${f.id} over CLUSTER_REPL_PENDING_BYTES_MAX: cut`);
        conn.close();
        this.#down(f, conn);
        break;
      }
      const parts = f.out;
      f.out = [];
      const bytes = concat(parts, f.outBytes);
      f.outBytes = 0;
      try {
        await conn.write(bytes);
      } catch {
        conn.close();
        this.#down(f, conn);
      }
    }
    f.writing = false;
  }

  /** Whether a batch number is held by a majority of `set` (this node holds every batch it made). */
  #holds(q: ReplicatedQueueStore, set: readonly string[], no: number): boolean {
    let n = 0;
    for (const id of set) {
      if (id === this.#o.nodeId || (q.peerBatch.get(id) ?? 0) >= no) n++;
    }
    return n >= majority(set.length);
  }

  #tryCommit(q: ReplicatedQueueStore): void {
    while (q.pending.length > 0) {
      const b = q.pending[0];
      if (!this.#holds(q, q.set, b.no)) return;
      if (q.oldSet !== undefined && !this.#holds(q, q.oldSet, b.no)) return;
      q.pending.shift();
      q.committedNo = b.no;
      b.resolve();
      b.onCommit?.();
    }
  }

  /** A snapshot of `q` to `f`: what it holds now; records follow. Counts as holding batch `no` once acknowledged. */
  #snapshot(f: Follower, q: ReplicatedQueueStore): void {
    // This tick's records go to the others first: the snapshot holds them already.
    this.#sendFrames(q);
    const w = new FrameWriter();
    w.line("SNAP", q.name, q.epoch);
    for (const m of q.live()) w.pub(q.name, q.epoch, 0, m);
    w.line("DONE", q.name, q.epoch, q.state.lsn);
    const { bytes, frames } = w.take();
    f.send(bytes, frames);
    f.synced.add(q);
    f.waiters.push({ seq: f.sent, q, no: q.batchNo });
    if (q.joining === f.id) q.joinNo = q.batchNo;
  }

  /**
   * Keeps a served queue's replica set at `--replicas` live members: a member
   * that left is replaced, a set smaller than wanted (members that were away
   * when it was chosen) grows. One member at a time: it gets a snapshot and
   * the records, and joins the set once it acknowledged the snapshot and a
   * majority of the new set holds every committed record; until etcd has the
   * new set, commits need a majority of both.
   */
  #reshape(q: ReplicatedQueueStore): void {
    const me = this.#o.nodeId;
    const gone = q.set.find((id) => id !== me && !this.#members.has(id));
    const want = Math.min(this.#o.replicas, Math.max(1, this.#members.size));
    if (q.joining === undefined) {
      if (gone === undefined && q.set.length >= want) return;
      const candidate = [...this.#members.keys()].filter((id) => !q.set.includes(id)).sort()[0];
      if (candidate === undefined) return;
      q.joining = candidate;
      q.joinNo = Number.MAX_SAFE_INTEGER; // until its snapshot is sent
      const f = this.#follower(candidate);
      if (f.conn !== undefined && !f.synced.has(q)) {
        this.#snapshot(f, q);
        this.#flushSoon();
      }
      return;
    }
    const joining = q.joining;
    if (!this.#members.has(joining)) {
      q.joining = undefined;
      return;
    }
    if ((q.peerBatch.get(joining) ?? -1) < q.joinNo) return;
    const set = (gone === undefined ? q.set : q.set.filter((id) => id !== gone)).concat(joining);
    if (!this.#holds(q, set, q.committedNo)) return;
    const old = q.set;
    q.oldSet = old;
    q.set = set;
    q.joining = undefined;
    const epoch = q.epoch;
    this.#o.putSet(q.name, epoch, JSON.stringify({ epoch, nodes: set })).then((ok) => {
      if (q.role !== "leader" || q.epoch !== epoch) return;
      if (!ok) return this.#stepDown(q, "a later leader took it");
      if (q.oldSet === old) q.oldSet = undefined;
      this.#o.log("info", `replicas of ${q.name}: ${set.join(",")} (were ${old.join(",")})`);
    }, (e) => {
      // etcd away: back to the old set (what committed meanwhile is on both); tried again later.
      this.#o.log("warn", `replica set of ${q.name} not stored: ${(e as Error).message}`);
      if (q.oldSet === old) {
        q.set = old;
        q.oldSet = undefined;
      }
    });
  }

  #follower(id: string): Follower {
    let f = this.#followers.get(id);
    if (f === undefined) {
      this.#followers.set(id, f = new Follower(id));
      this.#dial(f);
    }
    return f;
  }

  #dial(f: Follower): void {
    const m = this.#members.get(f.id);
    if (this.#closed || m === undefined) return; // dialled when it is a member again
    f.dialing = true;
    const [host, port] = splitHostPort(m.advertise);
    this.#o.dial(host, port).then((conn) => {
      f.dialing = false;
      if (this.#closed) return conn.close();
      f.conn = conn;
      f.sent = f.acked = 0;
      f.out = [];
      f.outBytes = 0;
      f.waiters = [];
      f.waitHead = 0;
      f.synced.clear();
      f.send(replLine("REPL", this.#o.nodeId), 0);
      // Every queue it is a follower (or a joiner) of starts with a snapshot; recoveries ask again.
      for (const q of this.#store.queues.values()) {
        const sending = q.role === "leader" || (q.role === "recovering" && q.set.length > 0);
        if (sending && (q.set.includes(f.id) || q.joining === f.id)) {
          this.#snapshot(f, q);
        }
      }
      for (const [queue, r] of this.#recoveries) {
        if (r.old.includes(f.id) && !r.have.has(f.id)) f.send(replLine("FETCH", queue, r.epoch));
        if (r.pulling === f.id) f.send(replLine("PULL", queue, r.epoch));
      }
      this.#track(this.#readFollower(f, conn));
      this.#write(f);
    }, () => {
      f.dialing = false;
      this.#redial(f);
    });
  }

  #redial(f: Follower): void {
    if (this.#closed || f.timer !== undefined) return;
    f.timer = setTimeout(() => {
      f.timer = undefined;
      if (f.conn === undefined && !f.dialing) this.#dial(f);
    }, CLUSTER_LINK_REDIAL_MS);
  }

  #down(f: Follower, conn: Conn): void {
    if (f.conn !== conn) return;
    f.conn = undefined;
    f.synced.clear();
    f.waiters = [];
    f.waitHead = 0;
    f.out = [];
    f.outBytes = 0;
    this.#redial(f);
  }

  /** What a follower sends back on the connection we dialled. */
  async #readFollower(f: Follower, conn: Conn): Promise<void> {
    const parser = new ReplParser();
    try {
      for await (const chunk of conn.readable) {
        for (const fr of parser.push(chunk)) this.#fromFollower(f, fr);
      }
    } catch (e) {
      if (!this.#closed) this.#o.log("warn", `replication to ${f.id} cut: ${(e as Error).message}`);
    } finally {
      conn.close();
      this.#down(f, conn);
    }
  }

  #fromFollower(f: Follower, fr: ReplFrame): void {
    switch (fr.op) {
      case "ACK": {
        f.acked = fr.frames;
        const touched = new Set<ReplicatedQueueStore>();
        while (f.waitHead < f.waiters.length && f.waiters[f.waitHead].seq <= f.acked) {
          const w = f.waiters[f.waitHead++];
          if ((w.q.peerBatch.get(f.id) ?? 0) < w.no) w.q.peerBatch.set(f.id, w.no);
          touched.add(w.q);
        }
        if (f.waitHead > 1024 && f.waitHead * 2 > f.waiters.length) {
          f.waiters = f.waiters.slice(f.waitHead);
          f.waitHead = 0;
        }
        for (const q of touched) {
          if (q.role === "leader" || q.role === "recovering") this.#tryCommit(q);
        }
        return;
      }
      case "FENCED": {
        const q = this.#store.queues.get(fr.queue);
        if (
          q !== undefined && (q.role === "leader" || q.role === "recovering") && fr.epoch > q.epoch
        ) {
          this.#fenced++;
          this.#stepDown(q, `${f.id} promised epoch ${fr.epoch}`);
        }
        return;
      }
      case "HAVE": {
        const r = this.#recoveries.get(fr.queue);
        if (r === undefined || r.epoch !== fr.epoch) return;
        r.have.set(f.id, { dataEpoch: fr.dataEpoch, lsn: fr.lsn });
        this.#recoveryStep(this.#store.queue(fr.queue), r);
        return;
      }
      case "SNAP":
      case "PUB":
      case "DONE": {
        // The copy we PULLed from the most complete replica.
        const r = this.#recoveries.get(fr.queue);
        if (r === undefined || r.pulling !== f.id || r.epoch !== fr.epoch) return;
        const q = this.#store.queue(fr.queue);
        if (fr.op === "SNAP") q.staging = new Map();
        else if (fr.op === "PUB") stage(q, fr.msg);
        else {
          q.applySnapshot();
          r.pulling = undefined;
          r.pulled = r.have.get(f.id);
          this.#recoveryStep(q, r);
        }
        return;
      }
      default:
        throw new Error(`${fr.op} from a follower`);
    }
  }

  // --- leader: taking over ---

  #recover(q: ReplicatedQueueStore, epoch: number): void {
    this.#elections++;
    q.rejectAll(unavailable(`${q.name} changed leader`));
    q.role = "recovering";
    q.epoch = epoch;
    q.set = [];
    q.oldSet = undefined;
    q.joining = undefined;
    q.peerBatch.clear();
    q.batchNo = q.committedNo = 0;
    if (epoch > q.state.epoch) q.state.epoch = epoch;
    this.#save(q);
    const me = this.#o.nodeId;
    const old = this.#sets.get(q.name)?.nodes ?? [me];
    const r: Recovery = {
      epoch,
      old,
      have: new Map([[me, { dataEpoch: q.state.dataEpoch, lsn: q.state.lsn }]]),
      deadline: Date.now() + CLUSTER_RECOVERY_MS_MAX,
      pulling: undefined,
    };
    this.#recoveries.set(q.name, r);
    this.#o.log("info", `recovering ${q.name} (epoch ${epoch}) from ${old.join(",")}`);
    for (const id of old) {
      if (id === me) continue;
      const f = this.#follower(id);
      if (f.conn !== undefined) f.send(replLine("FETCH", q.name, epoch));
    }
    this.#flushSoon();
    this.#recoveryStep(q, r);
  }

  /** The next step of a recovery, once its answers allow it. */
  #recoveryStep(q: ReplicatedQueueStore, r: Recovery): void {
    if (q.role !== "recovering" || this.#recoveries.get(q.name) !== r || r.pulling !== undefined) {
      return;
    }
    if (r.pulled === undefined) {
      const answered = r.old.filter((id) => r.have.has(id)).length;
      if (answered < majority(r.old.length)) return;
      // The most complete copy: the largest data epoch, then the largest lsn.
      let best = this.#o.nodeId;
      let top = r.have.get(best)!;
      for (const [id, h] of r.have) {
        if (h.dataEpoch > top.dataEpoch || (h.dataEpoch === top.dataEpoch && h.lsn > top.lsn)) {
          best = id;
          top = h;
        }
      }
      if (best !== this.#o.nodeId) {
        r.pulling = best;
        const f = this.#follower(best);
        if (f.conn !== undefined) f.send(replLine("PULL", q.name, r.epoch));
        this.#flushSoon();
        return;
      }
      r.pulled = top;
    }
    if (q.set.length > 0) return; // establishing already
    // The copy is the most complete: ours now, under our epoch; then to the new set.
    q.state.dataEpoch = r.epoch;
    q.state.lsn = Math.max(q.state.lsn, r.pulled.lsn);
    this.#save(q);
    const set = this.#chooseSet(q.name, r.old);
    q.set = set;
    q.oldSet = sameSet(set, r.old) ? undefined : [...r.old];
    const b = new Batch(++q.batchNo, Date.now());
    b.onCommit = () => this.#established(q, r, set);
    q.pending.push(b);
    for (const id of set) {
      if (id === this.#o.nodeId) continue;
      const f = this.#follower(id);
      if (f.conn !== undefined) this.#snapshot(f, q);
    }
    this.#flushSoon();
    this.#tryCommit(q);
  }

  /** A majority holds the recovered copy: the set goes to etcd, and the queue is served. */
  #established(q: ReplicatedQueueStore, r: Recovery, set: string[]): void {
    this.#o.putSet(q.name, r.epoch, JSON.stringify({ epoch: r.epoch, nodes: set })).then(
      (ok) => {
        if (q.role !== "recovering" || q.epoch !== r.epoch) return;
        if (!ok) return this.#stepDown(q, "a later leader took it");
        this.#recoveries.delete(q.name);
        q.oldSet = undefined;
        q.role = "leader";
        this.#recovered++;
        let maxId = 0;
        for (const m of q.live()) if (m.id > maxId) maxId = m.id;
        this.#o.log(
          "info",
          `leading ${q.name} (epoch ${r.epoch}, replicas ${
            set.join(",")
          }, ${q.index.size} messages)`,
        );
        this.#o.serving(q.name, maxId);
        this.#release(q);
      },
      (e) => {
        this.#o.log("warn", `replica set of ${q.name} not stored: ${(e as Error).message}`);
        r.deadline = 0; // tried again by the next tick
      },
    );
  }

  /** The publishes held while the queue was claimed and recovered: stored now, as any publish. */
  #release(q: ReplicatedQueueStore): void {
    for (const h of q.held.splice(0)) {
      if (q.index.has(h.msg.id)) {
        // The recovered copy has a message of that id (another node's clock): not this one.
        h.reject(unavailable(`${q.name}: id clash with a recovered message; retry`));
        continue;
      }
      try {
        const p = q.push(h.msg, h.dueAt);
        if (p === undefined) h.resolve();
        else p.then(h.resolve, h.reject);
      } catch (e) {
        h.reject(e);
      }
    }
    this.#o.serving(q.name, 0);
  }

  /** This node, the old set's live members, then other live members, up to `--replicas`. */
  #chooseSet(queue: string, old: readonly string[]): string[] {
    const me = this.#o.nodeId;
    const want = Math.min(this.#o.replicas, Math.max(1, this.#members.size));
    const set = [me];
    for (const id of old) if (set.length < want && id !== me && this.#members.has(id)) set.push(id);
    const others = [...this.#members.keys()].filter((id) => !set.includes(id)).sort();
    // Spread the queues' replicas over the nodes: start the others at a place of the queue's own.
    const start = others.length === 0 ? 0 : hash(queue) % others.length;
    for (let i = 0; i < others.length && set.length < want; i++) {
      set.push(others[(start + i) % others.length]);
    }
    return set;
  }

  #stepDown(q: ReplicatedQueueStore, why: string): void {
    if (q.role !== "leader" && q.role !== "recovering") return;
    this.#o.log("warn", `no longer serving ${q.name} (epoch ${q.epoch}): ${why}`);
    q.role = q.index.size > 0 ? "follower" : "none";
    // What its consumers hold is ready again in its copy, as in every other replica's; their
    // late ACKs leave the copy alone (and are answered as refused).
    const now = Date.now();
    for (const m of q.live()) if (m.state === MessageState.INFLIGHT) q.inner.requeue(m, 0, now);
    q.rejectAll(unavailable(`${q.name} lost its leader (${why}); outcome unknown, retry`));
    for (const h of q.held.splice(0)) h.reject(this.refusal(q));
    q.set = [];
    q.oldSet = undefined;
    q.joining = undefined;
    this.#recoveries.delete(q.name);
    for (const f of this.#followers.values()) f.synced.delete(q);
  }

  // --- follower: the connections leaders dialled ---

  /** A `REPL <node-id>` connection handed over by the interconnect (its first line read). */
  accept(conn: Conn, leader: string): void {
    if (this.#closed) return conn.close();
    this.#inbound.add(conn);
    this.#track(this.#readLeader(conn, leader));
  }

  async #readLeader(conn: Conn, leader: string): Promise<void> {
    const parser = new ReplParser();
    let frames = 0;
    let chain: Promise<void> = Promise.resolve();
    try {
      for await (const chunk of conn.readable) {
        const replies: Uint8Array[] = [];
        const touched = new Set<ReplicatedQueueStore>();
        for (const fr of parser.push(chunk)) {
          if (fr.op === "REPL") throw new Error("a second REPL line");
          frames++;
          this.#fromLeader(leader, fr, replies, touched);
        }
        // Acknowledged once the records, then the queues' states, are stored as --fsync
        // says: a state never claims records its copy does not hold (the records first).
        const stored = this.#store.inner.synced();
        this.#store.inner.writePending();
        const states = [...touched].map((q) => [q.name, { ...q.state }] as const);
        const save = () =>
          Promise.all(states.map(([name, st]) => this.#store.states.save(name, st)));
        const saved = stored === undefined ? save() : stored.then(save);
        replies.push(replLine("ACK", frames));
        const out = concat(replies);
        chain = chain.then(() => saved).then(() => conn.write(out)).catch(() => conn.close());
      }
    } catch (e) {
      if (!this.#closed) {
        this.#o.log("warn", `replication from ${leader} cut: ${(e as Error).message}`);
      }
    } finally {
      await chain;
      conn.close();
      this.#inbound.delete(conn);
    }
  }

  #fromLeader(
    leader: string,
    fr: ReplFrame,
    replies: Uint8Array[],
    touched: Set<ReplicatedQueueStore>,
  ): void {
    if (fr.op === "ACK" || fr.op === "FENCED" || fr.op === "HAVE" || fr.op === "REPL") {
      throw new Error(`${fr.op} from a leader`);
    }
    if (!this.#store.queues.has(fr.queue) && this.#store.queues.size >= CLUSTER_LEADERS_MAX) {
      throw new Error(`over CLUSTER_LEADERS_MAX replicated queues`);
    }
    const q = this.#store.queue(fr.queue);
    const seen = this.#o.leader(fr.queue);
    const known = seen === undefined ? 0 : seen.epoch;
    if (fr.epoch < q.state.epoch || fr.epoch < known) {
      // A deposed leader: refused, and told so.
      this.#fenced++;
      replies.push(replLine("FENCED", fr.queue, Math.max(q.state.epoch, known)));
      return;
    }
    if (fr.epoch > q.state.epoch) {
      q.state.epoch = fr.epoch;
      touched.add(q);
    }
    if ((q.role === "leader" || q.role === "recovering") && q.epoch < fr.epoch) {
      this.#stepDown(q, `${leader} leads it with epoch ${fr.epoch}`);
    }
    if (q.role === "leader" || q.role === "recovering") {
      // Our own epoch from another node cannot be; a PULL/FETCH of it is a peer's confusion.
      replies.push(replLine("FENCED", fr.queue, q.state.epoch));
      return;
    }
    switch (fr.op) {
      case "FETCH":
        touched.add(q); // the promise is stored before the answer leaves
        replies.push(replLine("HAVE", q.name, fr.epoch, q.state.dataEpoch, q.state.lsn));
        return;
      case "PULL": {
        const w = new FrameWriter();
        w.line("SNAP", q.name, fr.epoch);
        for (const m of q.live()) w.pub(q.name, fr.epoch, 0, m);
        w.line("DONE", q.name, fr.epoch, q.state.lsn);
        replies.push(w.take().bytes);
        return;
      }
      case "SNAP":
        q.staging = new Map();
        return;
      case "PUB":
        if (fr.lsn === 0) return stage(q, fr.msg);
        q.applyPub(fr.msg);
        break;
      case "DEL":
        q.applyDel(fr.id);
        break;
      case "DONE":
        q.applySnapshot();
        break;
    }
    q.role = "follower";
    q.state.dataEpoch = fr.epoch;
    q.state.lsn = fr.lsn;
    touched.add(q);
  }

  // --- upkeep ---

  /** Commit deadlines, lost leases, stalled recoveries, forgotten copies. */
  #tick(): void {
    const now = Date.now();
    for (const q of [...this.#store.queues.values()]) {
      if (q.role === "leader" && !this.#o.leads(q.name)) this.#stepDown(q, "its lease is gone");
      // Its lease lived through an etcd outage (etcd restores leases): the key, and so the
      // epoch, are still ours, but the queue stopped being served. Taken up again.
      if (
        (q.role === "none" || q.role === "follower") && this.#o.leads(q.name) &&
        this.#o.leader(q.name)?.node === this.#o.nodeId
      ) this.#recover(q, this.#o.leader(q.name)!.epoch);
      if (q.role === "leader" && q.oldSet === undefined) this.#reshape(q);
      while (q.pending.length > 0 && now - q.pending[0].createdAt > CLUSTER_COMMIT_MS_MAX) {
        if (q.role === "recovering") break; // its own deadline below
        this.#timeouts++;
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
      if (q.role === "none" && q.size === 0 && q.held.length === 0 && !this.#o.used(q.name)) {
        this.#store.queues.delete(q.name);
        this.#store.inner.dropQueue(q.name);
      }
    }
    for (const [queue, r] of this.#recoveries) {
      if (now < r.deadline) continue;
      const q = this.#store.queue(queue);
      if (!this.#o.leads(queue)) {
        this.#stepDown(q, "its lease is gone");
        continue;
      }
      // Not enough answers, or a follower that never acknowledged: ask again.
      this.#o.log("warn", `recovery of ${queue} (epoch ${r.epoch}) stalled; trying again`);
      this.#recoveries.delete(queue);
      q.role = "none";
      this.#recover(q, r.epoch);
    }
  }

  #track(loop: Promise<void>): void {
    this.#reading.add(loop);
    const done = () => void this.#reading.delete(loop);
    loop.then(done, done);
  }
}

function stage(q: ReplicatedQueueStore, msg: Message): void {
  const s = q.staging ??= new Map();
  if (s.size >= CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX) {
    throw new Error(`snapshot of ${q.name} over CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX`);
  }
  s.set(msg.id, msg);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function concat(parts: Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
