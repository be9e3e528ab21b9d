/**
 * Replication, taking a queue over: a new leader asks its replica set what
 * each holds (`FETCH`), pulls the most complete copy (`PULL`), sends it to
 * its new set and serves once a majority of both sets hold it; and giving a
 * queue up (`stepDown`).
 *
 * @module
 */
import { CLUSTER_RECOVERY_MS_MAX, CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX } from "../config/mod.ts";
import { type Message, MessageState } from "../storage/mod.ts";
import { replLine } from "./repl_frames.ts";
import { majority, type Recovery, refusal, type ReplCore } from "./repl_core.ts";
import { flushSoon, receivers, save, snapshot, tryCommit } from "./repl_leader.ts";
import { follower } from "./repl_links.ts";
import { markRecovered } from "./redelivered.ts";
import { Batch, type ReplicatedQueueStore, unavailable } from "./replicated_store.ts";

/** This node won the leadership of `q` at `epoch`: asks the old set what each holds. */
export function recover(c: ReplCore, q: ReplicatedQueueStore, epoch: number): void {
  c.elections++;
  q.rejectAll(unavailable(`${q.name} changed leader`));
  q.role = "recovering";
  q.epoch = epoch;
  q.set = [];
  q.oldSet = undefined;
  q.joining = undefined;
  q.peerBatch.clear();
  q.batchNo = q.committedNo = 0;
  if (epoch > q.state.epoch) q.state.epoch = epoch;
  save(c, q);
  const me = c.o.nodeId;
  const old = c.sets.get(q.name)?.nodes ?? [me];
  const r: Recovery = {
    epoch,
    old,
    have: new Map([[me, { dataEpoch: q.state.dataEpoch, lsn: q.state.lsn }]]),
    deadline: Date.now() + CLUSTER_RECOVERY_MS_MAX,
    pulling: undefined,
  };
  c.recoveries.set(q.name, r);
  c.o.log("info", `recovering ${q.name} (epoch ${epoch}) from ${old.join(",")}`);
  for (const id of old) {
    if (id === me) continue;
    const f = follower(c, id);
    if (f.conn !== undefined) f.send(replLine("FETCH", q.name, epoch));
  }
  flushSoon(c);
  recoveryStep(c, q, r);
}

/** The next step of a recovery, once its answers allow it. */
export function recoveryStep(c: ReplCore, q: ReplicatedQueueStore, r: Recovery): void {
  if (q.role !== "recovering" || c.recoveries.get(q.name) !== r || r.pulling !== undefined) {
    return;
  }
  if (r.pulled === undefined) {
    const answered = r.old.filter((id) => r.have.has(id)).length;
    if (answered < majority(r.old.length)) return;
    // The most complete copy: the largest data epoch, then the largest lsn.
    let best = c.o.nodeId;
    let top = r.have.get(best)!;
    for (const [id, h] of r.have) {
      if (h.dataEpoch > top.dataEpoch || (h.dataEpoch === top.dataEpoch && h.lsn > top.lsn)) {
        best = id;
        top = h;
      }
    }
    if (best !== c.o.nodeId) {
      r.pulling = best;
      const f = follower(c, best);
      if (f.conn !== undefined) f.send(replLine("PULL", q.name, r.epoch));
      flushSoon(c);
      return;
    }
    r.pulled = top;
  }
  if (q.set.length > 0) return; // establishing already
  // The copy is the most complete: ours now, under our epoch; then to the new set.
  q.state.dataEpoch = r.epoch;
  q.state.lsn = Math.max(q.state.lsn, r.pulled.lsn);
  save(c, q);
  const set = chooseSet(c, q.name, r.old);
  q.set = set;
  q.oldSet = sameSet(set, r.old) ? undefined : [...r.old];
  const b = new Batch(++q.batchNo, Date.now());
  b.onCommit = () => established(c, q, r, set);
  q.pending.push(b);
  for (const id of receivers(c, q)) {
    const f = follower(c, id);
    if (f.conn !== undefined) snapshot(c, f, q);
  }
  flushSoon(c);
  tryCommit(c, q);
}

