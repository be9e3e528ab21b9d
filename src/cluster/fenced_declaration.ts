/**
 * A declaration (a queue's settings, a declared topic's retention) kept in
 * etcd by the destination's leader under the fence of its leader key, so a
 * deposed leader's write is refused: the one write queue_decls.ts and
 * topic_leader.ts both make before their OK.
 *
 * @module
 */
import { BrokerError } from "../broker/mod.ts";
import type { LeaderInfo } from "./node.ts";

/** What a fenced declaration needs from the node around it. */
export interface FencedDeclarations {
  /** The destination's leader as etcd has it. */
  readonly leader: (dest: string) => LeaderInfo | undefined;
  /** Whether this node leads `dest` now (its key, its lease alive). */
  readonly leads: (dest: string) => boolean;
  /** Writes `relayr/<key>` while `epoch` still leads `dest`; false when it does not. */
  readonly putFenced: (dest: string, epoch: number, key: string, value: string) => Promise<boolean>;
  readonly log: (level: "info" | "warn", message: string) => void;
}

/**
 * Writes `value` at `relayr/<key>` for `dest` while this node leads it;
 * `UNAVAILABLE` (retry: the outcome is unknown) when it no longer does or
 * etcd could not be written.
 */
export async function putDeclaration(
  o: FencedDeclarations,
  dest: string,
  key: string,
  value: string,
): Promise<void> {
  const l = o.leader(dest);
  if (l === undefined || !o.leads(dest)) {
    throw new BrokerError("UNAVAILABLE", `${dest} changed leader; retry`);
  }
  let ok: boolean;
  try {
    ok = await o.putFenced(dest, l.epoch, key, value);
  } catch (e) {
    throw new BrokerError("UNAVAILABLE", `${dest} not declared: ${(e as Error).message}`);
  }
  if (!ok) throw new BrokerError("UNAVAILABLE", `${dest} changed leader; retry`);
}
