/**
 * The state replication's parts share (replication.ts, repl_leader.ts,
 * repl_links.ts, repl_recovery.ts, repl_follower.ts), and the leader's side
 * of one follower node.
 *
 * @module
 */
import { BrokerError } from "../broker/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { MemberInfo } from "./node.ts";
import type { ReplicatedQueueStore, ReplicatedStore } from "./replicated_store.ts";
import type { ReplicationOptions } from "./replication.ts";
import { unavailable } from "./replicated_store.ts";

/** A queue's recovery by its new leader. */
export interface Recovery {
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
export class Follower {
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

/** How many of a set of `n` make a majority. */
export const majority = (n: number) => Math.floor(n / 2) + 1;

/** Replication's state: the node's options, its followers, members, replica sets and recoveries. */
export class ReplCore {
  readonly o: ReplicationOptions;
  readonly store: ReplicatedStore;
  readonly followers = new Map<string, Follower>();
  readonly members = new Map<string, MemberInfo>();
  /** Replica sets as etcd has them. */
  readonly sets = new Map<string, { epoch: number; nodes: string[] }>();
  readonly recoveries = new Map<string, Recovery>();
  readonly inbound = new Set<Conn>();
  readonly reading = new Set<Promise<void>>();
  readonly dirty = new Set<ReplicatedQueueStore>();
  /** The leader's own state saves in flight (a close waits for them). */
  readonly saving = new Set<Promise<void>>();
  flushing = false;
  closed = false;
  elections = 0;
  recovered = 0;
  timeouts = 0;
  fenced = 0;

  constructor(o: ReplicationOptions) {
    this.o = o;
    this.store = o.store;
  }
}

/** Why `q` refuses a write here: recovering, leaderless, or led by another node. */
export function refusal(c: ReplCore, q: ReplicatedQueueStore): BrokerError {
  if (q.role === "recovering") {
    return unavailable(`${q.name} is recovering on its new leader; retry`);
  }
  const l = c.o.leader(q.name);
  if (l === undefined) return unavailable(`${q.name} has no leader now; retry`);
  if (l.node === c.o.nodeId) return unavailable(`${q.name} is not ready here yet; retry`);
  return new BrokerError("NOT_LEADER", `${l.node} ${q.name}`);
}

/** Keeps a reading loop until it ends (a close waits for them). */
export function track(c: ReplCore, loop: Promise<void>): void {
  c.reading.add(loop);
  const done = () => void c.reading.delete(loop);
  loop.then(done, done);
}
