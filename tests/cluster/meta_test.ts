/**
 * `EtcdMeta` against a real etcd: the guarantees `ClusterNode` leans on
 * (create-if-absent is one winner, the create revision grows, the fence
 * refuses an old epoch, an unrenewed lease takes its keys with it, the watch
 * reports both).
 */
import assert from "node:assert/strict";
import { EtcdError, EtcdMeta, type WatchEvent } from "../../src/cluster/mod.ts";
import { Etcd, ETCD_MISSING, freePort } from "./etcd.ts";

Deno.test({
  name: "EtcdMeta: leases, create-if-absent, epochs, fence, watch, expiry",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const etcd = await Etcd.start();
    const meta = new EtcdMeta(etcd.url);
    const events: WatchEvent[] = [];
    let seen: () => void = () => {};
    const watch = await meta.watch("t/", 1, (es) => {
      events.push(...es);
      seen();
    }, () => {});
    const until = async (ok: () => boolean, what: string) => {
      const deadline = Date.now() + 10_000;
      while (!ok()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((r) => {
          seen = r;
          timer = setTimeout(r, 200);
        });
        clearTimeout(timer);
      }
    };
    try {
      assert.match(await meta.version(), /^3\./);
      const a = await meta.grant(1);
      const b = await meta.grant(30);
      assert.ok((await meta.keepAlive(b)) > 0);

      // Two claims: one winner; the loser sees the holder and its epoch.
      const first = await meta.create("t/leader/q", "a", a);
      const second = await meta.create("t/leader/q", "b", b);
      assert.equal(first.created, true);
      assert.equal(second.created, false);
      assert.equal(second.kv.value, "a");
      assert.equal(second.kv.createRevision, first.kv.createRevision);
      assert.ok(await meta.holds("t/leader/q", first.kv.createRevision));

      // a's lease is not renewed: the key goes with it, the watch says so.
      await until(
        () => events.some((e) => e.type === "delete" && e.key === "t/leader/q"),
        "expiry",
      );
      assert.equal(await meta.keepAlive(a), 0, "an expired lease renews to 0");
      const next = await meta.create("t/leader/q", "b", b);
      assert.equal(next.created, true);
      assert.ok(next.kv.createRevision > first.kv.createRevision, "a later leader, a larger epoch");
      // The fence: the deposed epoch is refused, the new one holds.
      assert.equal(await meta.holds("t/leader/q", first.kv.createRevision), false);
      assert.equal(await meta.deleteIf("t/leader/q", first.kv.createRevision), false);
      assert.ok(await meta.holds("t/leader/q", next.kv.createRevision));

      const { kvs } = await meta.list("t/");
      assert.deepEqual(kvs.map((k) => [k.key, k.value, k.lease]), [["t/leader/q", "b", b]]);
      assert.ok(events.some((e) => e.type === "put" && e.kv?.value === "a"));
      // Revoking ends the lease's keys at once.
      await meta.revoke(b);
      assert.deepEqual((await meta.list("t/")).kvs, []);
      // Revoking an unknown lease is not an error (a stop after expiry).
      await meta.revoke(b);
    } finally {
      await watch.close();
      await etcd.stop();
    }
  },
});

Deno.test({
  name: "EtcdMeta: an unreachable etcd is an EtcdError naming the endpoint",
  ignore: ETCD_MISSING !== undefined,
  async fn() {
    const url = `http://127.0.0.1:${freePort()}`;
    const meta = new EtcdMeta(url);
    await assert.rejects(() => meta.version(), (e) => {
      assert.ok(e instanceof EtcdError);
      assert.match(e.message, new RegExp(`cannot reach etcd at ${url}`));
      return true;
    });
    await assert.rejects(() => meta.grant(5), EtcdError);
  },
});
