/**
 * Replication, the leader's connections to its followers: dialled on
 * demand, redialled after `CLUSTER_LINK_REDIAL_MS`, written one coalesced
 * buffer at a time, and read for the followers' answers.
 *
 * @module
 */
import { CLUSTER_LINK_REDIAL_MS, CLUSTER_REPL_PENDING_BYTES_MAX } from "../config/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import { splitHostPort } from "./interconnect.ts";
import { replLine, ReplParser } from "./repl_frames.ts";
import { Follower, type ReplCore, track } from "./repl_core.ts";
import { fromFollower, receivers, snapshot } from "./repl_leader.ts";

/** Writes a follower's queued frames, one coalesced buffer at a time. */
export async function write(c: ReplCore, f: Follower): Promise<void> {
  if (f.writing) return;
  f.writing = true;
  while (f.outBytes > 0 && f.conn !== undefined) {
    const conn = f.conn;
    if (f.outBytes > CLUSTER_REPL_PENDING_BYTES_MAX) {
      c.o.log("warn", `replication to ${f.id} over CLUSTER_REPL_PENDING_BYTES_MAX: cut`);
      conn.close();
      down(c, f, conn);
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
      down(c, f, conn);
    }
  }
  f.writing = false;
}

/** The follower `id`, made (and dialled) on first use. */
export function follower(c: ReplCore, id: string): Follower {
  let f = c.followers.get(id);
  if (f === undefined) {
    c.followers.set(id, f = new Follower(id));
    dial(c, f);
  }
  return f;
}

/** Dials a member; on connect, sends `REPL`, its snapshots and the recoveries' asks. */
export function dial(c: ReplCore, f: Follower): void {
  const m = c.members.get(f.id);
  if (c.closed || m === undefined) return; // dialled when it is a member again
  f.dialing = true;
  const [host, port] = splitHostPort(m.advertise);
  c.o.dial(host, port).then((conn) => {
    f.dialing = false;
    if (c.closed) return conn.close();
    f.conn = conn;
    f.sent = f.acked = 0;
    f.out = [];
    f.outBytes = 0;
    f.waiters = [];
    f.waitHead = 0;
    f.synced.clear();
    f.send(replLine("REPL", c.o.nodeId), 0);
    // Every queue it is a follower (or a joiner) of starts with a snapshot; recoveries ask again.
    for (const q of c.store.queues.values()) {
      const sending = q.role === "leader" || (q.role === "recovering" && q.set.length > 0);
      if (sending && (receivers(c, q).includes(f.id) || q.joining === f.id)) {
        snapshot(c, f, q);
      }
    }
    for (const [queue, r] of c.recoveries) {
      if (r.old.includes(f.id) && !r.have.has(f.id)) f.send(replLine("FETCH", queue, r.epoch));
      if (r.pulling === f.id) f.send(replLine("PULL", queue, r.epoch));
    }
    track(c, readFollower(c, f, conn));
    write(c, f);
  }, () => {
    f.dialing = false;
    redial(c, f);
  });
}

/** Dials again after `CLUSTER_LINK_REDIAL_MS`. */
export function redial(c: ReplCore, f: Follower): void {
  if (c.closed || f.timer !== undefined) return;
  f.timer = setTimeout(() => {
    f.timer = undefined;
    if (f.conn === undefined && !f.dialing) dial(c, f);
  }, CLUSTER_LINK_REDIAL_MS);
}

/** The connection to a follower is gone: what it was sent is forgotten, and it is redialled. */
export function down(c: ReplCore, f: Follower, conn: Conn): void {
  if (f.conn !== conn) return;
  f.conn = undefined;
  f.synced.clear();
  f.waiters = [];
  f.waitHead = 0;
  f.out = [];
  f.outBytes = 0;
  redial(c, f);
}

/** What a follower sends back on the connection we dialled. */
export async function readFollower(c: ReplCore, f: Follower, conn: Conn): Promise<void> {
  const parser = new ReplParser();
  try {
    for await (const chunk of conn.readable) {
      for (const fr of parser.push(chunk)) fromFollower(c, f, fr);
    }
  } catch (e) {
    if (!c.closed) c.o.log("warn", `replication to ${f.id} cut: ${(e as Error).message}`);
  } finally {
    conn.close();
    down(c, f, conn);
  }
}

/** The parts as one buffer (`total`: their length, when known). */
export function concat(parts: Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
