/**
 * The one error of the selector language.
 *
 * @module
 */

/** A selector that does not parse, or is over a limit; `at` is the 0-based character offset. */
export class FilterError extends SyntaxError {
  /** 0-based offset in the selector of the character where it went wrong. */
  readonly at: number;
  constructor(message: string, at: number) {
    super(`at ${at}: ${message}`);
    this.name = "FilterError";
    this.at = at;
  }
}
