/**
 * gRPC requests checked and turned into the broker's arguments, with the
 * limits and error codes the text protocol's parser applies to the same
 * fields (docs/PROTOCOL.md), so both front ends refuse the same things.
 *
 * @module
 */
import {
  ACK_TIMEOUT_MS_MAX,
  DELIVER_AT_MS_MAX,
  GRPC_REQUEST_TIMEOUT_MS,
  GRPC_REQUEST_TIMEOUT_MS_MAX,
  HEADERS_BYTES_MAX,
  NACK_DELAY_MS_MAX,
  PREFETCH_MAX,
  PUB_DELAY_MS_MAX,
  RETAIN_AGE_MS_MAX,
  RETAIN_BYTES_MAX,
  RETAIN_MESSAGES_MAX,
  TOKEN_BYTES_MAX,
  TTL_MS_MAX,
} from "../config/mod.ts";
import {
  DEST,
  type DestinationSlot,
  DURABLE_NAME,
  encodeHeaders,
  msgIdOf,
  PubFrame,
  type RetentionOptions,
  slotError,
  START_TIME_MS_MAX,
  type StartPosition,
  type SubOptions,
} from "../protocol/mod.ts";
import { compileFilter, FilterError } from "../filter/mod.ts";
import { GrpcRefusal } from "./errors.ts";
import type { PublishView } from "./publish_codec.ts";

/**
 * A checked publish: what the broker's `publishFrom` takes (the payload is
 * `buf[off, off + len)`), as the parser's `PubFrame`, so that in a cluster
 * the router forwards it as it does a TCP client's PUB.
 */
export type Publish = PubFrame;

function bad(message: string): GrpcRefusal {
  return new GrpcRefusal("BAD_ARGUMENT", message);
}

/** Checks a destination for its place (src/protocol's `DEST`, the parser's own rules). */
function destination(dest: string, slot: DestinationSlot): string {
  const why = slotError(dest, slot);
  if (why !== undefined) throw new GrpcRefusal("BAD_DESTINATION", why);
  return dest;
}

function optionalToken(key: string, v: string): string | undefined {
  if (v === "") return undefined;
  if (v.length > TOKEN_BYTES_MAX || /\s/.test(v)) {
    throw bad(`${key} must be 1 to ${TOKEN_BYTES_MAX} bytes without spaces`);
  }
  return v;
}

function intIn(key: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw bad(`${key} must be ${min} to ${max}`);
  return v;
}

/**
 * A publish as the broker's `publishFrom` arguments; throws `GrpcRefusal` on
 * bad input. The body is not copied unless headers must go before it.
 */
export function checkPublish(v: PublishView, payloadBytesMax: number): Publish {
  const dest = destination(v.destination, DEST.PUBLISH);
  const priority = intIn("priority", v.priority, 0, 9);
  const ttlMs = intIn("ttl_ms", v.ttlMs, 0, TTL_MS_MAX);
  const correlationId = optionalToken("correlation_id", v.correlationId);
  const replyTo = v.replyTo === "" ? undefined : destination(v.replyTo, DEST.REPLY_TO);
  const contentType = optionalToken("content_type", v.contentType);
  const delayMs = intIn("delay_ms", v.delayMs, 0, PUB_DELAY_MS_MAX);
  const deliverAt = intIn("deliver_at_ms", v.deliverAt, 0, DELIVER_AT_MS_MAX);
  if (delayMs !== 0 && deliverAt !== 0) {
    throw bad("a publish takes delay_ms or deliver_at_ms, not both");
  }
  const dedupId = optionalToken("dedup_id", v.dedupId);
  let { buf, off, len } = v;
  let hdrBytes = 0;
  if (v.headers !== undefined) {
    let block: Uint8Array;
    try {
      block = encodeHeaders(v.headers);
    } catch (e) {
      throw new GrpcRefusal("BAD_HEADERS", (e as Error).message);
    }
    if (block.length > HEADERS_BYTES_MAX) {
      throw new GrpcRefusal("BAD_HEADERS", `headers over ${HEADERS_BYTES_MAX} bytes`);
    }
    hdrBytes = block.length;
    const payload = new Uint8Array(block.length + len);
    payload.set(block);
    payload.set(buf.subarray(off, off + len), block.length);
    buf = payload;
    off = 0;
    len = payload.length;
  }
  if (len > payloadBytesMax) {
    throw new GrpcRefusal("PAYLOAD_TOO_LARGE", `payload over ${payloadBytesMax} bytes`);
  }
  const plain = priority === 0 && ttlMs === 0 && hdrBytes === 0 && correlationId === undefined &&
    replyTo === undefined && contentType === undefined && delayMs === 0 && deliverAt === 0 &&
    dedupId === undefined;
  return new PubFrame(
    dest,
    buf,
    off,
    len,
    plain ? undefined : {
      priority,
      ttlMs,
      correlationId,
      replyTo,
      contentType,
      hdrBytes,
      delayMs,
      deliverAt,
      dedupId,
    },
  );
}