/** A majority holds the recovered copy: the set goes to etcd, and the queue is served. */
export function established(
  c: ReplCore,
  q: ReplicatedQueueStore,
  r: Recovery,
  set: string[],
): void {
  c.o.putSet(q.name, r.epoch, JSON.stringify({ epoch: r.epoch, nodes: set })).then(
    (ok) => {
      if (q.role !== "recovering" || q.epoch !== r.epoch) return;
      if (!ok) return stepDown(c, q, "a later leader took it");
      c.recoveries.delete(q.name);
      q.oldSet = undefined;
      q.role = "leader";
      c.recovered++;
      // Redeliveries the old leader scheduled (NACK delays) wait for their time here too; what
      // it may have delivered counts one delivery (redelivered.ts).
      const now = Date.now();
      q.adoptDues(now);
      const { maxId, marked } = markRecovered(q, now);
      c.o.log(
        "info",
        `leading ${q.name} (epoch ${r.epoch}, replicas ${set.join(",")}, ${q.index.size} ` +
          `messages, ${marked} marked redelivered)`,
      );
      c.o.serving(q.name, maxId);
      release(c, q);
    },
    (e) => {
      c.o.log("warn", `replica set of ${q.name} not stored: ${(e as Error).message}`);
      r.deadline = 0; // tried again by the next tick
    },
  );
}

/** The publishes held while the queue was claimed and recovered: stored now, as any publish. */
export function release(c: ReplCore, q: ReplicatedQueueStore): void {
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
  c.o.serving(q.name, 0);
}

/** This node, the old set's live members, then other live members, up to `--replicas`. */
export function chooseSet(c: ReplCore, queue: string, old: readonly string[]): string[] {
  const me = c.o.nodeId;
  const want = Math.min(c.o.replicas, Math.max(1, c.members.size));
  const set = [me];
  for (const id of old) if (set.length < want && id !== me && c.members.has(id)) set.push(id);
  const others = [...c.members.keys()].filter((id) => !set.includes(id)).sort();
  // Spread the queues' replicas over the nodes: start the others at a place of the queue's own.
  const start = others.length === 0 ? 0 : hash(queue) % others.length;
  for (let i = 0; i < others.length && set.length < want; i++) {
    set.push(others[(start + i) % others.length]);
  }
  return set;
}

/** Stops serving `q`: in-flight messages ready again, pending commits failed. */
export function stepDown(c: ReplCore, q: ReplicatedQueueStore, why: string): void {
  if (q.role !== "leader" && q.role !== "recovering") return;
  c.o.log("warn", `no longer serving ${q.name} (epoch ${q.epoch}): ${why}`);
  q.role = q.index.size > 0 ? "follower" : "none";
  // What its consumers hold is ready again in its copy, as in every other replica's; their
  // late ACKs leave the copy alone (and are answered as refused).
  const now = Date.now();
  for (const m of q.live()) if (m.state === MessageState.INFLIGHT) q.inner.requeue(m, 0, now);
  q.rejectAll(unavailable(`${q.name} lost its leader (${why}); outcome unknown, retry`));
  for (const h of q.held.splice(0)) h.reject(refusal(c, q));
  q.set = [];
  q.oldSet = undefined;
  q.joining = undefined;
  c.recoveries.delete(q.name);
  for (const f of c.followers.values()) f.synced.delete(q);
  c.o.deposed?.(q.name, why);
}

/** One message of a snapshot being received (applied at its `DONE`). */
export function stage(q: ReplicatedQueueStore, msg: Message): void {
  const s = q.staging ??= new Map();
  if (s.size >= CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX) {
    throw new Error(`snapshot of ${q.name} over CLUSTER_REPL_SNAPSHOT_MESSAGES_MAX`);
  }
  s.set(msg.id, msg);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
