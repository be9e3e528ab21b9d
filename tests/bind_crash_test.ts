/**
 * Bindings over real TCP on a data dir (a broker process killed with kill -9,
 * and an in-process broker stopped and started again): BIND and UNBIND
 * answers, and the bindings (with their selectors) and the routed copies
 * surviving kill -9 and a restart.
 */
import assert from "node:assert/strict";
import { withCrashSession } from "./child.ts";
import { expectLine, RawClient, type ServerFrame, startTestBroker } from "./helpers.ts";

const dec = new TextDecoder();
const text = (f: ServerFrame) => dec.decode(f.payload);

async function pubOk(p: RawClient, dest: string, body: string, opts = ""): Promise<void> {
  await p.pub(dest, body, opts);
  assert.match(await p.line(5000), /^OK msg_id:\d+$/);
}

Deno.test("bind: bindings and their routed copies survive kill -9 and restart", () =>
  withCrashSession("relayr-bind-", async (s) => {
    const c = await s.connect();
    await expectLine(c, "BIND topic:orders.> queue:audit", "OK", 5000);
    await expectLine(c, `BIND topic:orders.* queue:big filter:"priority >= 5"`, "OK", 5000);
    await expectLine(c, "BIND topic:orders.* queue:gone", "OK", 5000);
    await expectLine(c, "UNBIND topic:orders.* queue:gone", "OK", 5000);
    await expectLine(c, `BIND topic:x queue:y filter:"a ="`, /^ERR BAD_FILTER at 3: /, 5000);
    await pubOk(c, "topic:orders.eu", "small", "priority:1");
    await pubOk(c, "topic:orders.eu", "large", "priority:7");
    await pubOk(c, "topic:orders.eu.paris", "deep", "priority:9");
    // The OKs came under --fsync always: the copies are on disk. Now the crash.
    await s.restart();
    const audit = await s.connect();
    await expectLine(audit, "SUB queue:audit sub_id:a ack:none", "OK", 5000);
    // A queue delivers by priority first.
    assert.deepEqual((await audit.msgs(3, 5000)).map(text), ["deep", "large", "small"]);
    const big = await s.connect();
    await expectLine(big, "SUB queue:big sub_id:b ack:none", "OK", 5000);
    assert.deepEqual((await big.msgs(1, 5000)).map(text), ["large"]);
    // The bindings came back too, selector included; the one unbound did not.
    const p = await s.connect();
    await pubOk(p, "topic:orders.us", "after", "priority:6");
    assert.deepEqual((await audit.msgs(1)).map(text), ["after"]);
    assert.deepEqual((await big.msgs(1)).map(text), ["after"]);
    const gone = await s.connect();
    await expectLine(gone, "SUB queue:gone sub_id:g ack:none", "OK", 5000);
    await gone.quiet(100);
  }));

Deno.test("bind: after a graceful restart on the data dir, bindings and selectors route again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-bind-" });
  const args = ["--data-dir", dir, "--fsync", "interval"];
  let broker = await startTestBroker(args);
  let c = await RawClient.connect(broker.port);
  try {
    await expectLine(c, `BIND topic:a.* queue:a filter:"k = 'v'"`, "OK");
    await expectLine(c, "BIND topic:b queue:b", "OK");
    await expectLine(c, "UNBIND topic:b queue:b", "OK");
    await expectLine(c, "BIND topic:c queue:c", "OK");
    await c.close();
    await broker.stop();
    broker = await startTestBroker(args);
    c = await RawClient.connect(broker.port);
    const block = "k: v\r\n\r\n";
    await pubOk(c, "topic:a.x", block + "yes", `hdr:${block.length}`);
    await pubOk(c, "topic:a.x", "no");
    await pubOk(c, "topic:b", "unbound");
    await pubOk(c, "topic:c", "c");
    const s = broker.server.stats({ offset: 0, limit: 10, closed: 0, subs: false });
    assert.deepEqual(s.bindings.list.map((b) => [b.pattern, b.queue, b.filter, b.routed]), [
      ["topic:a.*", "queue:a", "k = 'v'", 1],
      ["topic:c", "queue:c", undefined, 1],
    ]);
    assert.equal(s.server.unrouted_msgs, 2);
  } finally {
    await c.close();
    await broker.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
