/**
 * The SDK's batched acks against a real broker over TCP: acks of one write go
 * out as one `ACK sub_id:<sid> upto:<id>` when they settle a run in delivery
 * order, and by id otherwise; the broker's queue counters prove what was
 * settled and that nothing acked came back. A runtime seam records every line
 * the client writes (the real socket underneath) and can cut the connections.
 */
import assert from "node:assert/strict";
import {
  type Client,
  connect,
  ConnectionLostError,
  type Message,
  type Runtime,
  type StatusEvent,
  UnknownMsgIdError,
} from "../src/client/mod.ts";
import type { Conn } from "../src/runtime/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { take } from "./client_helpers.ts";
import { ACK_WINDOW_ENTRIES_MAX } from "../src/client/limits.ts";
import { startTestBroker, waitFor } from "./helpers.ts";

/** A runtime whose connections record the `ACK` lines the client writes, and can be cut. */
class AckTap {
  /** Every `ACK` line written, in order, over every connection. */
  readonly lines: string[] = [];
  #conns = new Set<Conn>();
  readonly runtime: Runtime = {
    ...denoRuntime,
    connect: async (options) => {
      const conn = await denoRuntime.connect(options);
      this.#conns.add(conn);
      const dec = new TextDecoder();
      let rest = "";
      return {
        readable: conn.readable,
        write: (bytes) => {
          const lines = (rest + dec.decode(bytes, { stream: true })).split("\r\n");
          rest = lines.pop()!;
          for (const l of lines) if (l.startsWith("ACK ")) this.lines.push(l);
          return conn.write(bytes);
        },
        close: () => {
          this.#conns.delete(conn);
          conn.close();
        },
        remoteAddr: conn.remoteAddr,
      };
    },
  };

  /** `ACK` lines of the cumulative form. */
  get uptos(): string[] {
    return this.lines.filter((l) => l.includes(" upto:"));
  }

  /** Closes every socket under the client (it sees its connection drop). */
  cut(): void {
    for (const c of this.#conns) c.close();
    this.#conns.clear();
  }
}

/** A broker, a client over an {@linkcode AckTap}, and its `error` events; closed after `fn`. */
async function withClient(
  fn: (
    c: Client,
    tap: AckTap,
    queue: (name: string) => ReturnType<typeof queueStats>,
    errors: StatusEvent[],
  ) => Promise<void>,
  reconnect = false,
): Promise<void> {
  const broker = await startTestBroker();
  const tap = new AckTap();
  const errors: StatusEvent[] = [];
  const c = await connect(`127.0.0.1:${broker.port}`, {
    runtime: tap.runtime,
    reconnect,
    reconnectDelayMs: 10,
    reconnectDelayMaxMs: 50,
    onStatus: (e) => void (e.type === "error" && errors.push(e)),
  });
  try {
    await fn(c, tap, (name) => queueStats(broker.broker, name), errors);
  } finally {
    await c.close();
    await broker.stop();
  }
}

function queueStats(broker: Awaited<ReturnType<typeof startTestBroker>>["broker"], name: string) {
  const q = broker.queues.get(name);
  assert.ok(q, `queue ${name} exists`);
  return q.stats();
}

async function fill(c: Client, queue: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) c.publishNoWait(queue, `${i}`);
  await c.flush();
}

Deno.test("acks: a consumer acking every message sends one cumulative ACK per read, not per message", async () => {
  await withClient(async (c, tap, queue, errors) => {
    const n = 2000;
    await fill(c, "queue:bulk", n);
    const ids = new Set<string>();
    let redelivered = 0;
    const sub = await c.subscribe("queue:bulk", {
      prefetch: 500,
      callback: (m) => {
        ids.add(m.id);
        if (m.redelivered) redelivered++;
        m.ack();
      },
    });
    await waitFor(() => queue("queue:bulk").acked === n, 10_000, "every message acked");
    await c.flush();
    const s = queue("queue:bulk");
    assert.equal(s.inflight, 0);
    assert.equal(s.depth, 0);
    assert.equal(s.redelivered, 0, "nothing acked comes back");
    assert.equal(ids.size, n);
    assert.equal(redelivered, 0);
    assert.deepEqual(errors, []);
    // One line per batch of deliveries the client read: far fewer than the messages.
    assert.ok(tap.lines.length <= n / 20, `${tap.lines.length} ACK lines for ${n} acks`);
    assert.equal(tap.uptos.length, tap.lines.length, "in order: all cumulative");
    assert.match(tap.lines[0], new RegExp(`^ACK sub_id:${sub.id} upto:\\d+$`));
  });
});

Deno.test("acks: a for-await loop that acks each message coalesces too", async () => {
  await withClient(async (c, tap, queue, errors) => {
    const n = 2000;
    await fill(c, "queue:loop", n);
    const sub = await c.subscribe("queue:loop", { prefetch: 500 });
    let got = 0;
    for await (const m of sub) {
      await m.ack();
      if (++got === n) break;
    }
    await waitFor(() => queue("queue:loop").acked === n, 10_000, "every message acked");
    assert.equal(queue("queue:loop").redelivered, 0);
    assert.ok(tap.lines.length <= n / 20, `${tap.lines.length} ACK lines for ${n} acks`);
    assert.deepEqual(errors, []);
  });
});

