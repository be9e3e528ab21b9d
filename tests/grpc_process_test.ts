/**
 * The gRPC listener in child processes: under `bun run main.ts` and inside
 * the Bun-built binary (`dist/relayr`, rebuilt when a source is newer), with
 * a grpc-js client in the test: a publish over gRPC to a TCP subscriber and a
 * gRPC subscriber (every field), a TCP publish back to the gRPC subscriber,
 * and the `relayr_grpc_*` metrics. The binary carries the proto compiled in
 * (src/grpc/descriptor.ts): nothing reads a .proto. Skipped when `bun` is absent.
 */
import assert from "node:assert/strict";
import { bunVersion, ensureBinary, startServerProcess } from "./child.ts";
import { GrpcClient, subscribe, takeMessages } from "./grpc_helpers.ts";
import { RawClient } from "./helpers.ts";
import { parseExposition, value } from "./prometheus.ts";

const bun = await bunVersion();
if (bun === undefined) console.log("grpc_process_test: skipped, bun is not on PATH");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function exchange(cmd: string, args: string[]): Promise<void> {
  const server = await startServerProcess(cmd, [...args, "--grpc-port", "0"]);
  const c = new GrpcClient(server.grpcPort!);
  const tcp = await RawClient.connect(server.port);
  try {
    await tcp.send("SUB topic:x sub_id:t\r\n");
    assert.equal(await tcp.line(), "OK");
    const g = await subscribe(c, { destination: "topic:x" });
    const { msg_id } = await c.unary<{ msg_id: string }>("Publish", {
      destination: "topic:x",
      body: encoder.encode("from grpc"),
      headers: { k: "v" },
      correlation_id: "c1",
    });
    const [f] = await tcp.msgs(1);
    assert.equal(f.fields!.msg_id, msg_id);
    assert.equal(f.fields!.correlation_id, "c1");
    assert.equal(decoder.decode(f.payload!), "k: v\r\n\r\nfrom grpc");
    const [m] = await takeMessages(g.r, 1);
    assert.deepEqual([m.msg_id, m.headers, decoder.decode(m.body)], [
      msg_id,
      { k: "v" },
      "from grpc",
    ]);
    await tcp.pub("topic:x", "from tcp", "content_type:text/plain");
    const [back] = await takeMessages(g.r, 1);
    assert.equal(decoder.decode(back.body), "from tcp");
    assert.equal(back.content_type, "text/plain");
    g.call.cancel();
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/metrics`);
    const families = parseExposition(await res.text());
    assert.equal(value(families, "relayr_grpc_calls_total", { method: "Publish" }), 1);
    assert.equal(value(families, "relayr_grpc_messages_in_total"), 1);
  } finally {
    c.close();
    await tcp.close();
    const status = await server.stop();
    assert.equal(status.code, 0, server.output());
  }
}

Deno.test({
  name: "grpc process: bun run main.ts serves gRPC beside TCP",
  ignore: bun === undefined,
  fn: () => exchange("bun", ["run", "main.ts", "serve"]),
});

Deno.test({
  name: "grpc process: the Bun-built binary serves gRPC (the proto is compiled in)",
  ignore: bun === undefined,
  async fn() {
    const binary = await ensureBinary();
    await exchange(binary, ["serve"]);
  },
});
