/**
 * The relayr.v1 service definition, from the descriptor compiled into the
 * broker (so the Bun-built binary reads no .proto from disk). The server's
 * definition is proto-loader's with one change: Subscribe responses are
 * written already encoded (codec.ts), so their serializer only wraps the
 * bytes in the `Buffer` grpc-js copies from.
 *
 * @module
 */
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { fromJSON, type Options } from "@grpc/proto-loader";
import { bufferView } from "../runtime/mod.ts";
import { RELAYR_V1_DESCRIPTOR } from "./descriptor.ts";
import { decodePublishBatch } from "./publish_codec.ts";

/** The service's full name. */
export const SERVICE_NAME = "relayr.v1.Broker";

/**
 * How messages map to JavaScript objects: field names as in the proto (what
 * clients in other languages see), 64-bit numbers as plain numbers (they
 * are ms and counts, far below 2^53), defaults filled in, `oneof` names set.
 */
export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let cached: ServiceDefinition | undefined;

/** The service as proto-loader builds it (plain objects both ways): for clients, tests and bench. */
export function brokerServiceDefinition(): ServiceDefinition {
  if (cached !== undefined) return cached;
  const pkg = fromJSON(RELAYR_V1_DESCRIPTOR, LOADER_OPTIONS);
  return cached = pkg[SERVICE_NAME] as ServiceDefinition;
}

/**
 * The server's definition: Subscribe responses go out as bytes encoded by
 * codec.ts, and PublishStream batches come in as `PublishView`s
 * (publish_codec.ts), both without an object per message.
 */
export function serverServiceDefinition(): ServiceDefinition {
  const base = brokerServiceDefinition();
  const subscribe = base.Subscribe as MethodDefinition<unknown, unknown>;
  const publishStream = base.PublishStream as MethodDefinition<unknown, unknown>;
  return {
    ...base,
    PublishStream: {
      ...publishStream,
      requestDeserialize: (bytes: Uint8Array) => decodePublishBatch(bytes),
    } as MethodDefinition<unknown, unknown>,
    Subscribe: {
      ...subscribe,
      responseSerialize: (bytes: Uint8Array) => bufferView(bytes),
    } as MethodDefinition<unknown, unknown>,
  };
}
