/**
 * What the console tests share: a broker with its HTTP port on a free port
 * of 127.0.0.1, and a raw client that has said CONNECT.
 */
import { type Running, startBroker } from "../src/app.ts";
import { loadConfig } from "../src/config/config.ts";
import { denoRuntime } from "../src/runtime/deno.ts";
import { RawClient } from "./helpers.ts";

/** A broker with its HTTP port on 127.0.0.1 (both ports free ones); `base` is the HTTP URL. */
export async function brokerWithHttp(args: string[] = []): Promise<Running & { base: string }> {
  const { config } = loadConfig({
    args: [
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--http-host",
      "127.0.0.1",
      "--http-port",
      "0",
      ...args,
    ],
    env: () => undefined,
    readFile: () => {
      throw new Error("no config file in tests");
    },
  });
  const running = await startBroker(denoRuntime, config);
  return Object.assign(running, { base: `http://127.0.0.1:${running.http!.port}` });
}

/** A raw client after `CONNECT` with `client_id` (and `verbose:false` when asked: no OKs). */
export async function connected(
  port: number,
  clientId: string,
  verbose = true,
): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.send(`CONNECT {"client_id":"${clientId}","verbose":${verbose}}\r\n`);
  if (verbose && !(await c.line()).startsWith("OK")) throw new Error("CONNECT refused");
  return c;
}
