/**
 * The gRPC front end (service relayr.v1.Broker, docs/relayr.proto and
 * docs/GRPC.md): another door to the same broker, on `@grpc/grpc-js`. It
 * imports the library here and nowhere else; the one runtime specific it
 * needs (a Node `Buffer` view) lives in src/runtime/.
 *
 * @module
 */
export { GrpcFront } from "./server.ts";
export { GRPC_METHODS, type GrpcMethod, type GrpcOptions } from "./front.ts";
export type { GrpcStats } from "./stats.ts";
export type { MessageObject } from "./codec.ts";
export { brokerServiceDefinition, LOADER_OPTIONS, SERVICE_NAME } from "./proto.ts";
export { ERROR_CODE_KEY, statusOf } from "./errors.ts";
export { authenticate, authorize, credentialOf, type Principal } from "./auth.ts";
export { RELAYR_V1_DESCRIPTOR } from "./descriptor.ts";
