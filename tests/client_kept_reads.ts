/**
 * The SDK's messages view the chunk they were read in (no copy): a message
 * a user keeps must keep its bytes while the client reads megabytes more
 * behind it (the Deno runtime reads later chunks into the unused tail of the
 * same buffer, src/runtime/read_buffer.ts). Shared by
 * tests/client_kept_reads_test.ts (Deno) and tests/client_bun_check.ts (Bun):
 * no `Deno.` or `Bun.` here.
 *
 * @module
 */
import { connect, type Message } from "../src/client/mod.ts";

/** Payload `i`: a size from a mixed cycle and bytes that name their message. */
function payload(i: number): Uint8Array {
  const sizes = [16, 256, 4096, 1000, 1, 70_000, 3, 30_000];
  const b = new Uint8Array(sizes[i % sizes.length]);
  for (let j = 0; j < b.length; j++) b[j] = (i * 131 + j * 7 + (j >> 8)) & 255;
  return b;
}

/** Where `m`'s body differs from payload `i`, or undefined. */
function differs(m: Message, i: number): string | undefined {
  const want = payload(i);
  const got = m.body;
  if (got.length !== want.length) return `message ${i}: ${got.length} B, want ${want.length}`;
  for (let j = 0; j < want.length; j++) {
    if (got[j] !== want[j]) return `message ${i} (${want.length} B) differs at byte ${j}`;
  }
  return undefined;
}

/**
 * Publishes about `mib` MiB of mixed-size messages to one subscriber that
 * keeps every message, checking each as it comes and all of them again once
 * the last came. Returns the problems (none: every kept message still holds
 * its own bytes), the messages, and how many shared the buffer of the
 * message before (views into one chunk, or into the tail read after it).
 */
export async function keptMessages(
  address: string,
  mib: number,
): Promise<{ problems: string[]; messages: number; shared: number }> {
  let count = 0;
  for (let bytes = 0; bytes < mib * 1024 * 1024; count++) bytes += payload(count).length;
  const sub = await connect(address, { reconnect: false });
  const pub = await connect(address, { reconnect: false });
  const problems: string[] = [];
  const kept: Message[] = [];
  try {
    let done!: () => void;
    const all = new Promise<void>((resolve) => done = resolve);
    await sub.subscribe("topic:kept.reads", {
      callback: (m) => {
        const wrong = differs(m, kept.length);
        if (wrong !== undefined && problems.length < 5) problems.push(`on arrival: ${wrong}`);
        kept.push(m);
        if (kept.length === count) done();
      },
    });
    for (let i = 0; i < count; i++) {
      pub.publishNoWait("topic:kept.reads", payload(i));
      if (i % 64 === 63) await pub.flush(); // within the broker's slow-consumer limits
    }
    await pub.flush();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      all,
      new Promise<void>((resolve) => timer = setTimeout(resolve, 20_000)),
    ]).finally(() => clearTimeout(timer));
    if (kept.length !== count) problems.push(`${kept.length} of ${count} messages came`);
    for (let i = 0; i < kept.length && problems.length < 5; i++) {
      const wrong = differs(kept[i], i);
      if (wrong !== undefined) problems.push(`after all reads: ${wrong}`);
    }
  } finally {
    await pub.close();
    await sub.close();
  }
  let shared = 0;
  for (let i = 1; i < kept.length; i++) {
    if (kept[i].body.buffer === kept[i - 1].body.buffer) shared++;
  }
  return { problems, messages: kept.length, shared };
}
