/**
 * A follower's NACK due times (src/cluster/replicated_store.ts, `dues`) in
 * process, over the real memory store: a `DUE` for a message of the copy is
 * kept, one for a message it lacks is not, a removal forgets it, a
 * snapshot's message delayed after a delivery brings its own; when the copy
 * starts being served, `adoptDues` delays exactly the messages still due
 * later (the others stay ready, in their order), and forgets them all. The
 * due times travel in a pulled copy (`FrameWriter.pub` with a due, as a
 * replica answers `PULL`): a new leader that missed the `DUE` frame but holds
 * the message takes it from the copy it pulls; and the snapshot it then sends
 * its new replica set (`snapshot`) carries them, so a second failover before
 * them is not early either.
 */
import assert from "node:assert/strict";
import { FrameWriter, ReplParser } from "../../src/cluster/repl_frames.ts";
import { Follower, type ReplCore } from "../../src/cluster/repl_core.ts";
import { snapshot } from "../../src/cluster/repl_leader.ts";
import { ReplicatedStore } from "../../src/cluster/replicated_store.ts";
import { ReplStateFiles } from "../../src/cluster/repl_state.ts";
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { MemoryStore, Message, MessageState } from "../../src/storage/mod.ts";

const enc = new TextEncoder();

function message(id: number): Message {
  return new Message(
    id,
    "queue:d",
    enc.encode(`m${id}`),
    0,
    0,
    0,
    0,
    undefined,
    undefined,
    undefined,
  );
}

Deno.test("repl dues: kept for the copy's messages, adopted as delays when it is served", async () => {
  const store = new ReplicatedStore(
    new MemoryStore(),
    new ReplStateFiles(nodeFileSystem, undefined, false),
  );
  try {
    const q = store.queue("queue:d");
    const now = 1_800_000_000_000;
    for (const id of [1, 2, 3, 4]) q.applyPub(message(id));
    q.applyDue(2, now + 60_000);
    q.applyDue(3, now - 1); // already due: ready
    q.applyDue(9, now + 60_000); // not in the copy
    q.applyDue(4, now + 60_000);
    q.applyDel(4); // removed: forgotten
    assert.deepEqual([...q.dues.keys()].sort(), [2, 3]);
    // A snapshot's message delayed after a delivery (a NACK at its leader) brings its due time.
    const nacked = message(5);
    nacked.deliveries = 1;
    nacked.state = MessageState.DELAYED;
    nacked.dueAt = now + 30_000;
    q.applyPub(nacked);
    assert.equal(q.dues.get(5), now + 30_000);
    assert.equal(q.dueOf(q.index.get(2)!, now), now + 60_000);
    assert.equal(q.dueOf(q.index.get(3)!, now), 0, "past due");
    assert.equal(q.inner.ready, 4, "the copy keeps them ready");

    q.adoptDues(now);
    assert.equal(q.dues.size, 0);
    assert.deepEqual([q.inner.ready, q.inner.delayed], [2, 2]);
    assert.deepEqual([q.index.get(2)!.state, q.index.get(2)!.dueAt], [
      MessageState.DELAYED,
      now + 60_000,
    ]);
    assert.deepEqual([q.index.get(5)!.state, q.index.get(5)!.dueAt], [
      MessageState.DELAYED,
      now + 30_000,
    ]);
    // The others come in their order; the delayed ones once due.
    const taken = [];
    for (let m = q.inner.take(now); m !== undefined; m = q.inner.take(now)) taken.push(m.id);
    assert.deepEqual(taken, [1, 3]);
    q.inner.sweep(now + 60_000);
    const later = [];
    for (let m = q.inner.take(now + 60_000); m !== undefined; m = q.inner.take(now + 60_000)) {
      later.push(m.id);
    }
    assert.deepEqual(later.sort(), [2, 5]);
  } finally {
    await store.close();
  }
});

function replicated(): ReplicatedStore {
  return new ReplicatedStore(
    new MemoryStore(),
    new ReplStateFiles(nodeFileSystem, undefined, false),
  );
}

Deno.test("repl dues: a pulled copy brings a NACK's due time to a new leader that missed the DUE", async () => {
  const now = Date.now();
  const due = now + 600_000;
  const a = replicated(); // the most complete replica: it got the DUE
  const b = replicated(); // the new leader: it holds the messages, not the DUE
  try {
    const qa = a.queue("queue:d");
    const qb = b.queue("queue:d");
    for (const id of [1, 2]) {
      qa.applyPub(message(id)); // live PUB frames: published, never delivered
      qb.applyPub(message(id));
    }
    qa.applyDue(2, due);

    // What `a` answers to PULL (repl_follower.ts), through the wire format.
    const w = new FrameWriter();
    w.line("SNAP", qa.name, 7);
    for (const m of qa.live()) w.pub(qa.name, 7, 0, m, qa.dueOf(m, now));
    w.line("DONE", qa.name, 7, qa.state.lsn);
    qb.staging = new Map();
    for (const fr of new ReplParser().push(w.take().bytes)) {
      if (fr.op === "PUB") qb.staging.set(fr.msg.id, fr.msg);
    }
    qb.applySnapshot();
    assert.equal(qb.dues.get(2), due, "the due time came with the copy");

    qb.adoptDues(now);
    const m2 = qb.index.get(2)!;
    assert.deepEqual([m2.state, m2.dueAt], [MessageState.DELAYED, due]);
    assert.equal(qb.inner.take(now)?.id, 1, "only 1 is ready");
    assert.equal(qb.inner.take(now), undefined, "2 waits for its time");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("repl dues: a recovering leader's snapshot to its new replica set carries the due times", async () => {
  const now = Date.now();
  const due = now + 600_000;
  const lead = replicated(); // recovering: it holds the copy and its dues, not yet serving
  const joiner = replicated(); // a member of the new set that never saw the DUE
  try {
    const q = lead.queue("queue:d");
    for (const id of [1, 2]) q.applyPub(message(id));
    q.applyDue(2, due);
    q.role = "recovering";
    // `snapshot` sends this tick's frames first; there are none, so no core is consulted.
    const f = new Follower("n2");
    snapshot(undefined as unknown as ReplCore, f, q);
    const qj = joiner.queue("queue:d");
    const parser = new ReplParser();
    for (const bytes of f.out) {
      for (const fr of parser.push(bytes)) {
        if (fr.op === "SNAP") qj.staging = new Map();
        else if (fr.op === "PUB") qj.staging!.set(fr.msg.id, fr.msg);
        else if (fr.op === "DONE") qj.applySnapshot();
      }
    }
    assert.equal(qj.index.size, 2);
    assert.equal(qj.dues.get(2), due, "the new replica keeps the due time for a later failover");
  } finally {
    await lead.close();
    await joiner.close();
  }
});
