/**
 * The log store beyond the conformance suite: torn and corrupt tails, segment
 * roll, deletion and compaction, group commit, what each fsync policy keeps
 * across a power cut, and write and fsync failures. Real files in temp dirs;
 * faults come from `TestFs`, a wrapper around the real file system.
 *
 * Time is a `FakeClock`: the fsync interval, the retry timer and the pacing
 * of compaction move when a test advances it. No test waits for a set time;
 * `tick()` only lets the store's end-of-tick flush run, and a real fdatasync
 * is waited for by watching it end.
 */
import assert from "node:assert/strict";
import { type Clock, type FileSystem, nodeFileSystem } from "../../src/runtime/mod.ts";
import {
  type FsyncPolicy,
  LogStore,
  type Message,
  type QueueStore,
  StoreError,
} from "../../src/storage/mod.ts";
import { format } from "../../src/storage/log/mod.ts";
import { FakeClock } from "../fake_clock.ts";
import { msg } from "./conformance.ts";
import { TestFs } from "./test_fs.ts";

const T0 = 1_800_000_000_000;

interface Opened {
  store: LogStore;
  lines: string[];
}

function open(
  dir: string,
  o: {
    fs?: FileSystem;
    fsync?: FsyncPolicy;
    segmentBytes?: number;
    fsyncIntervalMs?: number;
    clock?: Clock;
  } = {},
): Opened {
  const lines: string[] = [];
  const store = LogStore.open({
    dir,
    fs: o.fs ?? nodeFileSystem,
    fsync: o.fsync ?? "always",
    fsyncIntervalMs: o.fsyncIntervalMs ?? 10,
    segmentBytes: o.segmentBytes,
    retryMs: 10,
    log: (level, message) => lines.push(`${level} ${message}`),
    clock: o.clock ?? new FakeClock(T0),
  });
  return { store, lines };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "relayr-log-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * One macrotask: every microtask queued before it has run, the store's
 * end-of-tick write among them. It waits for no amount of time.
 */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

/** Waits until no fdatasync is in flight, however long the disk takes, and the store has seen it end. */
async function syncsDone(fs: TestFs): Promise<void> {
  for (let i = 0; i < 1_000_000; i++) {
    await tick();
    if (fs.syncsInFlight === 0) return;
  }
  assert.fail("an fdatasync never ended");
}

function segments(dir: string, queue: string): string[] {
  const names: string[] = [];
  for (const e of Deno.readDirSync(`${dir}/queues/${queue}`)) names.push(e.name);
  return names.sort();
}

async function fill(q: QueueStore, n: number, body = "x".repeat(100)): Promise<Message[]> {
  const ms = Array.from({ length: n }, () => msg(q.name, { body }));
  await Promise.all(ms.map((m) => q.push(m)));
  return ms;
}

function ids(q: QueueStore, now = T0): number[] {
  const out: number[] = [];
  for (let m = q.take(now); m !== undefined && out.length < 1e6; m = q.take(now)) out.push(m.id);
  return out;
}

Deno.test("log store: a torn tail is cut off with a log line, everything before it recovered", async () => {
  await withDir(async (dir) => {
    let { store } = open(dir);
    const ms = await fill(store.openQueue("queue:torn"), 20);
    await store.close();
    const path = `${dir}/queues/torn/${segments(dir, "torn")[0]}`;
    const good = Deno.statSync(path).size;
    // Half a record at the end, as a write cut by a crash leaves it.
    const w = new format.RecordWriter();
    w.message(format.RecordType.PUB, msg("queue:torn"));
    Deno.writeFileSync(path, w.bytes().subarray(0, 70), { append: true });
    let lines: string[];
    ({ store, lines } = open(dir));
    assert.equal(store.recovery.truncatedBytes, 70);
    assert.ok(
      lines.some((l) => /^warn .*torn tail at offset \d+.*truncated 70 bytes/.test(l)),
      lines.join("\n"),
    );
    assert.equal(Deno.statSync(path).size, good, "the file is cut back to its last whole record");
    const q = store.openQueue("queue:torn");
    assert.deepEqual(ids(q), ms.map((m) => m.id));
    await store.close();
  });
});

Deno.test("log store: a corrupt record ends its segment; later segments still count", async () => {
  await withDir(async (dir) => {
    let { store } = open(dir, { segmentBytes: 2048 });
    let q = store.openQueue("queue:flip");
    const ms: Message[] = [];
    for (let t = 0; t < 10; t++) ms.push(...await fill(q, 4));
    await store.close();
    const segs = segments(dir, "flip");
    assert.ok(segs.length >= 3, `${segs.length} segments`);
    // Flip one payload byte of the last record of the first segment.
    const path = `${dir}/queues/flip/${segs[0]}`;
    const b = Deno.readFileSync(path);
    b[b.length - 5] ^= 0xff;
    Deno.writeFileSync(path, b);
    let lines: string[];
    ({ store, lines } = open(dir));
    assert.ok(lines.some((l) => /corrupt record .*checksum mismatch/.test(l)), lines.join("\n"));
    q = store.openQueue("queue:flip");
    const got = ids(q);
    assert.equal(got.length, ms.length - 1, "only the corrupt record is lost");
    await store.close();
  });
});

Deno.test("log store: a truncated segment keeps its whole records; a torn or bad header is handled", async () => {
  await withDir(async (dir) => {
    let { store } = open(dir);
    const ms = await fill(store.openQueue("queue:cut"), 50);
    await store.close();
    const path = `${dir}/queues/cut/${segments(dir, "cut")[0]}`;
    const size = Deno.statSync(path).size;
    Deno.truncateSync(path, Math.floor(size * 0.6));
    // A segment whose creation was cut short, and one with a broken header.
    Deno.writeFileSync(`${dir}/queues/cut/0000000007.seg`, new Uint8Array([0x52, 0x4c, 0x59]));
    const other = `${dir}/queues/cut/0000000008.seg`;
    Deno.writeFileSync(other, new TextEncoder().encode("not a segment header at all, no"));
    let lines: string[];
    ({ store, lines } = open(dir));
    const q = store.openQueue("queue:cut");
    const got = ids(q);
    assert.ok(got.length > 20 && got.length < 50, `${got.length} recovered`);
    assert.deepEqual(got, ms.slice(0, got.length).map((m) => m.id), "a prefix, in order");
    assert.ok(lines.some((l) => /0000000007.seg: header cut short.*removing/.test(l)));
    assert.ok(lines.some((l) => /0000000008.seg: bad magic; set aside/.test(l)));
    assert.ok(segments(dir, "cut").includes("0000000008.seg.corrupt"));
    assert.ok(!segments(dir, "cut").includes("0000000007.seg"));
    await store.close();
  });
});

Deno.test("log store: full segments roll; segments are deleted once their messages are gone", async () => {
  await withDir(async (dir) => {
    const { store } = open(dir, { segmentBytes: 4096 });
    const q = store.openQueue("queue:roll");
    for (let t = 0; t < 30; t++) await fill(q, 10); // a segment rolls after the write of a tick
    const many = segments(dir, "roll").length;
    assert.ok(many >= 8, `${many} segments`);
    for (let i = 0; i < 300; i++) {
      q.remove(q.take(T0)!, "acked");
      if (i % 50 === 0) await tick(); // let flushes run in between
    }
    await tick();
    await store.close();
    assert.ok(segments(dir, "roll").length <= 2, `${segments(dir, "roll")}`);
    const again = open(dir).store;
    assert.deepEqual(again.queueNames(), []);
    await again.close();
    assert.ok(!nodeFileSystem.isDir(`${dir}/queues/roll`), "an empty queue's directory goes");
  });
});

Deno.test("log store: compaction moves the few live messages out of old segments", async () => {
  await withDir(async (dir) => {
    const fs = new TestFs();
    const clock = new FakeClock(T0);
    let { store } = open(dir, { fs, clock, segmentBytes: 4096, fsync: "interval" });
    let q = store.openQueue("queue:compact");
    // Five messages pinned at the front: ready, in flight (two), delayed, requeued.
    const pinned = await fill(q, 5);
    const [p0, p1, p2, p3, p4] = pinned;
    for (let i = 0; i < 5; i++) q.take(T0);
    q.requeue(p4, 0, T0);
    q.requeue(p3, 3_600_000, clock.now());
    q.requeue(p0, 0, T0);
    // Then a stream of higher-priority messages, each consumed and acked at once.
    for (let round = 0; round < 40; round++) {
      const ms = Array.from(
        { length: 50 },
        () => msg(q.name, { priority: 5, body: "y".repeat(100) }),
      );
      for (const m of ms) q.push(m);
      for (const m of ms) {
        assert.equal(q.take(T0), m);
        q.remove(m, "acked");
      }
      await tick(); // the round's write, and a compaction step when one is due
      // Compaction steps are spaced out; the interval fsyncs this starts must end, as upkeep
      // never runs while one is in flight.
      clock.advance(25);
      await syncsDone(fs);
    }
    const lq = q as unknown as { segmentCount: number; diskBytes: number };
    assert.ok(lq.segmentCount <= 3, `${lq.segmentCount} segments after compaction`);
    assert.ok(lq.diskBytes < 3 * 4096 + 2048, `${lq.diskBytes} bytes on disk`);
    await store.close();
    ({ store } = open(dir, { clock }));
    q = store.openQueue("queue:compact");
    if (q.size !== 5) {
      console.log(
        "DEBUG",
        pinned.map((m) => m.id),
        [...q.messages()].map((m) => m.id),
        Deno.readDirSync(`${dir}/queues/compact`).toArray(),
      );
    }
    assert.equal(q.size, 5);
    assert.deepEqual([q.ready, q.delayed], [4, 1]);
    const back = [q.take(T0)!, q.take(T0)!, q.take(T0)!, q.take(T0)!];
    assert.deepEqual(back.map((m) => m.id), [p0.id, p1.id, p2.id, p4.id], "in id order");
    assert.deepEqual(back.map((m) => m.deliveries), [2, 2, 2, 2]);
    await store.close();
  });
});

Deno.test("log store, fsync always: one fsync confirms a whole tick of publishes", async () => {
  await withDir(async (dir) => {
    const fs = new TestFs();
    const { store } = open(dir, { fs });
    const q = store.openQueue("queue:group");
    const before = fs.datasyncs;
    const ps = Array.from({ length: 1000 }, () => q.push(msg(q.name)));
    assert.ok(ps.every((p) => p instanceof Promise));
    await Promise.all(ps);
    assert.equal(fs.datasyncs - before, 1, "1000 publishes in one tick: one fdatasync");
    // Publishes while an fsync is in flight wait for, and share, the next one.
    fs.hold();
    const first = q.push(msg(q.name));
    await tick();
    let confirmed = 0;
    const later = [];
    for (let t = 0; t < 5; t++) {
      later.push(q.push(msg(q.name))!.then(() => confirmed++));
      await tick();
    }
    assert.equal(confirmed, 0, "no confirmation before the fsync ends");
    const mid = fs.datasyncs;
    fs.release();
    await first;
    await Promise.all(later);
    assert.ok(fs.datasyncs - mid <= 2, `${fs.datasyncs - mid} fsyncs for 6 publishes in 6 ticks`);
    await store.close();
  });
});

Deno.test("power cut, fsync always: every confirmed publish survives, no confirmed ACK revives", async () => {
  await withDir(async (dir) => {
    const fs = new TestFs();
    const { store } = open(dir, { fs, fsync: "always" });
    const q = store.openQueue("queue:power");
    const confirmed: number[] = [];
    const acked = new Set<number>();
    /** Acks whose `synced()` resolved: the OK the server would send. */
    const ackConfirmed: number[] = [];
    for (let t = 0; t < 20; t++) {
      const pushes: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) {
        const m = msg(q.name);
        pushes.push((q.push(m) as Promise<void>).then(() => confirmed.push(m.id), () => {}));
      }
      if (t > 0) {
        // What the server does for an ACK line: settle, then hold the OK on synced().
        const m = q.take(T0)!;
        q.remove(m, "acked");
        acked.add(m.id);
        pushes.push(
          (store.synced() as Promise<void>).then(() => ackConfirmed.push(m.id), () => {}),
        );
      }
      // Even ticks end with their fsync done; odd ones go on at once, so that the
      // fsync of one may still run in the next tick, and the last one meets the power cut.
      if (t % 2 === 0) await Promise.all(pushes);
      else await tick();
    }
    await fs.powerCut();
    await store.close(); // its I/O fails now; it only releases timers
    const after = open(dir).store;
    const got = new Set(ids(after.openQueue("queue:power")));
    for (const id of confirmed) if (!acked.has(id)) assert.ok(got.has(id), `confirmed ${id} lost`);
    for (const id of ackConfirmed) assert.ok(!got.has(id), `acked ${id} came back after its OK`);
    assert.ok(confirmed.length >= 10, `${confirmed.length} confirmed`);
    assert.ok(ackConfirmed.length >= 5, `${ackConfirmed.length} acks confirmed`);
    await after.close();
  });
});

