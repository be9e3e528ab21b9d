/**
 * Bindings over real TCP with a real broker process on a data dir: BIND and
 * UNBIND answers, QUEUE_FULL atomicity, and the bindings (with their
 * selectors) and the routed copies surviving kill -9 and a restart.
 */
import assert from "node:assert/strict";
import { CrashableBroker } from "./child.ts";
import { expectLine, RawClient, type ServerFrame } from "./helpers.ts";

const dec = new TextDecoder();
const text = (f: ServerFrame) => dec.decode(f.payload);

async function pubOk(p: RawClient, dest: string, body: string, opts = ""): Promise<void> {
  await p.pub(dest, body, opts);
  assert.match(await p.line(5000), /^OK msg_id:\d+$/);
}

Deno.test("bind: bindings and their routed copies survive kill -9 and restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "relayr-bind-" });
  let b = new CrashableBroker(dataDir);
  const clients: RawClient[] = [];
  const connect = async (port: number) => {
    const c = await RawClient.connect(port);
    clients.push(c);
    return c;
  };
  try {
    let port = await b.ready();
    const c = await connect(port);
    await expectLine(c, "BIND topic:orders.> queue:audit", "OK", 5000);
    await expectLine(c, `BIND topic:orders.* queue:big filter:"priority >= 5"`, "OK", 5000);
    await expectLine(c, "BIND topic:orders.* queue:gone", "OK", 5000);
    await expectLine(c, "UNBIND topic:orders.* queue:gone", "OK", 5000);
    await expectLine(c, `BIND topic:x queue:y filter:"a ="`, /^ERR BAD_FILTER at 3: /, 5000);
    await pubOk(c, "topic:orders.eu", "small", "priority:1");
    await pubOk(c, "topic:orders.eu", "large", "priority:7");
    await pubOk(c, "topic:orders.eu.paris", "deep", "priority:9");
    // The OKs came under --fsync always: the copies are on disk. Now the crash.
    await b.kill();
    for (const x of clients.splice(0)) await x.close();

    b = new CrashableBroker(dataDir);
    port = await b.ready();
    const audit = await connect(port);
    await expectLine(audit, "SUB queue:audit sub_id:a ack:none", "OK", 5000);
    // A queue delivers by priority first.
    assert.deepEqual((await audit.msgs(3, 5000)).map(text), ["deep", "large", "small"]);
    const big = await connect(port);
    await expectLine(big, "SUB queue:big sub_id:b ack:none", "OK", 5000);
    assert.deepEqual((await big.msgs(1, 5000)).map(text), ["large"]);
    // The bindings came back too, selector included; the one unbound did not.
    const p = await connect(port);
    await pubOk(p, "topic:orders.us", "after", "priority:6");
    assert.deepEqual((await audit.msgs(1)).map(text), ["after"]);
    assert.deepEqual((await big.msgs(1)).map(text), ["after"]);
    const gone = await connect(port);
    await expectLine(gone, "SUB queue:gone sub_id:g ack:none", "OK", 5000);
    await gone.quiet(100);
  } finally {
    for (const x of clients) await x.close();
    await b.kill();
    await Deno.remove(dataDir, { recursive: true });
  }
});
