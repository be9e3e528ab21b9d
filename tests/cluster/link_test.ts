/**
 * The inter-node link's frames: encoded frames parse back whole however the
 * bytes are split (byte by byte included), and bad input is a
 * `LinkProtocolError` before anything large is buffered.
 */
import assert from "node:assert/strict";
import { LinkParser, LinkProtocolError } from "../../src/cluster/mod.ts";
import { CLUSTER_LINK_FRAME_BYTES_MAX, CLUSTER_LINK_LINE_BYTES_MAX } from "../../src/config/mod.ts";
import { encodeLine, LinkOutbound } from "../../src/cluster/link.ts";
import { defaultPubOptions } from "../../src/protocol/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Frames as a peer's outbound buffer holds them; a second buffer copies the frames of the first. */
function frames(): Uint8Array {
  const o = { ...defaultPubOptions(), priority: 7, correlationId: "c-1" };
  const body = enc.encode("xxhello\r\nworldyy");
  const a = new LinkOutbound();
  const b = new LinkOutbound();
  a.append(encodeLine("HELLO", "n1"));
  b.append(encodeLine("HELLO", "n1"));
  a.append(encodeLine("SUB", "topic:a.>"));
  b.append(encodeLine("SUB", "topic:a.>"));
  const [s1, n1] = a.appendMsg("topic:a.b", body, 2, body.length - 4, undefined);
  b.appendFrom(a, s1, n1);
  const [s2, n2] = a.appendMsg("topic:a.c", body, 0, 0, o);
  b.appendFrom(a, s2, n2);
  a.append(encodeLine("UNSUB", "topic:a.>"));
  b.append(encodeLine("UNSUB", "topic:a.>"));
  const bytes = a.take().slice();
  assert.deepEqual(b.take(), bytes);
  assert.equal(a.size, 0);
  return bytes;
}

function summary(fs: ReturnType<LinkParser["push"]>): string[] {
  return fs.map((f) =>
    f.op === "MSG"
      ? `MSG ${f.topic} ${JSON.stringify(f.options?.priority)} ${dec.decode(f.payload)}`
      : f.op === "HELLO"
      ? `HELLO ${f.node}`
      : `${f.op} ${f.pattern}`
  );
}

Deno.test("link outbound buffers take turns and grow past their first size", () => {
  const out = new LinkOutbound();
  const big = new Uint8Array(100_000).fill(97);
  out.appendMsg("topic:big", big, 0, big.length, undefined);
  const first = out.take();
  out.appendMsg("topic:x", big, 0, 3, undefined); // into the other buffer: `first` is untouched
  assert.equal(first.length, `MSG topic:big 0 100000\r\n`.length + 100_002);
  const [f] = new LinkParser().push(first);
  assert.ok(f.op === "MSG" && f.payload.length === 100_000 && f.payload.every((x) => x === 97));
  assert.deepEqual(summary(new LinkParser().push(out.take())), ["MSG topic:x undefined aaa"]);
});

Deno.test("link frames round-trip whole, in one chunk and split at every byte", () => {
  const bytes = frames();
  const want = [
    "HELLO n1",
    "SUB topic:a.>",
    "MSG topic:a.b undefined hello\r\nworld",
    "MSG topic:a.c 7 ",
    "UNSUB topic:a.>",
  ];
  assert.deepEqual(summary(new LinkParser().push(bytes)), want);
  const p = new LinkParser();
  const got = [];
  for (let i = 0; i < bytes.length; i++) got.push(...p.push(bytes.subarray(i, i + 1)));
  assert.deepEqual(summary(got), want);
  for (let cut = 1; cut < bytes.length; cut += 7) {
    const q = new LinkParser();
    assert.deepEqual(
      summary([...q.push(bytes.subarray(0, cut)), ...q.push(bytes.subarray(cut))]),
      want,
    );
  }
});

Deno.test("link frames: bad input is a LinkProtocolError", () => {
  const bad = [
    "NOPE x\r\n",
    "SUB\r\n",
    "SUB a b\r\n",
    "MSG topic:a 0\r\n",
    "MSG topic:a -1 3\r\n",
    "MSG topic:a x 3\r\n",
    `MSG topic:a 0 ${CLUSTER_LINK_FRAME_BYTES_MAX + 1}\r\n`,
    "x".repeat(CLUSTER_LINK_LINE_BYTES_MAX + 1),
  ];
  for (const b of bad) {
    assert.throws(
      () => new LinkParser().push(enc.encode(b)),
      LinkProtocolError,
      JSON.stringify(b.slice(0, 40)),
    );
  }
});
