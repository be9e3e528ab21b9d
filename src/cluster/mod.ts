/**
 * Clustering on etcd, first slice: membership and per-queue leadership with
 * epochs (docs/CLUSTERING.md). `ClusterMeta` is the seam to the metadata
 * store; `EtcdMeta` speaks etcd's v3 JSON gateway; `ClusterNode` is one
 * broker's membership, leaderships and view of the cluster; `Interconnect`
 * carries topics between nodes; `Forwarding` sends each queue's commands to
 * its leader over proxy connections (`Upstream`, `RemoteSubscription`).
 *
 * @module
 */
export type { ClusterMeta, KeyValue, Watch, WatchEvent } from "./meta.ts";
export { EtcdError, EtcdMeta } from "./etcd.ts";
export { type Cluster, joinCluster, type JoinOptions, replicatedStore } from "./join.ts";
export { ReplicatedQueueStore, ReplicatedStore } from "./replicated_store.ts";
export { type ReplicationStats, type ReplQueueStats } from "./replication.ts";
export { ReplParser, ReplProtocolError } from "./repl_frames.ts";
export { ReplStateFiles } from "./repl_state.ts";
export {
  Interconnect,
  type InterconnectOptions,
  type LinkStats,
  type LinkTotals,
  splitHostPort,
} from "./interconnect.ts";
export { NotClusterLineError } from "./first_line.ts";
export { LinkParser, LinkProtocolError } from "./link.ts";
export {
  ClusterAuthError,
  LinkAuth,
  type LinkAuthOptions,
  type LinkAuthStats,
} from "./link_auth.ts";
export { ClusterTlsError, LinkTls, type LinkTlsOptions, type LinkTlsStats } from "./link_tls.ts";
export { Forwarding, type ForwardingOptions, type LeaderView } from "./forward.ts";
export { subLine as proxySubLine } from "./proxy_wire.ts";
export {
  type IdSource,
  RemoteDelivery,
  RemoteSubscription,
  type UpstreamPort,
} from "./remote_subscription.ts";
export {
  CLUSTER_PREFIX,
  ClusterNode,
  type ClusterNodeOptions,
  ClusterStartError,
  type ClusterStats,
  type LeaderInfo,
  type MemberInfo,
} from "./node.ts";
