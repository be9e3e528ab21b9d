/**
 * Destination names: `queue:<name>` / `topic:<name>`, dot-separated tokens,
 * with `*` and `>` wildcards allowed only in topic subscriptions.
 *
 * @module
 */
import { DESTINATION_BYTES_MAX } from "../config/limits.ts";

/** Why a destination is not valid, or undefined when it is. */
export function destinationError(dest: string, allowWildcards: boolean): string | undefined {
  if (dest.length > DESTINATION_BYTES_MAX) {
    return `destination longer than ${DESTINATION_BYTES_MAX} bytes`;
  }
  let start: number;
  const isTopic = dest.startsWith("topic:");
  if (isTopic) start = 6;
  else if (dest.startsWith("queue:")) start = 6;
  else return `destination ${JSON.stringify(dest)} must start with "queue:" or "topic:"`;
  if (start === dest.length) return "destination has an empty name";
  const wild = allowWildcards && isTopic;
  let tokenStart = start;
  for (let i = start; i <= dest.length; i++) {
    const c = i === dest.length ? 0x2e : dest.charCodeAt(i);
    if (c === 0x2e) {
      const len = i - tokenStart;
      if (len === 0) return `destination ${JSON.stringify(dest)} has an empty token`;
      const first = dest.charCodeAt(tokenStart);
      if (len === 1 && (first === 0x2a || first === 0x3e)) {
        if (!wild) return `wildcards are only allowed in topic subscriptions`;
        if (first === 0x3e && i !== dest.length) return `">" must be the last token`;
      }
      tokenStart = i + 1;
      continue;
    }
    const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
      c === 0x5f || c === 0x2d;
    if (!ok) {
      const isWildToken = (c === 0x2a || c === 0x3e) && i === tokenStart &&
        (i + 1 === dest.length || dest.charCodeAt(i + 1) === 0x2e);
      if (!isWildToken) {
        return `destination ${JSON.stringify(dest)} has a character outside A-Z a-z 0-9 _ -`;
      }
    }
  }
  return undefined;
}

/** Whether a valid destination has wildcard tokens. */
export function hasWildcard(dest: string): boolean {
  for (let i = 6; i < dest.length; i++) {
    const c = dest.charCodeAt(i);
    if ((c === 0x2a || c === 0x3e) && dest.charCodeAt(i - 1) === (i === 6 ? 0x3a : 0x2e)) {
      return true;
    }
  }
  return false;
}

/** Whether a topic subscription pattern matches a concrete topic (both with the `topic:` prefix). */
export function matches(pattern: string, topic: string): boolean {
  const p = pattern.slice(6).split(".");
  const t = topic.slice(6).split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== "*" && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}
