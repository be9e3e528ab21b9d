/**
 * Replication, the leader's side: each tick's records go to the followers
 * as one write per follower, each commit batch waits at its followers' frame
 * counts and commits once a majority of the replica set (and of the old set
 * while one is replaced) acknowledged it; snapshots; replica set changes.
 *
 * @module
 */
import { FrameWriter, type ReplFrame } from "./repl_frames.ts";
import { type Follower, majority, type ReplCore } from "./repl_core.ts";
import { follower, write } from "./repl_links.ts";
import { recoveryStep, stage, stepDown } from "./repl_recovery.ts";
import type { ReplicatedQueueStore } from "./replicated_store.ts";

/**
 * The followers that get `q`'s records now: connected, and sent its snapshot.
 * While the set changes, the old set's members too: a commit needs a
 * majority of both, and a new leader outside a set of two (the old set
 * minus one member plus itself) would otherwise wait for ever on the member
 * it left out.
 */
export function* targets(c: ReplCore, q: ReplicatedQueueStore): IterableIterator<Follower> {
  for (const id of receivers(c, q)) {
    const f = c.followers.get(id);
    if (f?.conn !== undefined && f.synced.has(q)) yield f;
  }
  if (q.joining !== undefined) {
    const f = c.followers.get(q.joining);
    if (f?.conn !== undefined && f.synced.has(q)) yield f;
  }
}

/** The other members of the set, and of the old set while it changes. */
export function receivers(c: ReplCore, q: ReplicatedQueueStore): string[] {
  const me = c.o.nodeId;
  const ids = q.set.filter((id) => id !== me);
  for (const id of q.oldSet ?? []) if (id !== me && !ids.includes(id)) ids.push(id);
  return ids;
}

/** Ends the tick once this task is done (one flush per tick, whatever the records). */
export function flushSoon(c: ReplCore): void {
  if (c.flushing) return;
  c.flushing = true;
  queueMicrotask(() => flush(c));
}

/** End of tick: each batch waits at its followers' frame counts; every follower's frames go out. */
export function flush(c: ReplCore): void {
  c.flushing = false;
  c.store.endTick();
  for (const q of c.dirty) {
    sendFrames(c, q);
    const b = q.tickBatch;
    q.tickBatch = undefined;
    if (b !== undefined) {
      for (const f of targets(c, q)) f.waiters.push({ seq: f.sent, q, no: b.no });
    }
    tryCommit(c, q);
    // The leader's own copy: its lsn, for a later recovery (saved behind its records).
    const local = q.tickLocal;
    q.tickLocal = undefined;
    save(c, q, local);
  }
  c.dirty.clear();
  for (const f of c.followers.values()) if (f.outBytes > 0) write(c, f);
}

/** The queue's frames so far this tick, to each follower that gets its records. */
export function sendFrames(c: ReplCore, q: ReplicatedQueueStore): void {
  if (q.frames === undefined || q.frames.frames === 0) return;
  const { bytes, frames } = q.frames.take();
  for (const f of targets(c, q)) f.send(bytes, frames);
}

/**
 * Saves the queue's state as it is now; after `after` (the tick's local
 * records on the device) when given, so that it never claims records the
 * local copy might not hold.
 */
export function save(c: ReplCore, q: ReplicatedQueueStore, after?: Promise<void>): void {
  const st = { ...q.state };
  const save = () => c.store.states.save(q.name, st);
  try {
    const p = after === undefined ? save() : after.then(save);
    if (p === undefined) return;
    const done = p.catch((e) => c.o.log("warn", `state of ${q.name}: ${e}`));
    c.saving.add(done);
    done.then(() => c.saving.delete(done));
  } catch (e) {
    c.o.log("warn", `state of ${q.name} not saved: ${(e as Error).message}`);
  }
}

/** Whether a batch number is held by a majority of `set` (this node holds every batch it made). */
export function holds(
  c: ReplCore,
  q: ReplicatedQueueStore,
  set: readonly string[],
  no: number,
): boolean {
  let n = 0;
  for (const id of set) {
    if (id === c.o.nodeId || (q.peerBatch.get(id) ?? 0) >= no) n++;
  }
  return n >= majority(set.length);
}

/** Commits, in order, every pending batch a majority of the set (and of the old set) holds. */
export function tryCommit(c: ReplCore, q: ReplicatedQueueStore): void {
  while (q.pending.length > 0) {
    const b = q.pending[0];
    if (!holds(c, q, q.set, b.no)) return;
    if (q.oldSet !== undefined && !holds(c, q, q.oldSet, b.no)) return;
    q.pending.shift();
    q.committedNo = b.no;
    b.resolve();
    b.onCommit?.();
  }
}