/** A `SubscribeOpen` as proto-loader decodes it. */
export interface SubscribeOpen {
  destination: string;
  prefetch: number;
  ack: "ACK_MODE_DEFAULT" | "ACK_MODE_EXPLICIT" | "ACK_MODE_NONE";
  ack_timeout_ms: number;
  durable: string;
  start: { at?: "new" | "first" | "msg_id" | "time_ms"; msg_id?: string; time_ms?: number } | null;
  filter: string;
}

/** A SubscribeOpen as the broker's subscribe options (the sid is the front end's). */
export function toSubscribe(o: SubscribeOpen, sid: string): { dest: string; options: SubOptions } {
  const dest = destination(o.destination, DEST.SUBSCRIBE);
  const options: SubOptions = {
    sid,
    ack: o.ack === "ACK_MODE_EXPLICIT"
      ? "explicit"
      : o.ack === "ACK_MODE_NONE"
      ? "none"
      : undefined,
    prefetch: o.prefetch === 0 ? undefined : intIn("prefetch", o.prefetch, 1, PREFETCH_MAX),
    ackTimeoutMs: o.ack_timeout_ms === 0
      ? undefined
      : intIn("ack_timeout_ms", o.ack_timeout_ms, 1, ACK_TIMEOUT_MS_MAX),
  };
  if (o.durable !== "") {
    if (!DURABLE_NAME.test(o.durable)) {
      throw bad(`durable must be 1 to ${TOKEN_BYTES_MAX} bytes of A-Z a-z 0-9 _ - .`);
    }
    options.durable = o.durable;
  }
  const start = startOf(o.start);
  if (start !== undefined) options.start = start;
  if (o.filter !== "") {
    try {
      options.filter = { source: o.filter, match: compileFilter(o.filter) };
    } catch (e) {
      if (e instanceof FilterError) throw new GrpcRefusal("BAD_FILTER", e.message);
      throw e;
    }
  }
  return { dest, options };
}

function startOf(s: SubscribeOpen["start"]): StartPosition | undefined {
  switch (s?.at) {
    case undefined:
      return undefined;
    case "new":
      return { kind: "new" };
    case "first":
      return { kind: "first" };
    case "msg_id":
      return { kind: "id", id: msgId(s.msg_id ?? "") };
    case "time_ms":
      return { kind: "time", ms: intIn("start.time_ms", s.time_ms ?? 0, 0, START_TIME_MS_MAX) };
  }
}

/** A message id from its decimal string. */
export function msgId(text: string): number {
  const id = msgIdOf(text);
  if (id === undefined) {
    throw bad(`msg_id must be a decimal id, not ${JSON.stringify(text)}`);
  }
  return id;
}

/** Checks a NACK delay. */
export function nackDelay(ms: number): number {
  return intIn("delay_ms", ms, 0, NACK_DELAY_MS_MAX);
}

/** A `DeclareRequest` as proto-loader decodes it. */
export interface DeclareRequest {
  destination: string;
  retain_messages: number;
  retain_bytes: number;
  retain_age_ms: number;
}

/** A DeclareRequest as the broker's declare arguments. */
export function toDeclare(r: DeclareRequest): { dest: string; options: RetentionOptions } {
  const dest = destination(r.destination, DEST.DECLARE_TOPIC);
  const opt = (key: string, v: number, max: number) => v === 0 ? undefined : intIn(key, v, 1, max);
  const options: RetentionOptions = {
    messages: opt("retain_messages", r.retain_messages, RETAIN_MESSAGES_MAX),
    bytes: opt("retain_bytes", r.retain_bytes, RETAIN_BYTES_MAX),
    ageMs: opt("retain_age_ms", r.retain_age_ms, RETAIN_AGE_MS_MAX),
  };
  if (
    options.messages === undefined && options.bytes === undefined && options.ageMs === undefined
  ) {
    throw bad("DECLARE needs at least one of retain_messages, retain_bytes, retain_age_ms");
  }
  return { dest, options };
}

/** A Request's wait: its `timeout_ms` (0: the default), cut to the call's deadline. */
export function requestTimeout(timeoutMs: number, deadlineMs: number): number {
  const asked = timeoutMs === 0
    ? GRPC_REQUEST_TIMEOUT_MS
    : intIn("timeout_ms", timeoutMs, 1, GRPC_REQUEST_TIMEOUT_MS_MAX);
  return Math.max(0, Math.min(asked, deadlineMs));
}
