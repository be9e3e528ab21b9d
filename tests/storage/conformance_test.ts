/**
 * Runs the store conformance suite against the memory store and against the
 * log store (real files in a temp dir) under each fsync policy.
 */
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { type FsyncPolicy, LogStore, MemoryStore } from "../../src/storage/mod.ts";
import { storeConformance } from "./conformance.ts";

storeConformance({
  name: "memory",
  durable: false,
  create() {
    return Promise.resolve({ open: () => new MemoryStore(), cleanup: () => Promise.resolve() });
  },
});

for (const fsync of ["always", "interval", "never"] as FsyncPolicy[]) {
  storeConformance({
    name: `log, fsync ${fsync}`,
    durable: true,
    async create() {
      const dir = await Deno.makeTempDir({ prefix: "relayr-conformance-" });
      return {
        open: () => LogStore.open({ dir, fs: nodeFileSystem, fsync, fsyncIntervalMs: 5 }),
        cleanup: () => Deno.remove(dir, { recursive: true }),
      };
    },
  });
}
