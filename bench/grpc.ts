/**
 * gRPC against TCP on one broker, in one run: subscribe-stream msgs/s,
 * publish-stream msgs/s and request/reply latency, each beside its TCP
 * counterpart, on a broker child per runtime (Deno, Bun, the Bun-built
 * binary when dist/relayr exists).
 *
 *   deno task bench:grpc [--runtimes deno,bun,binary] [--seconds 3] [--size 16]
 *
 * The subscribe measures count messages with a counting deserializer (top-
 * level fields of each SubscribeResponse, no objects), so they show what the
 * broker streams, not what a client's decoder costs. Publishers are raw TCP
 * (pipelined PUBs) under `--slow-consumer block`, so a subscriber that falls
 * behind slows them instead of being cut off. Numbers swing on a shared
 * machine: compare within a run.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { connect } from "../src/client/mod.ts";
import { brokerServiceDefinition } from "../src/grpc/mod.ts";
import { countRate } from "./grpc_sub_client.ts";
import { which } from "./servers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const encoder = new TextEncoder();

type Runtime = "deno" | "bun" | "binary";

interface Child {
  port: number;
  grpcPort: number;
  stop(): Promise<void>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function startChild(runtime: Runtime): Promise<Child> {
  const port = freePort();
  const grpcPort = freePort();
  const cmd = runtime === "deno"
    ? [Deno.execPath(), "run", "-A", `${ROOT}main.ts`]
    : runtime === "bun"
    ? ["bun", "run", `${ROOT}main.ts`]
    : [`${ROOT}dist/relayr`];
  const child = new Deno.Command(cmd[0], {
    args: [...cmd.slice(1), "serve", "--memory", "--host", "127.0.0.1", "--port", String(port)]
      .concat(["--grpc-port", String(grpcPort), "--no-http", "--slow-consumer", "block"])
      .concat(["--log-level", "warning"]),
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  // Ready when both ports accept.
  for (let i = 0; i < 300; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: grpcPort })).close();
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    port,
    grpcPort,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

// deno-lint-ignore no-explicit-any
function clientFor(port: number): any {
  const Ctor = grpc.makeClientConstructor(brokerServiceDefinition(), "relayr.v1.Broker");
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** A raw TCP publisher pipelining PUBs of `size` bytes until `stop`. */
async function tcpPublisher(port: number, dest: string, size: number, stop: () => boolean) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const frame = encoder.encode(`PUB ${dest} ${size}\r\n${"x".repeat(size)}\r\n`);
  const batch = new Uint8Array(frame.length * 1000);
  for (let i = 0; i < 1000; i++) batch.set(frame, i * frame.length);
  await conn.write(encoder.encode('CONNECT {"verbose":false}\r\n'));
  const drain = conn.readable.pipeTo(new WritableStream()).catch(() => {});
  while (!stop()) {
    let off = 0;
    while (off < batch.length) off += await conn.write(batch.subarray(off));
  }
  conn.close();
  await drain;
}

/**
 * msgs/s delivered to one gRPC Subscribe stream, counted by
 * grpc_sub_client.ts: in a Bun child when Bun is installed, else here.
 */
