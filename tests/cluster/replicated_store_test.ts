/**
 * The store conformance suite (tests/storage/conformance.ts) against
 * `ReplicatedStore` on one node with `--replicas 1`, over the memory store
 * and over the log store under each fsync policy: wrapping a store for
 * replication changes none of its behaviour. Each queue is led by this node
 * at epoch 1 from its opening (what a recovery of a one-node set ends in;
 * the recovery itself runs in replication_test.ts with etcd), so every
 * push and removal goes through replication's commit batches.
 */
import { Replication } from "../../src/cluster/replication.ts";
import { ReplicatedStore } from "../../src/cluster/replicated_store.ts";
import { ReplStateFiles } from "../../src/cluster/repl_state.ts";
import { nodeFileSystem } from "../../src/runtime/mod.ts";
import { type FsyncPolicy, LogStore, MemoryStore, type Store } from "../../src/storage/mod.ts";
import { storeConformance } from "../storage/conformance.ts";

/** A one-node replicated store over `inner`; `close()` stops replication too. */
function replicated(inner: Store, dir: string | undefined, fsync: FsyncPolicy): Store {
  const store = new ReplicatedStore(
    inner,
    new ReplStateFiles(nodeFileSystem, dir, fsync === "always"),
  );
  const repl = new Replication({
    nodeId: "n1",
    replicas: 1,
    store,
    dial: () => Promise.reject(new Error("one node: nobody to dial")),
    leader: () => ({ node: "n1", epoch: 1 }),
    leads: () => true,
    putSet: () => Promise.resolve(true),
    serving: () => {},
    used: () => true,
    claimSoon: () => {},
    log: () => {},
  });
  const open = store.openQueue.bind(store);
  store.openQueue = (name) => {
    const q = open(name);
    const r = store.queues.get(name);
    if (r !== undefined && r.role !== "leader") {
      r.role = "leader";
      r.epoch = 1;
      r.set = ["n1"];
    }
    return q;
  };
  const close = store.close.bind(store);
  store.close = async () => {
    await repl.close();
    await close();
  };
  return store;
}

storeConformance({
  name: "replicated memory, replicas 1",
  durable: false,
  create() {
    return Promise.resolve({
      open: () => replicated(new MemoryStore(), undefined, "never"),
      cleanup: () => Promise.resolve(),
    });
  },
});

for (const fsync of ["always", "interval", "never"] as FsyncPolicy[]) {
  storeConformance({
    name: `replicated log, fsync ${fsync}, replicas 1`,
    durable: true,
    async create() {
      const dir = await Deno.makeTempDir({ prefix: "relayr-repl-conformance-" });
      return {
        open: () =>
          replicated(
            LogStore.open({ dir, fs: nodeFileSystem, fsync, fsyncIntervalMs: 5 }),
            dir,
            fsync,
          ),
        cleanup: () => Deno.remove(dir, { recursive: true }),
      };
    },
  });
}
