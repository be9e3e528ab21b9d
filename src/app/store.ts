/**
 * The store a broker starts on: the log store in `--data-dir`, or memory;
 * and the start-up line saying what a restart recovered.
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import { type Config, ConfigError } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { type Clock, nodeFileSystem } from "../runtime/mod.ts";
import { type FsyncPolicy, LogStore, MemoryStore, type Store } from "../storage/mod.ts";

/**
 * The log store in `--data-dir` (recovering what is there), or the memory
 * store with `--memory` or without a data dir (`serve` defaults it to ./data;
 * in-process brokers, as in tests, stay in memory unless given one).
 */
export function openStore(config: Config, clock: Clock): Store {
  const dir = config["data-dir"];
  if (config.memory || dir === undefined) return new MemoryStore();
  const log = logger("store");
  let store: LogStore;
  try {
    store = LogStore.open({
      dir,
      fs: nodeFileSystem,
      clock,
      fsync: config.fsync as FsyncPolicy,
      fsyncIntervalMs: config["fsync-interval"],
      log: (level, message, props) => log[level === "warn" ? "warn" : level](message, props ?? {}),
    });
  } catch (e) {
    throw new ConfigError(`cannot open --data-dir ${JSON.stringify(dir)}: ${(e as Error).message}`);
  }
  return store;
}

/**
 * What a restart found, as the broker sees it: messages in queues, and the
 * retained messages of declared topics, counted apart (the store also holds
 * topic logs and the declarations record, which are not queues).
 */
export function logRecovery(store: LogStore, broker: Broker, config: Config): void {
  const all = { offset: 0, limit: Number.MAX_SAFE_INTEGER };
  let queued = 0;
  let queues = 0;
  for (const q of broker.queueStats(all).list) {
    if (q.size === 0) continue;
    queued += q.size;
    queues++;
  }
  let retained = 0;
  let topics = 0;
  for (const t of broker.topicStats(all).list) {
    if (!t.declared) continue;
    retained += t.retained;
    topics++;
  }
  const r = store.recovery;
  const b = broker.stats();
  logger("store").info(
    `durable store in ${store.dir} (fsync ${config.fsync}): recovered ${queued} messages in ` +
      `${queues} queues and ${retained} retained messages in ${topics} declared topics, ` +
      `from ${r.records} records in ${r.ms} ms; ${b.scheduled_msgs} scheduled messages ` +
      `(queues and topics), ${b.declared_queues} declared queues`,
  );
}
