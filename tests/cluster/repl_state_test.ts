/**
 * A queue's replication state file (real files in a temp dir): the last
 * whole, checksummed record wins, a torn or corrupt tail leaves the one
 * before, a file past its size is rewritten without losing the state (off
 * the event loop: both files get every save until the rename), and
 * without a data dir the state lives in memory only.
 */
import assert from "node:assert/strict";
import { ReplStateFiles } from "../../src/cluster/mod.ts";
import { CLUSTER_REPL_STATE_FILE_BYTES_MAX } from "../../src/config/mod.ts";
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { TestFs } from "../storage/test_fs.ts";

Deno.test("repl state: the last good record wins; torn tails, rewrites and reopening keep it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-repl-state-" });
  try {
    const a = new ReplStateFiles(nodeFileSystem, dir, true);
    assert.deepEqual(a.load("queue:q"), { epoch: 0, dataEpoch: 0, lsn: 0 }, "never saved");
    await a.save("queue:q", { epoch: 5, dataEpoch: 5, lsn: 10 });
    await a.save("queue:q", { epoch: 7, dataEpoch: 5, lsn: 12 });
    a.save("queue:other", { epoch: 9, dataEpoch: 9, lsn: 1 });
    await a.close();
    const b = new ReplStateFiles(nodeFileSystem, dir, false);
    assert.deepEqual(b.load("queue:q"), { epoch: 7, dataEpoch: 5, lsn: 12 });
    assert.deepEqual(b.load("queue:other"), { epoch: 9, dataEpoch: 9, lsn: 1 });
    await b.close();

    // A torn record (half written) and a corrupt one after it: the last good one stands.
    const [file] = [...Deno.readDirSync(`${dir}/cluster`)].map((e) => e.name)
      .filter((n) => n.endsWith(".state") && n.includes(hex("queue:q")));
    const path = `${dir}/cluster/${file}`;
    const good = Deno.readFileSync(path);
    const junk = good.slice(good.length - 28);
    junk[3] ^= 0xff; // the checksum no longer matches
    Deno.writeFileSync(path, new Uint8Array([...good, ...junk, ...good.slice(0, 13)]));
    const c = new ReplStateFiles(nodeFileSystem, dir, false);
    assert.deepEqual(c.load("queue:q"), { epoch: 7, dataEpoch: 5, lsn: 12 });

    // Many saves: the file is rewritten past its size, never losing the latest state.
    const n = Math.ceil(CLUSTER_REPL_STATE_FILE_BYTES_MAX / 28) + 10;
    for (let i = 1; i <= n; i++) c.save("queue:many", { epoch: 3, dataEpoch: 3, lsn: i });
    await c.close();
    const d = new ReplStateFiles(nodeFileSystem, dir, false);
    assert.deepEqual(d.load("queue:many"), { epoch: 3, dataEpoch: 3, lsn: n });
    const size = Deno.statSync(`${dir}/cluster/${hex("queue:many")}.state`).size;
    assert.ok(size <= CLUSTER_REPL_STATE_FILE_BYTES_MAX, `${size} bytes`);
    await d.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("repl state: without a data dir nothing is written (the queue keeps its state in memory)", async () => {
  const m = new ReplStateFiles(nodeFileSystem, undefined, false);
  assert.equal(m.save("queue:q", { epoch: 1, dataEpoch: 1, lsn: 1 }), undefined);
  assert.deepEqual(m.load("queue:q"), { epoch: 0, dataEpoch: 0, lsn: 0 });
  await m.close();
});

Deno.test("repl state: a rewrite waits for its new file's datasync without blocking; both files get every save until the rename", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-repl-state-" });
  const fs = new TestFs();
  try {
    const a = new ReplStateFiles(fs, dir, false);
    const path = `${dir}/cluster/${hex("queue:r")}.state`;
    const first = Math.floor(CLUSTER_REPL_STATE_FILE_BYTES_MAX / 28) + 1; // the save that passes the size
    fs.hold(); // the new file's datasync waits: the rewrite is under way meanwhile
    for (let i = 1; i <= first + 5; i++) a.save("queue:r", { epoch: 2, dataEpoch: 2, lsn: i });
    assert.equal(Deno.statSync(path).size, (first + 5) * 28, "the old file got every save");
    assert.equal(Deno.statSync(`${path}.tmp`).size, 6 * 28, "so did the new one, from the first");
    const now = new ReplStateFiles(nodeFileSystem, dir, false); // a crash now: the name is the old file
    assert.deepEqual(now.load("queue:r"), { epoch: 2, dataEpoch: 2, lsn: first + 5 });
    await now.close();
    fs.release();
    await a.close(); // waits for the rewrite
    assert.equal(Deno.statSync(path).size, 6 * 28, "renamed over the old one");
    assert.throws(() => Deno.statSync(`${path}.tmp`));
    const b = new ReplStateFiles(nodeFileSystem, dir, false);
    assert.deepEqual(b.load("queue:r"), { epoch: 2, dataEpoch: 2, lsn: first + 5 });
    await b.close();
  } finally {
    fs.release();
    await Deno.remove(dir, { recursive: true });
  }
});

function hex(s: string): string {
  return [...new TextEncoder().encode(s)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
