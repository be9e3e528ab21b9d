/**
 * A follower's NACK due times (src/cluster/replicated_store.ts, `dues`) in
 * process, over the real memory store: a `DUE` for a message of the copy is
 * kept, one for a message it lacks is not, a removal forgets it, a
 * snapshot's message delayed after a delivery brings its own; when the copy
 * starts being served, `adoptDues` delays exactly the messages still due
 * later (the others stay ready, in their order), and forgets them all.
 */
import assert from "node:assert/strict";
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
