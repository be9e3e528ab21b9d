/**
 * A JSON syntax error's text with the input it quotes left out: V8 and JSC
 * quote the text around the mistake (`Unexpected token 'a', ..."token":abc"...
 * is not valid JSON`), and a config file, a users file or a CONNECT line
 * holds secrets, which must reach no log line and no error text.
 *
 * @module
 */

/**
 * `message` (a `JSON.parse` error's) without the input it quotes: a quoted
 * run of the text becomes `...`, a quoted character other than JSON's own
 * punctuation becomes `'?'`; the position, when the runtime gives one, stays.
 *
 * @example
 * ```ts
 * import { jsonErrorText } from "./json_error.ts";
 * console.assert(!jsonErrorText(`Unexpected token 's', "{"a":secret}" is not valid JSON`).includes("secret"));
 * ```
 */
export function jsonErrorText(message: string): string {
  return message
    .replace(/"[\s\S]*"/, "...")
    .replace(/'([^']*)'/g, (m, c: string) => /^[,:{}[\]"]$/.test(c) ? m : "'?'");
}