Deno.test("power cut, fsync interval: loses at most the last interval; never: whatever was not synced", async () => {
  for (const fsync of ["interval", "never"] as const) {
    await withDir(async (dir) => {
      const fs = new TestFs();
      const clock = new FakeClock(T0);
      const { store } = open(dir, { fs, fsync, fsyncIntervalMs: 20, clock });
      const q = store.openQueue("queue:window");
      const old = await fill(q, 50);
      await tick(); // written
      // An interval passes and the fsync it starts (under interval) ends.
      const synced = fs.datasyncs;
      clock.advance(20);
      await syncsDone(fs);
      assert.equal(fs.datasyncs - synced, fsync === "interval" ? 1 : 0);
      const recent = await fill(q, 50);
      await fs.powerCut();
      await store.close();
      const after = open(dir).store;
      const got = ids(after.openQueue("queue:window"));
      if (fsync === "interval") {
        assert.deepEqual(got, old.map((m) => m.id), "older than an interval: kept; the last: lost");
      } else {
        assert.deepEqual(got, [], "nothing was ever synced");
      }
      assert.ok(recent.every((m) => !got.includes(m.id)));
      await after.close();
    });
  }
});

Deno.test("write failure: STORE_FAILED to publishers, reads go on, records retried, no loss", async () => {
  for (const fsync of ["always", "interval"] as const) {
    await withDir(async (dir) => {
      const fs = new TestFs();
      const clock = new FakeClock(T0);
      const { store, lines } = open(dir, { fs, fsync, clock });
      const q = store.openQueue("queue:full");
      const before = await fill(q, 10);
      fs.failWrites = true;
      const m = msg(q.name);
      const p = q.push(m);
      if (fsync === "always") {
        await assert.rejects(
          p as Promise<void>,
          (e) => e instanceof StoreError && /ENOSPC/.test(e.message),
        );
      } else {
        assert.equal(p, undefined);
        await tick(); // the write at the end of the tick fails
      }
      assert.throws(
        () => q.push(msg(q.name)),
        (e) => e instanceof StoreError && /failing/.test(e.message),
      );
      assert.ok(lines.some((l) => /^error .*queue:full failed/.test(l)));
      // Reads keep working, and their records wait in memory.
      const a = q.take(T0)!;
      q.remove(a, "acked");
      assert.equal(a.id, before[0].id);
      fs.failWrites = false;
      clock.advance(10); // the retry timer fires: the kept records are written
      assert.ok(lines.some((l) => /works again/.test(l)));
      await q.push(msg(q.name));
      await store.close();
      const after = open(dir);
      assert.equal(after.store.recovery.truncatedBytes, 0, "the half-written bytes were cut back");
      const got = ids(after.store.openQueue("queue:full"));
      assert.ok(!got.includes(a.id), "the ack made it");
      assert.ok(got.includes(m.id), "the message whose write failed was kept and written later");
      for (const b of before.slice(1)) assert.ok(got.includes(b.id));
      await after.store.close();
    });
  }
});

