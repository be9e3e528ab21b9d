/**
 * `joinCluster`: a broker joins the cluster (`serve --cluster-etcd`): its
 * inter-node link on a bound listener, its `ClusterNode` in etcd, and the
 * broker's `interest` hook wired to the link.
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import type { Conn, Listener, Runtime } from "../runtime/mod.ts";
import { ClusterBindings } from "./bindings.ts";
import { EtcdMeta } from "./etcd.ts";
import type { FencedDeclarations } from "./fenced_declaration.ts";
import { Forwarding } from "./forward.ts";
import { Interconnect } from "./interconnect.ts";
import { LinkAuth } from "./link_auth.ts";
import type { LinkTls } from "./link_tls.ts";
import { ClusterNode } from "./node.ts";
import { QueueDeclarations } from "./queue_decls.ts";
import { ReplicatedStore } from "./replicated_store.ts";
import { Replication } from "./replication.ts";
import { ReplStateFiles } from "./repl_state.ts";
import { durablesOf, leadership, TopicLeaders } from "./topic_leader.ts";
import { fileModeBits, nodeFileSystem } from "../runtime/mod.ts";
import { LogStore, type Store } from "../storage/mod.ts";

/**
 * The store of a node in a cluster: its real store (memory or log) with each
 * queue replicated (replicated_store.ts); the replication state files go in
 * `<data-dir>/cluster/` beside the log.
 */
export function replicatedStore(store: Store, fsync: string): ReplicatedStore {
  const dir = store instanceof LogStore ? store.dir : undefined;
  return new ReplicatedStore(store, new ReplStateFiles(nodeFileSystem, dir, fsync === "always"));
}

/** A joined cluster: the node's membership, and its inter-node link. */
export interface Cluster {
  readonly node: ClusterNode;
  /** Where connections send queue commands (their leader): the server's `routing`. */
  readonly forwarding: Forwarding;
  /** Leaves: revokes the lease (the leaderships go at once), closes the link. */
  stop(): Promise<void>;
}

/** What `joinCluster` is given. */
export interface JoinOptions {
  readonly config: Config;
  readonly broker: Broker;
  /** The bound `--cluster-listen` listener, and the host it was bound on. */
  readonly listener: Listener;
  readonly hostname: string;
  readonly runtime: Runtime;
  /** Serves a peer's `PROXY <node-id>` connection as a trusted client (`Server.adoptProxy`). */
  readonly proxy?: (conn: Conn, fromNode: string) => void;
  /** The link's TLS (link_tls.ts): `listener` is its TLS listener, and dials go through it. */
  readonly linkTls?: LinkTls;
}

