/**
 * The frames a client sends, as the parser hands them to the server.
 *
 * @module
 */
import type { Filter } from "../filter/mod.ts";
import type { ErrorCode } from "./errors.ts";

/** `CONNECT` options after validation. */
export interface ConnectOptions {
  version: string;
  clientId: string | undefined;
  name: string | undefined;
  verbose: boolean;
  /** The credential fields (authentication); absent when the CONNECT has none. */
  auth?: ConnectAuth;
}

/** The credential fields of a `CONNECT`, each a string when present. */
export interface ConnectAuth {
  auth_token?: string;
  user?: string;
  pass?: string;
  public_key?: string;
  sig?: string;
}

/** Message options of a `PUB`; absent when the line had none (the common, fast case). */
export interface PubOptions {
  priority: number;
  ttlMs: number;
  correlationId: string | undefined;
  replyTo: string | undefined;
  contentType: string | undefined;
  hdrBytes: number;
  /** `delay:<ms>`: invisible for this long after it is accepted (0: none). */
  delayMs: number;
  /** `deliver_at:<unix ms>`: invisible until then (0: none); never given with `delayMs`. */
  deliverAt: number;
  /** `dedup_id:<id>`: a second publish of it within the destination's window is not stored again. */
  dedupId: string | undefined;
}

/** PUB options all at their defaults, a new object each call (the parser fills one per PUB that has options). */
export function defaultPubOptions(): PubOptions {
  return {
    priority: 0,
    ttlMs: 0,
    correlationId: undefined,
    replyTo: undefined,
    contentType: undefined,
    hdrBytes: 0,
    delayMs: 0,
    deliverAt: 0,
    dedupId: undefined,
  };
}

/** `SUB` options; undefined fields take the server's defaults. */
export interface SubOptions {
  sid: string | undefined;
  ack: "explicit" | "none" | undefined;
  prefetch: number | undefined;
  ackTimeoutMs: number | undefined;
  /** Name of a durable subscription (declared topics only); present only when given. */
  durable?: string;
  /** Where a replay or a new durable starts (declared topics only); present only when given. */
  start?: StartPosition;
  /** `filter:"<selector>"`: only matching messages; present only when given. */
  filter?: FilterOption;
  /**
   * `durable_user:<percent-encoded user>`: the users-file user a durable is
   * kept under. Sent by a cluster node on its trusted proxy connection only
   * (docs/CLUSTERING.md); a client connection sending it is refused.
   */
  durableUser?: string;
}

/** A `filter` option: the selector as given, and the predicate compiled from it once. */
export interface FilterOption {
  source: string;
  match: Filter;
}

/** `start:` of a SUB: the next message published, the oldest retained, an id or a time. */
export type StartPosition =
  | { kind: "new" }
  | { kind: "first" }
  | { kind: "id"; id: number }
  | { kind: "time"; ms: number };

/** Retention limits of a `DECLARE`; undefined fields take the server's defaults. */
export interface RetentionOptions {
  messages: number | undefined;
  bytes: number | undefined;
  ageMs: number | undefined;
}

/** Overflow policy of a declared queue (`overflow:reject|drop_oldest`). */
export type QueueOverflowOption = "reject" | "drop_oldest";

/**
 * Settings of a `DECLARE queue:<name>`; undefined fields take the server's
 * defaults. `dlq` is a queue name, or `null` for `dlq:none` (dead letters are
 * dropped).
 */
export interface QueueDeclareOptions {
  maxMessages: number | undefined;
  maxBytes: number | undefined;
  overflow: QueueOverflowOption | undefined;
  ttlMs: number | undefined;
  maxDeliveries: number | undefined;
  dlq: string | null | undefined;
  ackTimeoutMs: number | undefined;
  dedupWindowMs: number | undefined;
}

/** Queue settings all left to the server, a new object each call. */
export function defaultQueueDeclareOptions(): QueueDeclareOptions {
  return {
    maxMessages: undefined,
    maxBytes: undefined,
    overflow: undefined,
    ttlMs: undefined,
    maxDeliveries: undefined,
    dlq: undefined,
    ackTimeoutMs: undefined,
    dedupWindowMs: undefined,
  };
}

