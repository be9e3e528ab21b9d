/**
 * One connection that pipelines PUBs and waits for every reply: the
 * publish-to-OK rate the replication and bindings benches compare.
 *
 * @module
 */

/**
 * Pipelines `msgs` PUBs of `size` bytes to `dest` on the broker at `port`,
 * in writes of `batch`, and counts the replies (an `ERR` throws); returns msgs/s.
 */
export async function pipelinedRate(
  port: number,
  dest: string,
  o: { msgs: number; size: number; batch: number },
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const frame = new TextEncoder().encode(`PUB ${dest} ${o.size}\r\n${"x".repeat(o.size)}\r\n`);
  const batch = new Uint8Array(frame.length * o.batch);
  for (let i = 0; i < o.batch; i++) batch.set(frame, i * frame.length);
  const t0 = performance.now();
  const replies = (async () => {
    const buf = new Uint8Array(1 << 20);
    for (let seen = 0; seen < o.msgs;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`closed after ${seen} replies`);
      if (buf[0] === 0x45) throw new Error(new TextDecoder().decode(buf.subarray(0, 120)));
      for (let i = 0; i < n; i++) if (buf[i] === 10) seen++;
    }
  })();
  for (let sent = 0; sent < o.msgs; sent += o.batch) {
    for (let at = 0; at < batch.length;) at += await conn.write(batch.subarray(at));
  }
  await replies;
  const rate = o.msgs / ((performance.now() - t0) / 1000);
  conn.close();
  return Math.round(rate);
}