Deno.test("fsync failure: the waiting publishers get StoreError; the log recovers", async () => {
  await withDir(async (dir) => {
    const fs = new TestFs();
    const clock = new FakeClock(T0);
    const { store } = open(dir, { fs, clock });
    const q = store.openQueue("queue:eio");
    fs.failSyncs = true;
    await assert.rejects(q.push(msg(q.name)) as Promise<void>, /fsync failed: EIO/);
    assert.throws(() => q.push(msg(q.name)), StoreError);
    fs.failSyncs = false;
    clock.advance(10); // the retry timer fires
    await q.push(msg(q.name));
    await store.close();
  });
});

Deno.test("crash: what writePending() wrote (the server calls it before any reply) survives; a dead letter never vanishes", async () => {
  await withDir(async (dir) => {
    const fs = new TestFs();
    const { store } = open(dir, { fs });
    const src = store.openQueue("queue:jobs");
    const dlq = store.openQueue("queue:jobs.dlq");
    const [a, b, c] = await fill(src, 3);
    src.remove(src.take(T0)!, "acked");
    // The broker's dead-lettering: a copy into the DLQ, then the REMOVE in the source.
    const poison = src.take(T0)!;
    const copy = msg(dlq.name, { body: "copy" });
    void dlq.push(copy);
    src.remove(poison, "dead_lettered");
    store.writePending(); // what the server does before the ACK's OK goes to the socket
    await fs.crash(); // before the end of the tick: nothing else was written
    await store.close();
    const after = open(dir).store;
    assert.deepEqual(ids(after.openQueue("queue:jobs")), [c.id], "a acked, b dead-lettered");
    assert.deepEqual(ids(after.openQueue("queue:jobs.dlq")), [copy.id]);
    assert.deepEqual([a.id, b.id], [a.id, poison.id]);
    await after.close();
  });
});

Deno.test("dropQueue deletes an empty queue's files; a queue reopened later starts clean", async () => {
  await withDir(async (dir) => {
    const { store } = open(dir);
    let q = store.openQueue("queue:gone");
    await fill(q, 3);
    for (let i = 0; i < 3; i++) q.remove(q.take(T0)!, "acked");
    store.dropQueue("queue:gone");
    await tick();
    assert.ok(!nodeFileSystem.isDir(`${dir}/queues/gone`));
    q = store.openQueue("queue:gone");
    const m = msg(q.name);
    await q.push(m);
    await store.close();
    const after = open(dir).store;
    assert.deepEqual(ids(after.openQueue("queue:gone")), [m.id]);
    await after.close();
  });
});