/** Starts the link and the node; throws (`ClusterStartError`, or an etcd error) when it cannot join. */
export async function joinCluster(j: JoinOptions): Promise<Cluster> {
  const { config, broker, listener, hostname, runtime } = j;
  const endpoint = config["cluster-etcd"]!;
  const nodeId = config["node-id"]!;
  const log = logger("cluster");
  // A peer's message this node cannot take (a full declared topic, a failing disk): logged at
  // most once a second with how many were refused since, so a flood cannot flood the log.
  let refusedSince = 0;
  let lastRefusalLog = 0;
  const refused = (topic: string, e: unknown) => {
    refusedSince++;
    const now = Date.now();
    if (now - lastRefusalLog < 1000) return;
    log.warn(
      `${refusedSince} peer messages refused in the last second or more, the latest to ${topic}: ` +
        (e as Error).message,
    );
    refusedSince = 0;
    lastRefusalLog = now;
  };
  // With a cluster secret, every connection either way starts with the handshake (link_auth.ts).
  const secret = config.clusterSecret;
  const auth = secret && new LinkAuth({ nodeId, secret, log: (level, m) => log[level](m) });
  // With TLS on the link, the handshake runs inside it (link_tls.ts).
  const tls = j.linkTls;
  const connect = tls?.dialer((o) => runtime.connect(o)) ??
    ((hostname: string, port: number) => runtime.connect({ hostname, port }));
  const dial = auth === undefined ? connect : auth.dialer(connect);
  const store = broker.options.store;
  // Made below; replication asks it only once the node runs.
  const made: { node?: ClusterNode } = {};
  const repl = store instanceof ReplicatedStore
    ? new Replication({
      nodeId,
      replicas: config.replicas,
      store,
      dial,
      // A declared topic's durables store is replicated under the topic's leadership.
      leader: (queue) => made.node?.leader(leadership(queue)),
      // Not while the node hands the queue back: a publish then is held for its next claim.
      leads: (queue) => {
        const node = made.node;
        return node !== undefined && node.leads(leadership(queue)) &&
          !node.resigning(leadership(queue));
      },
      putSet: (queue, epoch, value) =>
        made.node?.putFenced(leadership(queue), epoch, `replicas/${queue}`, value) ??
          Promise.resolve(false),
      serving: (queue, maxId) => {
        broker.raiseIds(maxId);
        broker.tick();
        if (leadership(queue).startsWith("topic:")) topics?.serving(queue);
        else {
          // A recovered copy with messages is a queue here now, named by a command yet or not:
          // the admin API's purge and the stats must find it.
          if ((store.queues.get(queue)?.size ?? 0) > 0) broker.queueFor(queue);
          broker.queueServed(queue);
        }
      },
      deposed: (queue, why) =>
        leadership(queue).startsWith("topic:")
          ? topics?.deposed(queue, why)
          : broker.leaderLost(queue, `no longer the leader of ${queue}: ${why}`),
      used: (queue) => broker.queues.has(queue) || topics?.adopted(leadership(queue)) === true,
      claimSoon: () => made.node?.claimSoon(),
      log: (level, message) => log[level](message),
    })
    : undefined;
  // Declarations (queues' settings, declared topics' retention) go to etcd under the leader's fence.
  const fenced: FencedDeclarations = {
    leader: (dest) => made.node?.leader(dest),
    leads: (dest) => made.node?.leads(dest) ?? false,
    putFenced: (dest, epoch, key, value) =>
      made.node?.putFenced(dest, epoch, key, value) ?? Promise.resolve(false),
    log: (level, message) => log[level](message),
  };
  // Declared topics are led and replicated like queues (topic_leader.ts).
  const topics = store instanceof ReplicatedStore
    ? new TopicLeaders({ ...fenced, broker, store })
    : undefined;
  // Queue declarations are kept in etcd by each queue's leader, adopted by every node (queue_decls.ts).
  const queueDecls = new QueueDeclarations({ ...fenced, broker });
  const link = new Interconnect({
    nodeId,
    listener,
    dial,
    firstLine: auth && ((conn) => auth.accept(conn)),
    tick: () => broker.tick(),
    deliver: (topic, payload, o) => {
      try {
        const r = broker.publishFromPeer(topic, payload, 0, payload.length, o);
        if (r instanceof Promise) r.catch((e) => refused(topic, e));
      } catch (e) {
        refused(topic, e);
      }
      broker.takeBlocked(); // a peer's link does not pause for a blocked subscriber (docs/CLUSTERING.md)
    },
    log: (level, message) => log[level](message),
    proxy: j.proxy,
    repl: repl && ((conn, fromNode) => repl.accept(conn, fromNode)),
  });
  const meta = new EtcdMeta(endpoint);
  const node = made.node = new ClusterNode({
    meta,
    endpoint: meta.endpoint,
    nodeId,
    advertise: config["cluster-advertise"] ?? `${hostname}:${listener.port}`,
    leaseTtlS: config["cluster-lease-ttl"],
    // A replica holds the queues it copies too: it claims them when their leader is gone.
    // Declared topics too: a node claims one nobody leads (replicas only), as it does a queue.
    queues: () =>
      repl === undefined ? broker.queues.keys() : union(
        union(broker.queues.keys(), map(repl.held(), leadership)),
        topics?.names() ?? [],
      ),
    holds: (queue) =>
      broker.queues.has(queue) || topics?.holds(queue) === true || repl?.keeps(queue) === true,
    log: (level, message) => log[level](message),
    onMembers: (members) => {
      link.membersChanged(members);
      forwarding.membersChanged(members);
      repl?.membersChanged(members);
      bindings.membersChanged(members);
    },
    links: () => link.stats(),
    linkTotals: () => link.totals(),
    // A bound copy sent to its queue's leader is a forwarded PUB too.
    forwardedCommands: (): number => forwarding.forwarded + bindings.sent,
    auth: auth && (() => auth.stats()),
    tls: tls && (() => tls.stats()),
    replication: repl && (() => repl.stats()),
    mayClaim: repl && ((queue) => repl.mayClaim(queue)),
    onLeader: repl && ((queue, leader) => {
      repl.leaderChanged(queue, leader);
      // A declared topic's leader leads the store of its durables' positions too.
      if (queue.startsWith("topic:")) repl.leaderChanged(durablesOf(queue), leader);
    }),
    onOther: (e) => {
      if (bindings.keyChanged(e) || queueDecls.keyChanged(e)) return;
      repl?.keyChanged(e);
      topics?.keyChanged(e);
    },
    onList: (kvs) => bindings.listed(kvs),
  });
  // Cluster-wide bindings (bindings.ts): kept in etcd, applied where a topic message is published.
  const bindings = new ClusterBindings({
    meta,
    broker,
    node,
    dial,
    log: (level, message) => log[level](message),
  });
  // Routes are cached while the node's view and the declared topics it serves stay the same.
  const view = topics === undefined ? node : {
    get id() {
      return node.id;
    },
    get version() {
      return node.version + topics.version;
    },
    leads: (dest: string) => node.leads(dest),
    leaderOf: (dest: string) => node.leaderOf(dest),
    claim: (dest: string) => node.claim(dest),
    addressOf: (id: string) => node.addressOf(id),
  };
  const forwarding = new Forwarding({
    node: view,
    topics,
    serves: repl && ((queue) => repl.serves(queue)),
    dial,
    log: (level, message) => log[level](message),
  });
  broker.interest = link;
  broker.bindings = bindings;
  broker.copies = bindings;
  broker.sharedDeclarations = queueDecls;
  try {
    await node.start();
  } catch (e) {
    broker.interest = undefined;
    broker.bindings = broker.copies = undefined;
    broker.sharedDeclarations = undefined;
    topics?.close();
    await bindings.close();
    await repl?.close();
    await link.close();
    throw e;
  }
  // Once joined: a node that cannot start says only why (one line, exit 2).
  const secretFile = config["cluster-secret-file"];
  const mode = secretFile === undefined ? undefined : fileModeBits(secretFile);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    log.warn(
      `the cluster secret file ${JSON.stringify(secretFile)} is readable by others ` +
        `(mode 0${mode.toString(8)}): chmod 600 it`,
    );
  }
  if (auth === undefined && tls === undefined) {
    log.warn(
      "the cluster port is open to anyone who can reach it: no cluster secret " +
        "(--cluster-secret-file or RELAYR_CLUSTER_SECRET) and no link TLS (--cluster-tls-*; " +
        "docs/CLUSTERING.md)",
    );
  }
  const members = node.stats().members.length;
  log.info(
    `joined as ${nodeId} via etcd ${meta.endpoint} (${members} members); ` +
      `link on ${hostname}:${listener.port}`,
  );
  return {
    node,
    forwarding,
    async stop() {
      broker.interest = undefined;
      broker.bindings = broker.copies = undefined;
      broker.sharedDeclarations = undefined;
      topics?.close();
      await bindings.close();
      await repl?.close();
      await node.stop();
      await link.close();
    },
  };
}

function* union(a: Iterable<string>, b: Iterable<string>): IterableIterator<string> {
  const seen = new Set<string>();
  for (const x of a) {
    seen.add(x);
    yield x;
  }
  for (const x of b) if (!seen.has(x)) yield x;
}

function* map<T, U>(xs: Iterable<T>, f: (x: T) => U): IterableIterator<U> {
  for (const x of xs) yield f(x);
}
