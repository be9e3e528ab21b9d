/**
 * Declared queues, scheduled messages and dedup ids across kill -9, with real
 * processes: a broker child (`main.ts serve --data-dir D --fsync always`)
 * gets a declaration, scheduled queue and topic messages and a publish with
 * a dedup id, is killed with SIGKILL before anything is due, and restarted on
 * the same data dir. The declaration must hold (same settings OK, others a
 * conflict), the scheduled messages must come once and never before their
 * time, the dedup id must still be known; a second kill after they fired
 * must not bring them back.
 */
import assert from "node:assert/strict";
import { withCrashSession } from "./child.ts";
import { expectLine, type RawClient, type ServerFrame } from "./helpers.ts";

const dec = new TextDecoder();
const text = (f: ServerFrame) => dec.decode(f.payload);

/** A command and its reply, with room for a child broker under load. */
const expect = (c: RawClient, line: string, reply: string | RegExp) =>
  expectLine(c, line, reply, 5000);

const DECL = "DECLARE queue:jobs max_messages:100 ttl:600000 dedup_window:600000";

Deno.test("kill -9: declared queue, scheduled queue and topic messages and dedup ids survive; fire once", () =>
  withCrashSession("relayr-queues-crash-", async (s) => {
    const c = await s.connect();
    await expect(c, DECL, "OK");
    // Far enough out that the kill and restart come first (the broker child starts in about a second).
    const dueAt = Date.now() + 4000;
    const qid = await expect(
      c,
      `PUB queue:jobs deliver_at:${dueAt} 5\r\nlater`,
      /^OK msg_id:\d+$/,
    );
    const tid = await expect(
      c,
      `PUB topic:ev deliver_at:${dueAt} 7\r\ntopic-1`,
      /^OK msg_id:\d+$/,
    );
    const did = await expect(c, "PUB queue:jobs dedup_id:k-1 4\r\nonce", /^OK msg_id:\d+$/);

    await s.restart();
    assert.ok(
      Date.now() < dueAt,
      "restarted before the messages were due (else the test proves less)",
    );
    const d = await s.connect();
    await expect(d, DECL, "OK");
    await expect(d, "DECLARE queue:jobs max_messages:100", /^ERR DECLARE_CONFLICT /);
    await expect(d, "PUB queue:jobs dedup_id:k-1 4\r\nonce", `${did} duplicate:true`);
    const q = await s.connect();
    await expect(q, "SUB queue:jobs sub_id:q", "OK");
    const t = await s.connect();
    await expect(t, "SUB topic:ev sub_id:t", "OK");
    assert.equal(text((await q.msgs(1))[0]), "once");
    const [qm] = await q.msgs(1, 10_000);
    assert.ok(Date.now() >= dueAt, "never early");
    assert.deepEqual([text(qm), qm.fields!.msg_id], ["later", qid.slice("OK msg_id:".length)]);
    const [tm] = await t.msgs(1, 10_000);
    assert.ok(Date.now() >= dueAt, "never early");
    assert.deepEqual([text(tm), tm.fields!.msg_id], ["topic-1", tid.slice("OK msg_id:".length)]);
    await expect(q, `ACK msg_id:${qm.fields!.msg_id}`, "OK");

    // They fired: a second kill -9 does not bring them back.
    await s.restart();
    const q2 = await s.connect();
    await expect(q2, "SUB queue:jobs sub_id:q", "OK");
    const t2 = await s.connect();
    await expect(t2, "SUB topic:ev sub_id:t", "OK");
    const left = await q2.msgs(1); // "once" was never acked: redelivered, and only it
    assert.deepEqual(left.map(text), ["once"]);
    await q2.quiet(600); // two sweeps and more
    await t2.quiet(10);
  }));
