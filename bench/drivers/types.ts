/**
 * What every raw-protocol driver provides. A driver only encodes frames and
 * parses bytes; sockets, clocks and counting live in `../roles.ts`, so one
 * publisher and one subscriber loop serve Relayr, NATS and Redis alike.
 *
 * @module
 */

/** The systems the bench knows how to drive. */
export type Protocol = "relayr" | "nats" | "nats-js" | "redis";

/** Where a message goes: a fan-out topic (pub/sub) or a work queue. */
export type Kind = "topic" | "queue";

/** How a parser treats delivered messages. */
export const Mode = {
  /** Only report messages (subscribers, publishers reading replies, requesters). */
  plain: 0,
  /** Settle each message: Relayr ACKs it, Redis pipelines one more BRPOP. */
  consume: 1,
  /** Answer each message to where it asks (the request/reply responder). */
  respond: 2,
  /** Like plain, but also extracts the correlation id (the requester). */
  request: 3,
} as const;
/** One of {@linkcode Mode}. */
export type Mode = typeof Mode[keyof typeof Mode];

/** What a parser reports back; `msg` is the hot path. */
export interface Events {
  /** A delivered message; the payload is `buf[start, start + size)`, valid only during the call. */
  msg(buf: Uint8Array, start: number, size: number, correlation: number): void;
  /** The answer to a PING we sent. */
  pong(): void;
  /** An error line from the server (`ERR`, `-ERR`, `-`), or bytes the parser could not read. */
  error(text: string): void;
}

/** An incremental parser: bytes in, events and answers out. */
export interface Parser {
  /**
   * Consumes the complete frames in `buf[start, end)` and returns the offset
   * of the first byte it did not consume (the start of a partial frame).
   */
  feed(buf: Uint8Array, start: number, end: number): number;
  /** Bytes the parse asks us to send (PONG, ACK, BRPOP, replies), or null. A fresh copy. */
  takeOutput(): Uint8Array | null;
  /** Acknowledgements seen: Relayr `OK`, NATS `+OK`, Redis integer replies, JetStream pub acks. */
  readonly replies: number;
}

/** The constant parts of a frame that carries a payload: `head`, payload, `tail`. */
export interface FrameShape {
  head: Uint8Array;
  tail: Uint8Array;
}

/** The wire protocol of one system. `name` is a bench-local token such as `r12`. */
export interface Driver {
  readonly protocol: Protocol;
  /**
   * True when consuming blocks the connection (Redis BRPOP): the readiness
   * PING must go before the consume frames, or its answer waits behind them.
   */
  readonly consumeBlocks: boolean;
  /** Sent first on every connection (CONNECT, or nothing); `auth`: credentials for it. */
  hello(auth?: Record<string, string>): string;
  /** A PING the server answers after everything sent before it. */
  ping(): string;
  /** Sets up a publisher's connection before it publishes (JetStream: the publish-ack inbox). */
  publisher?(name: string): string;
  /**
   * True when the server acknowledges every publish (JetStream publish acks,
   * counted in the parser's `replies`): the publisher waits for all of them.
   */
  readonly publishAcks?: boolean;
  /** Frame of one publish to a topic or a queue; `options` are extra PUB options (Relayr only). */
  publishFrame(kind: Kind, name: string, size: number, options?: string): FrameShape;
  /** Frame of one delivery as the server would send it (the sink's source mode). */
  deliveryFrame(kind: Kind, name: string, size: number): FrameShape;
  /** Subscribes subscriber `index` to the topic. */
  subscribe(name: string, index: number): string;
  /** Starts consumer `index` on the queue, with at most `prefetch` messages in flight. */
  consume(name: string, index: number, prefetch: number): string;
  /** Sets up the requester's reply inbox (may be empty). */
  inbox(name: string): string;
  /** Starts the responder. */
  respond(name: string): string;
  /** One request carrying `correlation` and `payload`. */
  request(name: string, correlation: number, payload: Uint8Array): Uint8Array;
  /**
   * Relayr routing runs (`route` in tasks.ts). The publish frame of a
   * `filter` run, whose byte at `variantAt` the publisher cycles through
   * `variants` (the subscribers' selectors tell them apart).
   */
  filterPublishFrame?(name: string, size: number): FrameShape & {
    variantAt: number;
    variants: number[];
  };
  /** Subscriber `index` of a `filter` run (takes the `index`th variant). */
  subscribeFiltered?(name: string, index: number): string;
  /** Binds the topic to consumer `index`'s own queue and consumes it (`bind` runs). */
  consumeBound?(name: string, index: number, prefetch: number): string;
  /**
   * A parser for bytes from the server; `index` is the consumer's (queue
   * consumers). `ackUpto` (Relayr, `--ack upto`): a consumer settles each read
   * with one cumulative `ACK sub_id:<sid> upto:<id>` instead of ACK lines of
   * ids; the other drivers have nothing to settle and ignore it.
   */
  parser(events: Events, mode: Mode, name: string, index?: number, ackUpto?: boolean): Parser;
}
