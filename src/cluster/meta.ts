/**
 * `ClusterMeta`: the little the cluster asks of its metadata store. etcd
 * (etcd.ts) is the one implementation; the interface keeps the cluster logic
 * readable and names exactly which guarantees of etcd it leans on.
 *
 * @module
 */

/** One key as the store holds it. */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /**
   * The store revision that created the key: it grows with every create in the
   * store, so the holder of a leader key created later has a larger one. It is
   * the leader's **epoch**.
   */
  readonly createRevision: number;
  /** The lease the key lives under ("0": none). */
  readonly lease: string;
}

/** A change seen by a watch. */
export interface WatchEvent {
  readonly type: "put" | "delete";
  readonly key: string;
  /** Undefined for a delete. */
  readonly kv?: KeyValue;
}

/** A running watch. */
export interface Watch {
  /** Stops it; resolves when its stream is closed. */
  close(): Promise<void>;
}

/** What the cluster needs from etcd. Every method rejects when the store is unreachable. */
export interface ClusterMeta {
  /** A new lease of `ttlS` seconds; returns its id. */
  grant(ttlS: number): Promise<string>;
  /** Renews a lease; returns its remaining TTL in seconds, 0 when it is gone (expired, revoked). */
  keepAlive(lease: string): Promise<number>;
  /** Ends a lease now: every key under it is deleted. */
  revoke(lease: string): Promise<void>;
  /**
   * Creates `key` under `lease` unless it exists, in one transaction. Returns
   * whether it was created, and the key as it is now (ours or the holder's).
   */
  create(key: string, value: string, lease: string): Promise<{ created: boolean; kv: KeyValue }>;
  /** Every key under `prefix`, and the store revision they were read at. */
  list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }>;
  /**
   * Whether `key` still exists with this create revision: the fence. A
   * deposed leader's epoch no longer matches, whatever it believes.
   */
  holds(key: string, createRevision: number): Promise<boolean>;
  /**
   * Puts `key` = `value` (no lease) only while `guardKey` still has the create
   * revision `guardRevision`, in one transaction; returns whether it did.
   */
  putIf(key: string, value: string, guardKey: string, guardRevision: number): Promise<boolean>;
  /** Puts `key` = `value` with no lease and no guard (cluster-wide settings such as bindings). */
  put(key: string, value: string): Promise<void>;
  /** Deletes `key` if it exists. */
  delete(key: string): Promise<void>;
  /** Deletes `key` only while it has this create revision (a leader resigning); returns whether it did. */
  deleteIf(key: string, createRevision: number): Promise<boolean>;
  /**
   * Watches every key under `prefix` from `fromRevision` on. `onEvents` gets
   * each batch in order; `onEnd` is called once if the stream ends or fails by
   * itself (the store went away), not after `close()`.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: WatchEvent[]) => void,
    onEnd: (error: unknown) => void,
  ): Promise<Watch>;
}
