/**
 * Helpers of the SDK tests that need the SDK itself: a runtime that counts
 * what the broker sends, and an opener of clients closed together. Apart
 * from client_helpers.ts, which the CLI tests import without the SDK.
 */
import { type Client, connect, type ConnectOptions, type Runtime } from "../src/client/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";

/**
 * A runtime whose connections count the lines the broker sends that `match`
 * takes, so a test can wait for (or check) what the broker wrote instead of
 * sleeping through it.
 */
export function countingLines(match: (line: string) => boolean): {
  runtime: Runtime;
  count: () => number;
} {
  let n = 0;
  const runtime: Runtime = {
    ...denoRuntime,
    async connect(options) {
      const conn = await denoRuntime.connect(options);
      const dec = new TextDecoder();
      let rest = "";
      const count = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, out) {
          const lines = (rest + dec.decode(chunk, { stream: true })).split("\r\n");
          rest = lines.pop()!;
          n += lines.filter(match).length;
          out.enqueue(chunk);
        },
      });
      return {
        readable: conn.readable.pipeThrough(count),
        write: (bytes) => conn.write(bytes),
        close: () => conn.close(),
        remoteAddr: conn.remoteAddr,
      };
    },
  };
  return { runtime, count: () => n };
}

/**
 * Opens clients of one broker (no reconnect unless asked) and closes them
 * all at the end of a test.
 */
export function clientsOf(address: string): {
  open(opts?: ConnectOptions): Promise<Client>;
  closeAll(): Promise<void>;
} {
  const clients: Client[] = [];
  return {
    async open(opts = {}) {
      const c = await connect(address, { reconnect: false, ...opts });
      clients.push(c);
      return c;
    },
    closeAll: async () => void await Promise.all(clients.map((c) => c.close())),
  };
}
