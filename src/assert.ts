/**
 * The one check for broken invariants. An operating error (bad input, a full
 * queue, a failed write) is a typed error the caller handles; a failed
 * `assert` is a bug in Relayr and throws loudly (TigerBeetle's split). The
 * connection that hit it closes with `INTERNAL_ERROR`; the broker goes on.
 *
 * @module
 */

/** Thrown by `assert`: a bug, never an answer to bad input. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

/** Throws `AssertionError` with `message` (a function, so the text is built only on failure) when `ok` is false. */
export function assert(ok: unknown, message: string | (() => string)): asserts ok {
  if (!ok) throw new AssertionError(typeof message === "string" ? message : message());
}
