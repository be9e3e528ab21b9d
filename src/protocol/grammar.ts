/**
 * Grammar of option values that both ends check the same way: the broker's
 * parser refuses them with `ERR BAD_ARGUMENT`, and the client refuses them
 * before sending, so the two must not drift apart (docs/PROTOCOL.md).
 *
 * @module
 */
import { TOKEN_BYTES_MAX } from "../config/limits.ts";

/**
 * A durable name (`SUB ... durable:<dname>`): 1 to `TOKEN_BYTES_MAX` bytes of
 * `A-Z a-z 0-9 _ - .`. Narrower than a token because the broker stores it and
 * shows it in stats.
 */
export const DURABLE_NAME: RegExp = new RegExp(`^[A-Za-z0-9_.-]{1,${TOKEN_BYTES_MAX}}$`);

/**
 * A message id from its text (`msg_id:<id>`, `start:id:<id>`, gRPC's
 * `msg_id`): 1 to 16 decimal digits within 2^53; undefined when it is not
 * one. Ids are decimal strings on every front end, numbers in the broker.
 */
export function msgIdOf(text: string): number | undefined {
  if (!/^[0-9]{1,16}$/.test(text)) return undefined;
  const id = Number(text);
  return Number.isSafeInteger(id) ? id : undefined;
}

/**
 * Largest `start:time:<epoch_ms>`: 2^43 ms is past the year 2248, so no real
 * time is refused, and `epoch_ms * 1024`, the id that millisecond starts at,
 * stays within 2^53, where ids stop being exact numbers.
 */
export const START_TIME_MS_MAX = 2 ** 43;
