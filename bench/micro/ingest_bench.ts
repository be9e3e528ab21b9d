/**
 * The server's ingest without sockets: a `Connection` (through
 * `Server.adopt`) reads 256 KiB chunks of pipelined `PUB`s from a fake
 * `Conn` that hands the same chunk out again (as the Deno runtime reads
 * into a freed chunk), parses and dispatches them: publish-only (nobody
 * subscribed) and pub -> 1 subscriber on another fake connection whose
 * writes complete at once. What is left is the parser, the connection's
 * per-frame work, the broker and the outbound copies: changes of a few
 * percent there show here, where the socket bench's spread hides them.
 */
import type { Conn, Runtime } from "../../src/runtime/mod.ts";
import { Server } from "../../src/server/mod.ts";
import { benchBroker } from "./counting.ts";

const CHUNK_BYTES = 256 * 1024;
const CHUNKS = 8;
const enc = new TextEncoder();

/** A chunk of whole `PUB <dest> <size>` frames, and how many. */
function chunkOf(dest: string, size: number): { chunk: Uint8Array; frames: number } {
  const one = enc.encode(`PUB ${dest} ${size}\r\n${"x".repeat(size)}\r\n`);
  const frames = Math.floor(CHUNK_BYTES / one.length);
  const chunk = new Uint8Array(frames * one.length);
  for (let i = 0; i < frames; i++) chunk.set(one, i * one.length);
  return { chunk, frames };
}

/**
 * A connection that sends `first`, then `chunk` `count` times, then ends (or,
 * without `chunk`, waits); writes complete at once.
 */
function fakeConn(first: Uint8Array, chunk: Uint8Array | undefined, count: number): {
  conn: Conn;
  closed: Promise<void>;
} {
  const done = Promise.withResolvers<void>();
  let n = -1;
  const conn: Conn = {
    get readable(): ReadableStream<Uint8Array> {
      throw new Error("read() only");
    },
    read(): Promise<Uint8Array | null> {
      n++;
      if (n === 0) return Promise.resolve(first);
      if (chunk === undefined) return new Promise<null>(() => {});
      return Promise.resolve(n <= count ? chunk : null);
    },
    write: () => Promise.resolve(),
    close: () => done.resolve(),
    remoteAddr: "127.0.0.1:1",
  };
  return { conn, closed: done.promise };
}

function server(): Server {
  return new Server({} as Runtime, benchBroker(), {
    hostname: "127.0.0.1",
    port: 0,
    payloadBytesMax: 1 << 20,
    pingIntervalMs: 60_000,
    version: "bench",
  });
}

const CONNECT = enc.encode(`CONNECT {"verbose":false}\r\n`);

for (const size of [16, 256, 4096]) {
  const { chunk, frames } = chunkOf("topic:bench.ingest", size);
  const s = server();
  Deno.bench({
    name: `publish only, ${size} B: ${CHUNKS} chunks of ${frames} PUBs`,
    group: `ingest ${size}`,
    async fn() {
      const { conn, closed } = fakeConn(CONNECT, chunk, CHUNKS);
      s.adopt(conn);
      await closed;
    },
  });
}

for (const size of [16, 256]) {
  const { chunk, frames } = chunkOf("queue:bench.q", size);
  const s = server();
  // One consumer that never acks (ack:none): the publish, the queue and the MSG copies.
  s.adopt(
    fakeConn(
      enc.encode(`CONNECT {"verbose":false}\r\nSUB queue:bench.q ack:none prefetch:65536\r\n`),
      undefined,
      0,
    ).conn,
  );
  Deno.bench({
    name: `pub -> queue, 1 ack:none consumer, ${size} B: ${CHUNKS} chunks of ${frames} PUBs`,
    group: `ingest ${size}`,
    async fn() {
      const { conn, closed } = fakeConn(CONNECT, chunk, CHUNKS);
      s.adopt(conn);
      await closed;
    },
  });
}

for (const size of [16, 256]) {
  const { chunk, frames } = chunkOf("topic:bench.sub", size);
  const s = server();
  // The subscriber stays connected: after its SUB, a read that never ends.
  s.adopt(
    fakeConn(enc.encode(`CONNECT {"verbose":false}\r\nSUB topic:bench.sub\r\n`), undefined, 0).conn,
  );
  Deno.bench({
    name: `pub -> 1 sub, ${size} B: ${CHUNKS} chunks of ${frames} PUBs`,
    group: `ingest ${size}`,
    async fn() {
      const { conn, closed } = fakeConn(CONNECT, chunk, CHUNKS);
      s.adopt(conn);
      await closed;
    },
  });
}