/** `CONNECT <json>`. */
export interface ConnectFrame {
  op: "CONNECT";
  options: ConnectOptions;
}
/**
 * `PUB`. The payload is `buf[off, off + len)`: the read chunk itself when it
 * arrived whole, so neither a copy nor a view is made per message (a typed
 * array view costs about as much as parsing the line); `payload` makes one on
 * demand.
 */
export class PubFrame {
  readonly op = "PUB" as const;
  constructor(
    readonly dest: string,
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
    readonly options: PubOptions | undefined,
  ) {}

  /** The payload as a view (allocates). */
  get payload(): Uint8Array {
    return this.buf.subarray(this.off, this.off + this.len);
  }
}
/**
 * A run of repeated `PUB <dest> <size>` frames without options, one after the
 * other in one read chunk (a parser with `runs` on): payload `k` is
 * `buf[offs[2k], offs[2k] + offs[2k + 1])` for `k` in `[from, to)`. `offs` is
 * the parser's scratch, valid until its next `push`. A bulk publisher's
 * chunk is then one frame, not hundreds: no object, no dispatch and no
 * permission check per message where the destination is the same.
 */
export class PubRun {
  readonly op = "PUBS" as const;
  constructor(
    readonly dest: string,
    readonly buf: Uint8Array,
    readonly offs: Int32Array,
    readonly from: number,
    readonly to: number,
    /** Payload bytes of the run. */
    readonly bytes: number,
    /** Its largest payload. */
    readonly lenMax: number,
  ) {}

  /** Messages in the run. */
  get count(): number {
    return this.to - this.from;
  }

  /** The run as single `PUB` frames (allocates: for the paths that take one message at a time). */
  frames(): PubFrame[] {
    const out: PubFrame[] = [];
    const o = this.offs;
    for (let k = this.from; k < this.to; k++) {
      out.push(new PubFrame(this.dest, this.buf, o[2 * k], o[2 * k + 1], undefined));
    }
    return out;
  }
}
/** `SUB`. */
export interface SubFrame {
  op: "SUB";
  dest: string;
  options: SubOptions;
}
/** `DECLARE topic:<name>` with retention limits, or `DECLARE queue:<name>` with queue settings (`queue`). */
export interface DeclareFrame {
  op: "DECLARE";
  dest: string;
  /** A topic's retention (all undefined for a queue). */
  options: RetentionOptions;
  /** A queue's settings; present exactly when `dest` is a queue. */
  queue?: QueueDeclareOptions;
}
/** `BIND <topic pattern> queue:<name> [filter:"..."]`: topic publishes are also enqueued there. */
export interface BindFrame {
  op: "BIND";
  pattern: string;
  queue: string;
  /** Present only when given. */
  filter?: FilterOption;
}
/** `UNBIND <topic pattern> queue:<name>`. */
export interface UnbindFrame {
  op: "UNBIND";
  pattern: string;
  queue: string;
}
/** `UNSUB`. */
export interface UnsubFrame {
  op: "UNSUB";
  sid: string;
  /** `forget:true`: also delete the subscription's durable; present only when given. */
  forget?: true;
}
/** `ACK` of one or more message ids, or (`upto`, `ids` empty) cumulative for one subscription. */
export interface AckFrame {
  op: "ACK";
  ids: number[];
  /**
   * `ACK sub_id:<sid> upto:<id>`: every delivery of subscription `sid` in
   * flight on the connection, oldest first, up to and including message `id`'s.
   */
  upto?: { sid: string; id: number };
}
/** `NACK` with an optional delay (0 = requeue now). */
export interface NackFrame {
  op: "NACK";
  id: number;
  delayMs: number;
}
/** Frames without arguments. */
export interface SimpleFrame {
  op: "PING" | "PONG" | "INFO";
}
/** Bad input; `fatal` means the parser stopped and the connection must close. */
export interface ErrorFrame {
  op: "ERR";
  code: ErrorCode;
  message: string;
  fatal: boolean;
}

/** Anything the parser emits. */
export type Frame =
  | ConnectFrame
  | PubFrame
  | PubRun
  | SubFrame
  | DeclareFrame
  | BindFrame
  | UnbindFrame
  | UnsubFrame
  | AckFrame
  | NackFrame
  | SimpleFrame
  | ErrorFrame;
