/**
 * The client side of the connection storm (storm.ts), as a process of its
 * own: it needs one file descriptor per connection, and the test runner's
 * limit cannot be raised from inside it, so storm.ts starts this under `sh -c
 * "ulimit -n ... && exec deno run ..."`. Keeping the storm out of the test
 * process also keeps the latency probe there on a quiet event loop, so what
 * it measures is the broker.
 *
 * `deno run --allow-net storm_client.ts <port> <count> <window>`: opens
 * `count` connections to 127.0.0.1:<port>, at most `window` handshakes at a
 * time, each sending `CONNECT` + `SUB topic:storm.<i> sub_id:s` and reading both `OK`s;
 * prints one JSON line `{"opened":n,"ms":t}`; then waits for a line on stdin
 * (or `HOLD_MS_MAX`), closes every connection at once, prints
 * `{"closed":n}` and exits. Any failure prints `{"error":"..."}` and exits 1.
 */

/** Longest time one connection may take from connect to its second OK. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Longest time the connections are held open waiting for the test's "close". */
const HOLD_MS_MAX = 30_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Reads until two `OK` lines arrived; anything else (an ERR) fails. */
async function readTwoOks(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(256);
  let text = "";
  // Bounded: each read returns at least one byte or ends the loop.
  for (let reads = 0; reads < 64; reads++) {
    if (text === "OK\r\nOK\r\n") return;
    if (text.length >= 8) break;
    const n = await conn.read(buf);
    if (n === null) throw new Error(`closed by the server after ${JSON.stringify(text)}`);
    text += dec.decode(buf.subarray(0, n));
  }
  throw new Error(`unexpected reply ${JSON.stringify(text)}`);
}

async function open(port: number, i: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(
      conn,
      enc.encode(
        `CONNECT {"version":"1.0","client_id":"storm-${i}"}\r\nSUB topic:storm.${i} sub_id:s\r\n`,
      ),
    );
    await readTwoOks(conn);
    return conn;
  } catch (e) {
    conn.close();
    throw e;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

async function main(): Promise<void> {
  const [port, count, window] = Deno.args.map(Number);
  const conns: Deno.TcpConn[] = [];
  const t0 = performance.now();
  let next = 0;
  // `window` workers, each taking the next index: at most `window` handshakes in flight,
  // so the listen backlog is never flooded (a dropped SYN costs a 1 s retransmit).
  const worker = async () => {
    while (next < count) {
      const i = next++;
      conns.push(await withTimeout(open(port, i), HANDSHAKE_TIMEOUT_MS, `connection ${i}`));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  } catch (e) {
    for (const c of conns) c.close();
    console.log(JSON.stringify({ error: String(e), opened: conns.length }));
    Deno.exit(1);
  }
  console.log(JSON.stringify({ opened: conns.length, ms: Math.round(performance.now() - t0) }));

  const reader = Deno.stdin.readable.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    reader.read(),
    new Promise((r) => timer = setTimeout(r, HOLD_MS_MAX)),
  ]);
  clearTimeout(timer);
  for (const c of conns) c.close(); // all at once: one synchronous loop
  console.log(JSON.stringify({ closed: conns.length }));
  Deno.exit(0);
}

await main();