Deno.test("acks: a loop that waits between messages still has its acks written at once", async () => {
  await withClient(async (c, _tap, queue, errors) => {
    await fill(c, "queue:slow", 5);
    const sub = await c.subscribe("queue:slow", { prefetch: 5 });
    await waitFor(() => sub.pending === 5, 5000, "all five buffered");
    let got = 0;
    for await (const m of sub) {
      m.ack();
      got++;
      // Messages are still buffered, yet the broker hears of this ack (a macrotask later).
      await waitFor(() => queue("queue:slow").acked === got, 5000, `ack ${got} reached the broker`);
      if (got === 5) break;
    }
    assert.equal(queue("queue:slow").inflight, 0);
    assert.deepEqual(errors, []);
  });
});

Deno.test("acks: out of order, an upto never passes an unacked delivery; the rest go by id", async () => {
  await withClient(async (c, tap, queue, errors) => {
    await fill(c, "queue:ooo", 10);
    const sub = await c.subscribe("queue:ooo", { prefetch: 10 });
    const msgs = await take(sub, 10);
    // 0 stays open: the broker must keep it in flight whatever comes after it.
    for (const m of msgs.slice(1)) m.ack();
    await c.flush();
    let s = queue("queue:ooo");
    assert.equal(s.acked, 9);
    assert.equal(s.inflight, 1, "the unacked first delivery is not settled");
    assert.equal(tap.uptos.length, 0, "no run in order: by id");
    assert.deepEqual(
      tap.lines,
      [`ACK ${msgs.slice(1).map((m) => `msg_id:${m.id}`).join(" ")}`],
      "one line for the nine",
    );
    // Now 0: nothing after it is open, and it alone is the run.
    msgs[0].ack();
    await c.flush();
    s = queue("queue:ooo");
    assert.equal(s.acked, 10);
    assert.equal(s.inflight, 0);
    assert.deepEqual(tap.lines.at(-1), `ACK sub_id:${sub.id} upto:${msgs[0].id}`);
    assert.equal(s.redelivered, 0);
    assert.deepEqual(errors, []);
  });
});

Deno.test("acks: a nack inside a run of acks is redelivered; the acks around it are not", async () => {
  await withClient(async (c, tap, queue, errors) => {
    await fill(c, "queue:mixed", 6);
    const sub = await c.subscribe("queue:mixed", { prefetch: 6 });
    const msgs = await take(sub, 6);
    msgs[0].ack();
    msgs[1].ack();
    msgs[2].nack(); // written at once, after the acks before it
    msgs[3].ack();
    msgs[4].ack();
    // 5 stays open.
    const [again] = await take(sub, 1);
    assert.equal(again.id, msgs[2].id);
    assert.equal(again.deliveryCount, 2);
    await c.flush();
    let s = queue("queue:mixed");
    assert.equal(s.acked, 4);
    assert.equal(s.inflight, 2, "the open one and the redelivery");
    again.ack();
    msgs[5].ack();
    await c.flush();
    s = queue("queue:mixed");
    assert.equal(s.acked, 6);
    assert.equal(s.inflight, 0);
    assert.equal(s.redelivered, 1, "only the nacked one");
    assert.ok(tap.uptos.length >= 2, tap.lines.join(" | "));
    assert.deepEqual(errors, []);
  });
});

Deno.test("acks: an UNKNOWN_MSG_ID for one id of a write rejects only its caller", async () => {
  await withClient(async (c, _tap, queue, errors) => {
    await fill(c, "queue:late", 3);
    const sub = await c.subscribe("queue:late", { prefetch: 3, ackTimeoutMs: 100 });
    const first = await take(sub, 3);
    // Not acked in time: the broker takes all three back and delivers them again.
    const again = await take(sub, 3, 10_000);
    assert.deepEqual(again.map((m) => m.deliveryCount), [2, 2, 2]);
    again[0].ack(); // settles message 0 for good
    await c.flush();
    // The first delivery of 0 is unknown now; that of 1 settles the redelivery of 1.
    const late = first[0].ack({ confirm: true });
    const ok = first[1].ack({ confirm: true });
    again[2].ack();
    await assert.rejects(late, UnknownMsgIdError);
    await ok;
    await c.flush();
    const s = queue("queue:late");
    assert.equal(s.acked, 3);
    assert.equal(s.inflight, 0);
    assert.deepEqual(errors, [], "the error went to its caller, not to the status stream");
  });
});

