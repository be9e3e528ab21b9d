/**
 * Body codecs of the SDK: a value is encoded by the codec a publish names,
 * which also sets the message's `content_type`, and a delivered message is
 * decoded by the codec its `content_type` names. The broker never looks
 * inside a body; the content type is how the two ends agree.
 *
 * MessagePack is `msgpackr` (npm): the fastest maintained JavaScript
 * implementation, pure JS (its optional native string extractor is not
 * needed), and the same on Deno and Bun (bench/codec.ts measures it on both).
 *
 * @module
 */
import { Packr } from "msgpackr";
import { BadArgumentError } from "./errors.ts";

/** The codecs: JSON, MessagePack, or the bytes as they are. */
export type Codec = "json" | "msgpack" | "raw";

/** The content type each codec sets. */
export const CONTENT_TYPES: Readonly<Record<Codec, string>> = {
  json: "application/json",
  msgpack: "application/msgpack",
  raw: "application/octet-stream",
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/**
 * One packer for the client: plain MessagePack that any implementation reads
 * (no msgpackr records or structured-clone extensions), maps decoded as
 * plain objects.
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** Whether `name` is a codec. */
export function isCodec(name: unknown): name is Codec {
  return name === "json" || name === "msgpack" || name === "raw";
}

/**
 * Encodes `value` with `codec`. `raw` takes a `Uint8Array` or a string (sent
 * as UTF-8); `json` any value `JSON.stringify` takes; `msgpack` any value
 * MessagePack holds. Throws `BadArgumentError` for a value the codec cannot
 * encode.
 *
 * @example
 * ```ts
 * import { encodeBody } from "./codec.ts";
 * console.assert(new TextDecoder().decode(encodeBody({ a: 1 }, "json")) === '{"a":1}');
 * ```
 */
export function encodeBody(value: unknown, codec: Codec): Uint8Array {
  switch (codec) {
    case "raw":
      if (value instanceof Uint8Array) return value;
      if (typeof value === "string") return encoder.encode(value);
      throw new BadArgumentError("the raw codec takes a Uint8Array or a string");
    case "json": {
      const text = JSON.stringify(value);
      if (text === undefined) throw new BadArgumentError("the value has no JSON form");
      return encoder.encode(text);
    }
    case "msgpack":
      try {
        return packr.pack(value);
      } catch (err) {
        throw new BadArgumentError(`the value has no MessagePack form: ${(err as Error).message}`);
      }
    default:
      throw new BadArgumentError(
        `codec must be "json", "msgpack" or "raw", got ${JSON.stringify(codec)}`,
      );
  }
}

/** The codec a content type names (parameters such as `; charset=utf-8` ignored), or undefined. */
export function codecOf(contentType: string | undefined): Codec | undefined {
  if (contentType === undefined) return undefined;
  const base = contentType.split(";", 1)[0].trim().toLowerCase();
  if (base === "application/json" || base.endsWith("+json")) return "json";
  if (
    base === "application/msgpack" || base === "application/x-msgpack" ||
    base === "application/vnd.msgpack"
  ) return "msgpack";
  if (base === "application/octet-stream") return "raw";
  return undefined;
}

/** Decodes `body` with `codec`: a value, or for `raw` the bytes themselves. */
export function decodeBody(body: Uint8Array, codec: Codec): unknown {
  switch (codec) {
    case "json":
      return JSON.parse(decoder.decode(body));
    case "msgpack":
      return packr.unpack(body);
    case "raw":
      return body;
  }
}
