/**
 * A gRPC `Declare` of a topic in a cluster goes through the router as a TCP
 * `DECLARE topic:` does (docs/CLUSTERING.md, "Declared topics"): two real
 * broker processes, a real etcd, a real grpc-js client. On a node that does
 * not lead the topic it is forwarded to the leader (counted as forwarded);
 * a topic nobody leads is claimed by the node called and declared
 * cluster-wide: a publish on the other node is retained in its log and
 * replayed. Before, both were refused `INVALID_ARGUMENT` ("declare over TCP").
 */
import assert from "node:assert/strict";
import { GrpcClient } from "../grpc_helpers.ts";
import { RawClient } from "../helpers.ts";
import { clusterOf, leaderIn, startNodes, untilView } from "./cluster_helpers.ts";
import { ETCD_MISSING } from "./etcd.ts";
import { answerRetry, withCluster } from "./repl_helpers.ts";

const decoder = new TextDecoder();

Deno.test({
  name: "cluster gRPC Declare: forwarded to the topic's leader; a new topic is claimed by the " +
    "node called and declared for every node",
  ignore: ETCD_MISSING !== undefined,
  fn: () =>
    withCluster(async (etcd, nodes) => {
      const [n1, n2] = await startNodes(etcd.url, ["n1", "n2"], ["--grpc-port", "0"], nodes);
      await untilView(n1, (c) => c.members.length === 2, "two members");
      const g2 = new GrpcClient(n2.grpcPort!);
      try {
        // Led by n1 (declared there over TCP): n2's gRPC Declare goes to n1.
        assert.equal(await answerRetry(n1, "DECLARE topic:led retain_messages:10"), "OK");
        await untilView(n2, (c) => leaderIn(c, "topic:led")?.node === "n1", "n2 sees n1 lead");
        const before = (await clusterOf(n2)).forwarded_commands;
        assert.deepEqual(
          await g2.unary("Declare", { destination: "topic:led", retain_messages: 10 }),
          {},
        );
        assert.equal((await clusterOf(n2)).forwarded_commands, before + 1);

        // Nobody leads it: n2 claims it and declares it; n1 publishes to its log.
        assert.deepEqual(
          await g2.unary("Declare", { destination: "topic:fresh", retain_messages: 10 }),
          {},
        );
        assert.equal(leaderIn(await clusterOf(n2), "topic:fresh")?.node, "n2");
        assert.match(await answerRetry(n1, "PUB topic:fresh 5\r\nhello"), /^OK msg_id:\d+$/);
        const replay = await RawClient.connect(n1.port);
        try {
          await replay.send("SUB topic:fresh start:first\r\n");
          assert.match(await replay.line(10_000), /^OK/);
          const [m] = await replay.msgs(1, 10_000);
          assert.equal(decoder.decode(m.payload), "hello");
        } finally {
          await replay.close();
        }
      } finally {
        g2.raw.close();
      }
    }),
});
