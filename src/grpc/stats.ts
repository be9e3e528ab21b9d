/**
 * The gRPC listener's figures, for /api/stats (`grpc`) and /metrics
 * (`relayr_grpc_*`).
 *
 * @module
 */

/** What `GrpcFront.stats()` returns. */
export interface GrpcStats {
  /** The bound port. */
  port: number;
  /** Open Subscribe streams (each a broker client with one subscription). */
  subscribe_streams: number;
  /** Open PublishStream streams. */
  publish_streams: number;
  /** Requests waiting for their reply. */
  requests_waiting: number;
  /** Calls started, by method. */
  calls: Record<string, number>;
  /** Failed calls and refused stream publishes, by broker error code. */
  errors: Record<string, number>;
  /** Ended Subscribe and PublishStream streams, by close reason. */
  closed_by_reason: Record<string, number>;
  /** Messages published through gRPC, and their payload bytes. */
  in_msgs: number;
  in_bytes: number;
  /** Messages delivered on Subscribe streams, and their payload bytes. */
  out_msgs: number;
  out_bytes: number;
}
