/**
 * A NACK's due time travels in a pulled copy (src/cluster/repl_frames.ts
 * `FrameWriter.pub` with a due, as a replica answers `PULL`), in process over
 * the real memory store: a new leader that missed the `DUE` frame but holds
 * the message (ready) takes the due time from the copy it pulls, and delays
 * the message again when it starts serving, so the redelivery is not early.
 */
import assert from "node:assert/strict";
import { FrameWriter, ReplParser } from "../../src/cluster/repl_frames.ts";
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
