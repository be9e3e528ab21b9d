/**
 * `relayr_grpc_*`: the gRPC listener's families, from `GrpcFront.stats()`,
 * read at scrape time like every other family.
 *
 * @module
 */
import type { GrpcStats } from "../grpc/mod.ts";
import type { Exposition, Sample } from "./exposition.ts";

/** Adds the gRPC families to a scrape. */
export function grpcFamilies(e: Exposition, g: GrpcStats): void {
  e.family("relayr_grpc_streams", "gauge", "Open gRPC streams, by kind", [
    [{ kind: "subscribe" }, g.subscribe_streams],
    [{ kind: "publish" }, g.publish_streams],
  ]);
  e.single(
    "relayr_grpc_requests_waiting",
    "gauge",
    "gRPC Requests waiting for a reply",
    g.requests_waiting,
  );
  e.family(
    "relayr_grpc_calls_total",
    "counter",
    "gRPC calls started, by method",
    Object.entries(g.calls).map(([method, n]): Sample => [{ method }, n]),
  );
  e.family(
    "relayr_grpc_errors_total",
    "counter",
    "gRPC calls failed and stream publishes refused, by broker error code",
    Object.entries(g.errors).map(([code, n]): Sample => [{ code }, n]),
  );
  e.family(
    "relayr_grpc_streams_closed_total",
    "counter",
    "gRPC streams ended, by reason",
    Object.entries(g.closed_by_reason).map(([reason, n]): Sample => [{ reason }, n]),
  );
  e.single("relayr_grpc_messages_in_total", "counter", "Messages published over gRPC", g.in_msgs);
  e.single(
    "relayr_grpc_bytes_in_total",
    "counter",
    "Payload bytes published over gRPC",
    g.in_bytes,
  );
  e.single(
    "relayr_grpc_messages_out_total",
    "counter",
    "Messages delivered on gRPC streams",
    g.out_msgs,
  );
  e.single(
    "relayr_grpc_bytes_out_total",
    "counter",
    "Payload bytes delivered on gRPC streams",
    g.out_bytes,
  );
}
