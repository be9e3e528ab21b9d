/**
 * The checks every value passes before it goes on a control line: a space
 * or line end smuggled into a destination or token would otherwise let a
 * caller inject frames. Validation errors are the same typed errors the
 * broker would answer with, raised before anything is sent.
 *
 * @module
 */
import { TOKEN_BYTES_MAX } from "../config/limits.ts";
import { compileFilter, FilterError } from "../filter/mod.ts";
import { type DestinationSlot, msgIdOf, slotError, START_TIME_MS_MAX } from "../protocol/mod.ts";
import { BadArgumentError, BadDestinationError, BadFilterError } from "./errors.ts";
import type { StartPosition } from "./options.ts";

const encoder = new TextEncoder();
/** Destinations already validated for publishing; a publisher usually sends to a few, so this saves a scan per message. */
const validPubDests = new Set<string>();
const VALID_DESTS_CACHED_MAX = 1024;

/**
 * Throws `BadDestinationError` unless `dest` may stand in `slot` (one of
 * src/protocol's `DEST`: the broker's parser checks the same rule).
 */
export function checkDestination(dest: string, slot: DestinationSlot): void {
  if (typeof dest !== "string") throw new BadDestinationError("destination must be a string");
  // Only a place that takes any concrete destination may use the cache.
  const cached = slot.kind === undefined && slot.pattern !== true;
  if (cached && validPubDests.has(dest)) return;
  const why = slotError(dest, slot);
  if (why !== undefined) throw new BadDestinationError(why);
  if (cached && validPubDests.size < VALID_DESTS_CACHED_MAX) validPubDests.add(dest);
}

/** Throws `BadArgumentError` unless `value` is a token: 1-256 bytes, no spaces or control characters. */
export function checkToken(name: string, value: string): void {
  if (typeof value !== "string" || value.length === 0) {
    throw new BadArgumentError(`${name} must be a non-empty string`);
  }
  let ascii = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) {
      throw new BadArgumentError(
        `${name} ${JSON.stringify(value)} holds a space or control character`,
      );
    }
    if (c > 0x7f) ascii = false;
  }
  const bytes = ascii ? value.length : encoder.encode(value).length;
  if (bytes > TOKEN_BYTES_MAX) {
    throw new BadArgumentError(`${name} is longer than ${TOKEN_BYTES_MAX} bytes`);
  }
}

/** Throws `BadArgumentError` unless `value` is an integer in `[min, max]`. */
export function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BadArgumentError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/**
 * The ` <wire>:<value>` of an integer option, checked by `checkInt` under
 * its SDK `name`; "" when it is not given.
 */
export function intOption(
  name: string,
  wire: string,
  value: number | undefined,
  min: number,
  max: number,
): string {
  if (value === undefined) return "";
  checkInt(name, value, min, max);
  return ` ${wire}:${value}`;
}

/** The `start:` value of a position; validates it. */
export function startValue(start: StartPosition): string {
  if (start === "new" || start === "first") return start;
  if (typeof start === "object" && start !== null) {
    if ("id" in start) {
      const id = start.id;
      if (typeof id !== "string" || msgIdOf(id) === undefined) {
        throw new BadArgumentError(
          `start.id must be a message id (a decimal string), got ${JSON.stringify(id)}`,
        );
      }
      return `id:${id}`;
    }
    if ("time" in start) {
      const t = start.time;
      const ms = t instanceof Date ? t.getTime() : t;
      checkInt("start.time", ms, 0, START_TIME_MS_MAX);
      return `time:${ms}`;
    }
  }
  throw new BadArgumentError(
    `start must be "new", "first", { id } or { time }, got ${JSON.stringify(start)}`,
  );
}

/**
 * Checks a selector as the broker will (`BadFilterError` saying where) and
 * quotes it for the wire: `"` and `\` escaped with a `\`.
 *
 * @example
 * ```ts
 * import { filterValue } from "./checks.ts";
 * console.assert(filterValue(`a = 'x"y'`) === `"a = 'x\\"y'"`);
 * ```
 */
export function filterValue(selector: string): string {
  if (typeof selector !== "string") throw new BadArgumentError("filter must be a string");
  if (/[\r\n]/.test(selector)) throw new BadFilterError("a filter must not hold a line end");
  try {
    compileFilter(selector);
  } catch (e) {
    if (e instanceof FilterError) throw new BadFilterError(e.message);
    throw e;
  }
  return `"${selector.replace(/[\\"]/g, (c) => "\\" + c)}"`;
}