async function grpcSubscribe(c: Child, size: number, seconds: number): Promise<number> {
  const warmupMs = 700;
  const counting = which("bun")
    ? new Deno.Command("bun", {
      args: [
        `${ROOT}bench/grpc_sub_client.ts`,
        String(c.grpcPort),
        String(seconds),
        String(warmupMs),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output().then((o) => JSON.parse(new TextDecoder().decode(o.stdout)).rate as number)
    : countRate(c.grpcPort, seconds, warmupMs);
  await new Promise((r) => setTimeout(r, 300)); // the stream opens before the publisher starts
  let stopped = false;
  const pub = tcpPublisher(c.port, "topic:bench.g", size, () => stopped);
  pub.catch(() => {}); // awaited below; a dead broker must not be an unhandled rejection first
  const rate = await counting;
  stopped = true;
  await pub;
  // A stream cut off (the slow-consumer policy gave up on it) makes a low rate: say so.
  const client = clientFor(c.grpcPort);
  const stats = await new Promise<{ json: string }>((resolve, reject) =>
    client.Stats({}, (e: Error | null, r: { json: string }) => e ? reject(e) : resolve(r))
  );
  client.close();
  const closed = JSON.parse(stats.json).grpc.closed_by_reason;
  if (closed.SLOW_CONSUMER) {
    console.error(`relayr-grpc: the subscribe stream was cut off: ${JSON.stringify(closed)}`);
  }
  return rate;
}

/** msgs/s delivered to one raw TCP subscriber (MSG lines counted). */
async function tcpSubscribe(c: Child, size: number, seconds: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: c.port });
  await conn.write(encoder.encode('CONNECT {"verbose":false}\r\nSUB topic:bench.t\r\n'));
  let lines = 0;
  const reader = (async () => {
    for await (const chunk of conn.readable) {
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
    }
  })().catch(() => {});
  await new Promise((r) => setTimeout(r, 200));
  let stopped = false;
  const pub = tcpPublisher(c.port, "topic:bench.t", size, () => stopped);
  pub.catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
  const from = lines;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const rate = (lines - from) / 2 / ((performance.now() - t0) / 1000);
  stopped = true;
  await pub;
  conn.close();
  await reader;
  return rate;
}

/**
 * msgs/s acked on one PublishStream, batches of 1000, 8 batches in flight.
 * The batch is encoded once and sent as bytes (the client's protobufjs
 * encoder would be the ceiling otherwise, not the broker).
 */
async function grpcPublish(c: Child, size: number, seconds: number): Promise<number> {
  const def = { ...brokerServiceDefinition() };
  const body = new Uint8Array(size).fill(120);
  const batch = def.PublishStream.requestSerialize({
    messages: Array.from({ length: 1000 }, () => ({ destination: "queue:bench.p", body })),
  });
  def.PublishStream = { ...def.PublishStream, requestSerialize: (b: typeof batch) => b };
  const Ctor = grpc.makeClientConstructor(def, "relayr.v1.Broker");
  // deno-lint-ignore no-explicit-any
  const client: any = new Ctor(`127.0.0.1:${c.grpcPort}`, grpc.credentials.createInsecure());
  const call = client.PublishStream();
  let acked = 0;
  let inFlight = 0;
  let stopped = false;
  let wake: (() => void) | undefined;
  call.on("data", (d: { acks: unknown[] }) => {
    acked += d.acks.length;
    inFlight--;
    wake?.();
  });
  call.on("error", () => {});
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    while (inFlight < 8) {
      call.write(batch);
      inFlight++;
    }
    await new Promise<void>((r) => wake = r);
  }
  const rate = acked / ((performance.now() - t0) / 1000);
  stopped = true;
  call.end();
  client.close();
  return stopped ? rate : 0;
}

/** msgs/s published by one raw TCP connection, counted by the broker. */
async function tcpPublish(c: Child, size: number, seconds: number): Promise<number> {
  const client = clientFor(c.grpcPort);
  const stats = () =>
    new Promise<number>((resolve, reject) =>
      client.Stats(
        {},
        (e: Error | null, r: { published_msgs: number }) =>
          e ? reject(e) : resolve(r.published_msgs),
      )
    );
  let stopped = false;
  const before = await stats();
  const t0 = performance.now();
  const pub = tcpPublisher(c.port, "queue:bench.tp", size, () => stopped);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stopped = true;
  await pub;
  const rate = (await stats() - before) / ((performance.now() - t0) / 1000);
  client.close();
  return rate;
}

