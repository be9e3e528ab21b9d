/**
 * The selector language of `filter:"<expr>"` (docs/PROTOCOL.md, "Filters"):
 * pure, no I/O. `compileFilter` parses a selector once into a predicate over
 * a message's fields and headers.
 *
 * @module
 */
export { compileFilter, type Filter, type Selectable } from "./compile.ts";
export { FilterError } from "./error.ts";
