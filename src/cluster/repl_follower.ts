/**
 * Replication, the follower's side: the connections leaders dialled. Each
 * read's records are applied to the local copy, the queues' states saved,
 * and one `ACK` answers them once both are stored as `--fsync` says; a
 * record of an older epoch than promised is refused (`FENCED`).
 *
 * @module
 */
import { CLUSTER_LEADERS_MAX } from "../config/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import { FrameWriter, type ReplFrame, replLine, ReplParser } from "./repl_frames.ts";
import { type ReplCore, track } from "./repl_core.ts";
import { concat } from "./repl_links.ts";
import { stage, stepDown } from "./repl_recovery.ts";
import type { ReplicatedQueueStore } from "./replicated_store.ts";

/** A `REPL <node-id>` connection handed over by the interconnect (its first line read). */
export function accept(c: ReplCore, conn: Conn, leader: string): void {
  if (c.closed) return conn.close();
  c.inbound.add(conn);
  track(c, readLeader(c, conn, leader));
}

/** Reads a leader's records; one `ACK` per read once they and the states are stored. */
export async function readLeader(c: ReplCore, conn: Conn, leader: string): Promise<void> {
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
        fromLeader(c, leader, fr, replies, touched);
      }
      // Acknowledged once the records, then the queues' states, are stored as --fsync
      // says: a state never claims records its copy does not hold (the records first).
      const stored = c.store.inner.synced();
      c.store.inner.writePending();
      const states = [...touched].map((q) => [q.name, { ...q.state }] as const);
      const save = () => Promise.all(states.map(([name, st]) => c.store.states.save(name, st)));
      const saved = stored === undefined ? save() : stored.then(save);
      replies.push(replLine("ACK", frames));
      const out = concat(replies);
      chain = chain.then(() => saved).then(() => conn.write(out)).catch(() => conn.close());
    }
  } catch (e) {
    if (!c.closed) {
      c.o.log("warn", `replication from ${leader} cut: ${(e as Error).message}`);
    }
  } finally {
    await chain;
    conn.close();
    c.inbound.delete(conn);
  }
}

/** One frame from a leader: applied unless its epoch is older than promised. */
export function fromLeader(
  c: ReplCore,
  leader: string,
  fr: ReplFrame,
  replies: Uint8Array[],
  touched: Set<ReplicatedQueueStore>,
): void {
  if (fr.op === "ACK" || fr.op === "FENCED" || fr.op === "HAVE" || fr.op === "REPL") {
    throw new Error(`${fr.op} from a leader`);
  }
  if (!c.store.queues.has(fr.queue) && c.store.queues.size >= CLUSTER_LEADERS_MAX) {
    throw new Error(`over CLUSTER_LEADERS_MAX replicated queues`);
  }
  const q = c.store.queue(fr.queue);
  const seen = c.o.leader(fr.queue);
  const known = seen === undefined ? 0 : seen.epoch;
  if (fr.epoch < q.state.epoch || fr.epoch < known) {
    // A deposed leader: refused, and told so.
    c.fenced++;
    replies.push(replLine("FENCED", fr.queue, Math.max(q.state.epoch, known)));
    return;
  }
  if (fr.epoch > q.state.epoch) {
    q.state.epoch = fr.epoch;
    touched.add(q);
  }
  if ((q.role === "leader" || q.role === "recovering") && q.epoch < fr.epoch) {
    stepDown(c, q, `${leader} leads it with epoch ${fr.epoch}`);
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
      const now = Date.now();
      for (const m of q.live()) w.pub(q.name, fr.epoch, 0, m, q.dueOf(m, now));
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
    case "DUE":
      q.applyDue(fr.id, fr.dueAt);
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
