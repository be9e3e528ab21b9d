/**
 * One way to take the next inbound chunk of a `Conn`, for every reader of one
 * (the broker's connections, the SDK's wire, the cluster's first line and
 * proxy links). A leaf with no platform access: the browser client's wire
 * imports it directly (tests/seams_test.ts `OPEN_LEAVES`), since
 * runtime/mod.ts reaches `node:crypto`.
 *
 * @module
 */

/** What `readChunk` needs of a `Conn` (types.ts): its own read, where it has one. An open leaf imports nothing. */
interface ChunkSource {
  read?(free?: Uint8Array): Promise<Uint8Array | null>;
}

/** The chunk a stream read gave, or null at its end. */
function valueOf(result: ReadableStreamReadResult<Uint8Array>): Uint8Array | null {
  return result.value ?? null;
}

/**
 * The next chunk of `conn`, owned by the caller; null at the end; rejects on
 * a read error. Through the runtime's own `Conn.read` (no web-stream hop and
 * its promises per chunk) unless `reader` is given: the reader of
 * `conn.readable` for a `Conn` without `read` (a WebSocket), which the caller
 * made with `conn.read === undefined ? conn.readable.getReader() : undefined`
 * and releases or cancels itself. `free` as in `Conn.read` (ignored by a
 * stream).
 */
export function readChunk(
  conn: ChunkSource,
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  free?: Uint8Array,
): Promise<Uint8Array | null> {
  return reader === undefined ? conn.read!(free) : reader.read().then(valueOf);
}
