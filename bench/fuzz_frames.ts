/**
 * The fuzz frames, one source for the in-suite test (tests/e2e/fuzz_test.ts)
 * and `deno task bench:fuzz`: a corpus of valid frames, the seeded mutations
 * of them, random garbage, and the mix of the three.
 *
 * @module
 */

/** Valid frames of every verb, the seeds of the mutations. */
export const CORPUS: readonly string[] = [
  'CONNECT {"version":"1.0","client_id":"fz"}\r\n',
  // Without OKs, repeated PUBs are read as runs (PubRun): a run to a topic and to a queue.
  'CONNECT {"verbose":false}\r\n',
  "PUB topic:fz.a 2\r\nr1\r\nPUB topic:fz.a 2\r\nr2\r\nPUB topic:fz.a 0\r\n\r\n",
  "PUB queue:fz 2\r\nq1\r\nPUB queue:fz 2\r\nq2\r\nPUB queue:fz 2\r\nq3\r\n",
  "PUB queue:fz 5\r\nhello\r\n",
  "PUB topic:fz.a priority:3 ttl:1000 correlation_id:x reply_to:topic:r 2\r\nhi\r\n",
  "PUB topic:fz.b hdr:9 11\r\nK: v\r\n\r\n\r\nab\r\n",
  "SUB topic:fz.* sub_id:a\r\n",
  "SUB queue:fz sub_id:q prefetch:2 ack:explicit\r\n",
  "SUB topic:fz.a sub_id:e ack:explicit prefetch:1 ack_timeout:50\r\n",
  "UNSUB a\r\n",
  "ACK msg_id:1 msg_id:2\r\n",
  "ACK sub_id:q upto:1\r\n",
  "NACK msg_id:3 delay:10\r\n",
  "PUB queue:fz.s delay:20 dedup_id:d1 2\r\nhi\r\n",
  "PUB topic:fz.a deliver_at:1 dedup_id:d2 2\r\nhi\r\n",
  "DECLARE queue:fz.d max_messages:5 overflow:drop_oldest dlq:none dedup_window:1000\r\n",
  "PING\r\n",
  "PONG\r\n",
  "INFO\r\n",
];

/** How a fuzz connection may end: the client's FIN, or a fatal framing error. */
export const ALLOWED_CLOSES: ReadonlySet<string> = new Set([
  "CLIENT_CLOSED",
  "CONTROL_LINE_TOO_LONG",
  "PAYLOAD_TOO_LARGE",
  "BAD_FRAME",
]);

const encoder = new TextEncoder();

/** A tiny seeded PRNG (mulberry32) so a run is repeatable (tests/helpers.ts re-exports it). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `s` with 1-3 random edits: a byte replaced, deleted, a separator inserted, a run repeated, a digit. */
export function mutate(r: () => number, s: string): Uint8Array {
  const out = Array.from(encoder.encode(s));
  const edits = 1 + Math.floor(r() * 3);
  for (let e = 0; e < edits && out.length > 0; e++) {
    const i = Math.floor(r() * out.length);
    const kind = r();
    if (kind < 0.3) out[i] = Math.floor(r() * 256);
    else if (kind < 0.5) out.splice(i, 1);
    else if (kind < 0.7) out.splice(i, 0, [32, 10, 13, 58, 48][Math.floor(r() * 5)]);
    else if (kind < 0.85) out.splice(i, 0, ...out.slice(i, i + Math.floor(r() * 20)));
    else out[i] = 48 + Math.floor(r() * 10);
  }
  return new Uint8Array(out);
}

/** 0-299 random bytes. */
export function garbage(r: () => number): Uint8Array {
  const n = Math.floor(r() * 300);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

const CORPUS_BYTES = CORPUS.map((s) => encoder.encode(s));

/** One fuzz frame, mixed as the in-suite test mixes them: 15% garbage, 45% mutated, 40% valid. */
export function fuzzFrame(r: () => number): Uint8Array {
  const pick = r();
  if (pick < 0.15) return garbage(r);
  if (pick < 0.6) return mutate(r, CORPUS[Math.floor(r() * CORPUS.length)]);
  return CORPUS_BYTES[Math.floor(r() * CORPUS.length)];
}
