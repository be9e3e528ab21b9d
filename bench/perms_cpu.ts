/**
 * `deno task bench:perms`: what permission checks cost the broker, as CPU
 * time per message, which a shared machine disturbs far less than a rate.
 *
 * Two broker children run side by side: one without authentication, one with
 * the users file of `relayr-perms` (a user with 100 allow rules per action,
 * bench/perms_users.ts). Rounds alternate between them; each round is one
 * publisher and one subscriber of a topic, `--count` messages of `--size`
 * bytes, and reads the broker's user+system CPU time from /proc before and
 * after. Prints the median CPU µs per message of each, and their ratio.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BrokerChild, startBrokerChild } from "./broker_child.ts";
import { BENCH_CONNECT_AUTH, writeBenchUsers } from "./perms_users.ts";

/** Longest one round may take before it is a failure. */
const ROUND_TIMEOUT_MS = 120_000;
/** Bytes written per socket write by the publisher. */
const WRITE_BYTES = 64 * 1024;
/** Payload bytes the publisher may run ahead of the subscriber (below the slow-consumer limits). */
const WINDOW_BYTES = 8 * 1024 * 1024;

const enc = new TextEncoder();

/** The child's user+system CPU seconds (Linux /proc; clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15)
}

/** Reads until `pred(bytes seen so far, last chunk)` or the deadline; bounded by time. */
async function readUntil(
  conn: Deno.TcpConn,
  deadline: number,
  seen: (chunk: Uint8Array) => boolean,
): Promise<void> {
  const buf = new Uint8Array(256 * 1024);
  while (Date.now() < deadline) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("the broker closed the connection");
    if (seen(buf.subarray(0, n))) return;
  }
  throw new Error("round timed out");
}

/** Logs in (with `auth`), sends `extra`, and waits for the PONG of a PING behind them. */
async function open(
  port: number,
  auth: Record<string, string> | undefined,
  extra: string,
): Promise<Deno.TcpConn> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const connect = JSON.stringify({ verbose: false, ...auth });
  await c.write(enc.encode(`CONNECT ${connect}\r\n${extra}PING\r\n`));
  let text = "";
  await readUntil(c, Date.now() + 30_000, (chunk) => {
    text += new TextDecoder().decode(chunk);
    if (text.includes("ERR")) throw new Error(text.trim());
    return text.includes("PONG\r\n");
  });
  return c;
}

/** One round: `count` messages pub -> sub; returns [CPU µs per message, msgs/s]. */
async function round(
  b: BrokerChild,
  auth: Record<string, string> | undefined,
  count: number,
  size: number,
): Promise<[number, number]> {
  const topic = `topic:bench.cpu${Math.random().toString(36).slice(2, 8)}`;
  const sub = await open(b.port, auth, `SUB ${topic} sub_id:s ack:none\r\n`);
  const pub = await open(b.port, auth, "");
  const frame = enc.encode(`PUB ${topic} ${size}\r\n${"x".repeat(size)}\r\n`);
  const perWrite = Math.max(1, Math.floor(WRITE_BYTES / frame.length));
  const chunk = new Uint8Array(frame.length * perWrite);
  for (let i = 0; i < perWrite; i++) chunk.set(frame, i * frame.length);
  // Each MSG is two lines (head, payload): count line ends until all arrived.
  let lines = 0;
  const received = readUntil(sub, Date.now() + ROUND_TIMEOUT_MS, (c) => {
    for (let i = 0; i < c.length; i++) if (c[i] === 10) lines++;
    return lines >= 2 * count;
  });
  const cpu0 = cpuSeconds(b.pid);
  const t0 = performance.now();
  const window = Math.max(perWrite, Math.floor(WINDOW_BYTES / frame.length));
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  for (let sent = 0; sent < count; sent += perWrite) {
    while (sent - lines / 2 > window && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 0)); // lets the subscriber's reads run
    }
    const n = Math.min(perWrite, count - sent);
    const bytes = n === perWrite ? chunk : chunk.subarray(0, n * frame.length);
    for (let off = 0; off < bytes.length;) off += await pub.write(bytes.subarray(off));
  }
  await received;
  const ms = performance.now() - t0;
  const cpu = cpuSeconds(b.pid) - cpu0;
  pub.close();
  sub.close();
  return [cpu * 1e6 / count, count / ms * 1000];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "1000000" },
      size: { type: "string", default: "16" },
      rounds: { type: "string", default: "5" },
    },
  });
  const count = Number(values.count);
  const size = Number(values.size);
  const rounds = Number(values.rounds);
  const dir = await Deno.makeTempDir({ prefix: "relayr-perms-cpu-" });
  const users = `${dir}/users.json`;
  await writeBenchUsers(users);
  const plain = await startBrokerChild({ runtime: "deno", args: ["--memory"] });
  const perms = await startBrokerChild({ runtime: "deno", args: ["--memory", "--users", users] });
  try {
    const runs = { plain: [] as number[][], perms: [] as number[][] };
    await round(plain, undefined, count / 10, size); // warm-up, unreported
    await round(perms, BENCH_CONNECT_AUTH, count / 10, size);
    for (let r = 0; r < rounds; r++) {
      runs.plain.push(await round(plain, undefined, count, size));
      runs.perms.push(await round(perms, BENCH_CONNECT_AUTH, count, size));
      const [a, b] = [runs.plain.at(-1)!, runs.perms.at(-1)!];
      console.log(
        `round ${r + 1}: without ${a[0].toFixed(3)} µs/msg (${(a[1] / 1e6).toFixed(2)} M/s), ` +
          `with ${b[0].toFixed(3)} µs/msg (${(b[1] / 1e6).toFixed(2)} M/s)`,
      );
    }
    const cpu = (k: "plain" | "perms") => median(runs[k].map((x) => x[0]));
    const rate = (k: "plain" | "perms") => median(runs[k].map((x) => x[1]));
    console.log(
      `median of ${rounds}, ${count} x ${size} B pub->sub: broker CPU ` +
        `${cpu("plain").toFixed(3)} µs/msg without auth, ${cpu("perms").toFixed(3)} with ` +
        `(100 rules): ${(cpu("plain") / cpu("perms")).toFixed(3)}x the throughput per CPU; ` +
        `rates ${(rate("plain") / 1e6).toFixed(2)} and ${(rate("perms") / 1e6).toFixed(2)} M/s`,
    );
  } finally {
    await plain.stop();
    await perms.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
