/**
 * The wire protocol: a pure parser of client frames, its stream wrapper, and
 * the encoders of server frames. docs/PROTOCOL.md is the contract.
 *
 * @module
 */
export { Parser, type ParserOptions } from "./parser.ts";
export type * from "./frames.ts";
export { defaultPubOptions, defaultQueueDeclareOptions, PubFrame, PubRun } from "./frames.ts";
export { ERROR_CODES, type ErrorCode, snippet } from "./errors.ts";
export {
  ascii,
  CRLF,
  errFrame,
  type MsgFields,
  msgHead,
  msgTail,
  OK,
  PING,
  PLAIN_TAIL_BYTES_MAX,
  PONG,
  type TailFields,
  writePlainTail,
} from "./encoder.ts";
export { decodeHeaders, encodeHeaders, headerBlockError, headerMap } from "./headers.ts";
export { MsgLine } from "./msg_line.ts";
export {
  DEST,
  destinationError,
  type DestinationSlot,
  hasWildcard,
  matches,
  slotError,
} from "./names.ts";
export { DURABLE_NAME, msgIdOf, START_TIME_MS_MAX } from "./grammar.ts";
export { LastString } from "./last_string.ts";
export { grow } from "./bytes.ts";
export { type CopyRange, MsgRun } from "./msg_run.ts";
export {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  ENVELOPE_MAGIC,
  ENVELOPE_VERSION,
} from "./envelope.ts";
export {
  decimal,
  decimalId,
  digits16,
  digitsEnd,
  ID_DIGITS_MAX,
  runs16,
  words16,
} from "./decimal.ts";