/** A snapshot of `q` to `f`: what it holds now; records follow. Counts as holding batch `no` once acknowledged. */
export function snapshot(c: ReplCore, f: Follower, q: ReplicatedQueueStore): void {
  // This tick's records go to the others first: the snapshot holds them already.
  sendFrames(c, q);
  const w = new FrameWriter();
  w.line("SNAP", q.name, q.epoch);
  // A recovering leader's ready messages may have due times (NACK delays it adopts once
  // served, sending no DUE for them): the new set gets them too.
  const now = Date.now();
  for (const m of q.live()) w.pub(q.name, q.epoch, 0, m, q.dueOf(m, now));
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
export function reshape(c: ReplCore, q: ReplicatedQueueStore): void {
  const me = c.o.nodeId;
  const gone = q.set.find((id) => id !== me && !c.members.has(id));
  const want = Math.min(c.o.replicas, Math.max(1, c.members.size));
  if (q.joining === undefined) {
    if (gone === undefined && q.set.length >= want) return;
    const candidate = [...c.members.keys()].filter((id) => !q.set.includes(id)).sort()[0];
    if (candidate === undefined) return;
    q.joining = candidate;
    q.joinNo = Number.MAX_SAFE_INTEGER; // until its snapshot is sent
    const f = follower(c, candidate);
    if (f.conn !== undefined && !f.synced.has(q)) {
      snapshot(c, f, q);
      flushSoon(c);
    }
    return;
  }
  const joining = q.joining;
  if (!c.members.has(joining)) {
    q.joining = undefined;
    return;
  }
  if ((q.peerBatch.get(joining) ?? -1) < q.joinNo) return;
  const set = (gone === undefined ? q.set : q.set.filter((id) => id !== gone)).concat(joining);
  if (!holds(c, q, set, q.committedNo)) return;
  const old = q.set;
  q.oldSet = old;
  q.set = set;
  q.joining = undefined;
  const epoch = q.epoch;
  c.o.putSet(q.name, epoch, JSON.stringify({ epoch, nodes: set })).then((ok) => {
    if (q.role !== "leader" || q.epoch !== epoch) return;
    if (!ok) return stepDown(c, q, "a later leader took it");
    if (q.oldSet === old) q.oldSet = undefined;
    c.o.log("info", `replicas of ${q.name}: ${set.join(",")} (were ${old.join(",")})`);
  }, (e) => {
    // etcd away: back to the old set (what committed meanwhile is on both); tried again later.
    c.o.log("warn", `replica set of ${q.name} not stored: ${(e as Error).message}`);
    if (q.oldSet === old) {
      q.set = old;
      q.oldSet = undefined;
      // Out of the set it gets no records: when it joins again it starts from a new snapshot
      // (else its join waited for a snapshot never sent, and the set kept the member that left).
      c.followers.get(set[set.length - 1])?.synced.delete(q);
    }
  });
}

/** A follower's answer: `ACK`, `FENCED`, `HAVE`, or the copy a recovery `PULL`ed. */
export function fromFollower(c: ReplCore, f: Follower, fr: ReplFrame): void {
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
        if (q.role === "leader" || q.role === "recovering") tryCommit(c, q);
      }
      return;
    }
    case "FENCED": {
      const q = c.store.queues.get(fr.queue);
      if (
        q !== undefined && (q.role === "leader" || q.role === "recovering") && fr.epoch > q.epoch
      ) {
        c.fenced++;
        stepDown(c, q, `${f.id} promised epoch ${fr.epoch}`);
      }
      return;
    }
    case "HAVE": {
      const r = c.recoveries.get(fr.queue);
      if (r === undefined || r.epoch !== fr.epoch) return;
      r.have.set(f.id, { dataEpoch: fr.dataEpoch, lsn: fr.lsn });
      recoveryStep(c, c.store.queue(fr.queue), r);
      return;
    }
    case "SNAP":
    case "PUB":
    case "DONE": {
      // The copy we PULLed from the most complete replica.
      const r = c.recoveries.get(fr.queue);
      if (r === undefined || r.pulling !== f.id || r.epoch !== fr.epoch) return;
      const q = c.store.queue(fr.queue);
      if (fr.op === "SNAP") q.staging = new Map();
      else if (fr.op === "PUB") stage(q, fr.msg);
      else {
        q.applySnapshot();
        r.pulling = undefined;
        r.pulled = r.have.get(f.id);
        recoveryStep(c, q, r);
      }
      return;
    }
    default:
      throw new Error(`${fr.op} from a follower`);
  }
}