Deno.test("acks: after a reconnect, acks of the old connection do nothing and redeliveries are acked", async () => {
  await withClient(async (c, tap, queue, errors) => {
    await fill(c, "queue:re", 4);
    const sub = await c.subscribe("queue:re", { prefetch: 4 });
    const old = await take(sub, 4);
    old[0].ack();
    await c.flush();
    tap.cut();
    await waitFor(() => c.reconnects === 1 && c.connected, 10_000, "reconnected");
    const lines = tap.lines.length;
    // Delivered on the connection that is gone: nothing is written, a confirm hears why.
    old[1].ack();
    await assert.rejects(old[2].ack({ confirm: true }), ConnectionLostError);
    const again = await take(sub, 3, 10_000);
    assert.deepEqual(again.map((m) => m.id), old.slice(1).map((m) => m.id));
    for (const m of again) m.ack();
    await c.flush();
    assert.deepEqual(tap.lines.slice(lines), [`ACK sub_id:${sub.id} upto:${old[3].id}`]);
    const s = queue("queue:re");
    assert.equal(s.acked, 4);
    assert.equal(s.inflight, 0);
    assert.equal(s.depth, 0);
    assert.deepEqual(errors, []);
  }, true);
});

Deno.test("acks: one connection, two subscriptions: one cumulative line each, none crosses over", async () => {
  await withClient(async (c, tap, queue, errors) => {
    await fill(c, "queue:a", 5);
    await fill(c, "queue:b", 5);
    const a = await c.subscribe("queue:a", { prefetch: 5 });
    const b = await c.subscribe("queue:b", { prefetch: 5 });
    const ma = await take(a, 5);
    const mb = await take(b, 5);
    for (const m of ma) m.ack();
    for (const m of mb.slice(0, 3)) m.ack();
    await c.flush();
    assert.deepEqual(
      tap.lines.toSorted(),
      [
        `ACK sub_id:${a.id} upto:${ma[4].id}`,
        `ACK sub_id:${b.id} upto:${mb[2].id}`,
      ].toSorted(),
    );
    assert.equal(queue("queue:a").inflight, 0);
    assert.equal(queue("queue:b").inflight, 2);
    const rest: Message[] = mb.slice(3);
    for (const m of rest) m.ack();
    await c.flush();
    assert.equal(queue("queue:b").inflight, 0);
    assert.deepEqual(errors, []);
  });
});

Deno.test("acks: a durable's cumulative ack moves its stored position, no further", async () => {
  await withClient(async (c, tap, _queue, errors) => {
    await c.declare("topic:orders", { retainMessages: 100 });
    const first = await c.subscribe("topic:orders", { durable: "billing", start: "first" });
    for (let i = 0; i < 5; i++) c.publishNoWait("topic:orders", `${i}`);
    await c.flush();
    const msgs = await take(first, 5);
    for (const m of msgs.slice(0, 3)) m.ack();
    await c.flush();
    assert.deepEqual(tap.lines, [`ACK sub_id:${first.id} upto:${msgs[2].id}`]);
    await first.unsubscribe(); // keeps the durable
    const resumed = await c.subscribe("topic:orders", { durable: "billing" });
    const again = await take(resumed, 2);
    assert.deepEqual(again.map((m) => m.id), [msgs[3].id, msgs[4].id]);
    assert.deepEqual(errors, []);
  });
});

Deno.test("acks: with the ack window off, a late ack of a redelivered message settles no delivery after it", async () => {
  await withClient(async (c, _tap, queue, errors) => {
    const q = "queue:off";
    const ackTimeoutMs = 8_000;
    c.publishNoWait(q, "x");
    await c.flush();
    const sub = await c.subscribe(q, { prefetch: 1000, ackTimeoutMs });
    const [x] = await take(sub, 1);
    // X stays open at the head of the window: the window fills behind it and turns off.
    const n = ACK_WINDOW_ENTRIES_MAX;
    await fill(c, q, n);
    const started = Date.now();
    for (let got = 0; got < n;) {
      const ms = await take(sub, Math.min(500, n - got), 30_000);
      for (const m of ms) m.ack();
      got += ms.length;
    }
    c.publishNoWait(q, "z");
    // Z (not recorded: the window is off) and X's redelivery after its ack timeout; Z is held
    // open. The broker delivers Z before X again whenever the fill took less than the timeout.
    let z: Message | undefined;
    let x2: Message | undefined;
    for (let i = 0; i < 3 && (z === undefined || x2 === undefined); i++) {
      const [m] = await take(sub, 1, ackTimeoutMs + 30_000);
      if (m.id === x.id) x2 = m;
      else if (m.deliveryCount === 1) z = m;
    }
    assert.ok(z !== undefined && x2 !== undefined);
    const zFirst = Date.now() - started < ackTimeoutMs;
    x.ack(); // the old delivery of X: it must not become an upto that reaches past Z
    await c.flush();
    const s = queue(q);
    assert.equal(s.inflight, 1, `only Z is in flight (Z delivered before X again: ${zFirst})`);
    z.ack();
    await c.flush();
    assert.equal(queue(q).inflight, 0);
    assert.deepEqual(errors, []);
  });
});
