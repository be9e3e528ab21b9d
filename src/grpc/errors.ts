/**
 * Broker errors as gRPC statuses: the nearest status code, the broker's own
 * code in the trailing metadata (`relayr-error-code`), the text as details.
 *
 * @module
 */
import { Metadata, status } from "@grpc/grpc-js";
import { BrokerError } from "../broker/mod.ts";
import type { ErrorCode } from "../protocol/mod.ts";

/** Trailing metadata key that carries the broker's error code. */
export const ERROR_CODE_KEY = "relayr-error-code";

/** An error a handler returns to grpc-js: a status, details and trailers. */
export interface GrpcError {
  code: status;
  details: string;
  metadata: Metadata;
}

/** The wire's `ERR` codes, and `TIMEOUT` for a Request that got no reply in time. */
export type GrpcErrorCode = ErrorCode | "TIMEOUT";

/** The gRPC status of each broker error code (docs/GRPC.md has the table). */
export function statusOf(code: GrpcErrorCode): status {
  switch (code) {
    case "BAD_ARGUMENT":
    case "BAD_DESTINATION":
    case "BAD_HEADERS":
    case "BAD_FILTER":
    case "BAD_JSON":
    case "BAD_VERSION":
    case "BAD_FRAME":
    case "PAYLOAD_TOO_LARGE":
    case "CONTROL_LINE_TOO_LONG":
    case "UNKNOWN_COMMAND":
      return status.INVALID_ARGUMENT;
    case "UNKNOWN_SUB_ID":
    case "UNKNOWN_MSG_ID":
    case "NOT_DECLARED":
      return status.NOT_FOUND;
    case "DUPLICATE_SUB_ID":
    case "DURABLE_IN_USE":
      return status.ALREADY_EXISTS;
    case "DECLARE_CONFLICT":
      return status.FAILED_PRECONDITION;
    case "QUEUE_FULL":
    case "LIMIT":
    case "SLOW_CONSUMER":
    case "TOO_MANY_CONNECTIONS":
      return status.RESOURCE_EXHAUSTED;
    case "STORE_FAILED":
    case "SHUTTING_DOWN":
    case "NOT_LEADER":
    case "UNAVAILABLE":
    case "STALE_CONNECTION":
    case "LEADER_CHANGED":
      return status.UNAVAILABLE;
    case "ADMIN_CLOSED": // an operator ended the stream's connection: not the call's fault
      return status.ABORTED;
    case "AUTH_REQUIRED":
    case "AUTH_FAILED":
    case "AUTH_TIMEOUT":
    case "AUTH_REVOKED":
      return status.UNAUTHENTICATED;
    case "PERMISSION_DENIED":
      return status.PERMISSION_DENIED;
    case "TIMEOUT":
      return status.DEADLINE_EXCEEDED;
  }
}

/** A gRPC error for a broker code and text. */
export function grpcError(code: GrpcErrorCode, details: string): GrpcError {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, code);
  return { code: statusOf(code), details, metadata };
}

/** A refusal from the front end (bad input, auth), thrown by handlers and caught by `toGrpcError`. */
export class GrpcRefusal extends Error {
  readonly code: GrpcErrorCode;
  constructor(code: GrpcErrorCode, message: string) {
    super(message);
    this.name = "GrpcRefusal";
    this.code = code;
  }
}

/**
 * Any thrown error as a gRPC error. A `BrokerError` or `GrpcRefusal` keeps
 * its code; anything else is a bug: INTERNAL, without the stack (logged by
 * the caller).
 */
export function toGrpcError(e: unknown): GrpcError {
  if (e instanceof BrokerError || e instanceof GrpcRefusal) return grpcError(e.code, e.message);
  const metadata = new Metadata();
  return { code: status.INTERNAL, details: "internal error", metadata };
}

/** The broker code of `e`, if it has one. */
export function codeOf(e: unknown): GrpcErrorCode | undefined {
  return e instanceof BrokerError || e instanceof GrpcRefusal ? e.code : undefined;
}