/** Request/reply round trips (µs, p50 and p99) via gRPC Request and via the TCP SDK, one responder. */
async function requestLatency(c: Child, n: number): Promise<{ grpc: number[]; tcp: number[] }> {
  const responder = await connect(`127.0.0.1:${c.port}`);
  const sub = await responder.subscribe("queue:bench.rr");
  const serving = (async () => {
    for await (const m of sub) {
      await m.respond(m.body);
      await m.ack();
    }
  })().catch(() => {});
  const client = clientFor(c.grpcPort);
  const grpcTimes: number[] = [];
  const body = new Uint8Array(16);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await new Promise((resolve, reject) =>
      client.Request(
        { message: { destination: "queue:bench.rr", body }, timeout_ms: 5000 },
        (e: Error | null, r: unknown) => e ? reject(e) : resolve(r),
      )
    );
    grpcTimes.push((performance.now() - t) * 1000);
  }
  const requester = await connect(`127.0.0.1:${c.port}`);
  const tcpTimes: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    try {
      await requester.request("queue:bench.rr", body, { timeoutMs: 5000 });
      tcpTimes.push((performance.now() - t) * 1000);
    } catch (e) {
      console.error(`TCP request ${i}: ${(e as Error).message}`);
    }
  }
  client.close();
  await requester.close();
  await responder.close();
  await serving;
  const pct = (xs: number[]) => {
    xs.sort((a, b) => a - b);
    return [xs[Math.floor(xs.length * 0.5)], xs[Math.floor(xs.length * 0.99)]];
  };
  return { grpc: pct(grpcTimes), tcp: pct(tcpTimes) };
}

/** One runtime's row: msgs/s and request/reply µs (p50, p99), gRPC beside TCP. */
export interface GrpcRow {
  runtime: Runtime;
  size: number;
  subscribe: { grpc: number; tcp: number };
  publish: { grpc: number; tcp: number };
  rpcUs: { grpc: number[]; tcp: number[] };
}

/** Options of a gRPC-beside-TCP run. */
export interface GrpcBenchOptions {
  runtimes: Runtime[];
  size: number;
  seconds: number;
  requests: number;
}

/** Runs the gRPC and TCP measures on one broker child per runtime (a missing binary is skipped). */
export async function grpcVsTcp(o: GrpcBenchOptions): Promise<GrpcRow[]> {
  const rows: GrpcRow[] = [];
  for (const runtime of o.runtimes) {
    if (runtime === "binary") {
      try {
        Deno.statSync(`${ROOT}dist/relayr`);
      } catch {
        console.error("relayr-grpc: dist/relayr missing (deno task build): binary skipped");
        continue;
      }
    }
    const c = await startChild(runtime);
    try {
      const tcpSub = await tcpSubscribe(c, o.size, o.seconds);
      const publish = {
        grpc: await grpcPublish(c, o.size, o.seconds),
        tcp: await tcpPublish(c, o.size, o.seconds),
      };
      const rpcUs = await requestLatency(c, o.requests);
      const subscribe = { grpc: await grpcSubscribe(c, o.size, o.seconds), tcp: tcpSub };
      rows.push({ runtime, size: o.size, subscribe, publish, rpcUs });
    } catch (e) {
      // A broker that died mid-run (see docs/GRPC.md on Deno's HTTP/2) fails its row, not the run.
      console.error(`relayr-grpc on ${runtime} FAILED: ${(e as Error).message}`);
    } finally {
      await c.stop();
    }
  }
  return rows;
}

/** The rows as a Markdown table. */
export function grpcTable(rows: GrpcRow[]): string {
  const k = (x: number) => `${(x / 1000).toFixed(0)} k`;
  const us = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" / ");
  return [
    "| runtime | size | subscribe stream gRPC | TCP | publish gRPC stream | TCP | request/reply p50 / p99 µs gRPC | TCP |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) =>
      `| ${r.runtime} | ${r.size} B | ${k(r.subscribe.grpc)} | ${k(r.subscribe.tcp)} | ` +
      `${k(r.publish.grpc)} | ${k(r.publish.tcp)} | ${us(r.rpcUs.grpc)} | ${us(r.rpcUs.tcp)} |`
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runtimes: { type: "string", default: "deno,bun,binary" },
      seconds: { type: "string", default: "3" },
      size: { type: "string", default: "16" },
      requests: { type: "string", default: "2000" },
    },
  });
  const rows = await grpcVsTcp({
    runtimes: values.runtimes.split(",") as Runtime[],
    size: Number(values.size),
    seconds: Number(values.seconds),
    requests: Number(values.requests),
  });
  console.log(grpcTable(rows));
}
