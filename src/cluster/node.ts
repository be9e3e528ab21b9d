/**
 * `ClusterNode`: one broker's membership and queue leaderships, kept in etcd.
 *
 * - **Membership.** The node holds a lease of `--cluster-lease-ttl` seconds
 *   and creates `relayr/members/<node-id>` under it. It renews the lease a
 *   third of the TTL apart; a node that dies (SIGKILL) stops renewing, and
 *   etcd deletes its key when the lease runs out. A second node with the
 *   same id cannot create the key while the first one's lease lives.
 * - **Leadership.** A queue's leader is whoever created
`relayr/leaders/<queue:name>` (one transaction: create if absent), under
 *   its lease. The key's create revision is the leader's **epoch**: etcd's
 *   revision only grows, so a later leader always has a larger epoch, and
 *   `fence(queue, epoch)` asks etcd whether that exact key still exists: a
 *   deposed leader is refused whatever it believes. A node claims the queues
 *   it holds that have no leader, every `CLUSTER_CLAIM_INTERVAL_MS`.
 * - **etcd away.** Requests fail, the watch ends: the node keeps its view,
 *   claims nothing, and says `etcd_reachable: false`; nobody can win an
 *   election meanwhile, so leadership changes pause. When etcd is back the
 *   node renews the same lease (etcd restores leases with a fresh TTL on
 *   restart), reads both prefixes again and watches on. A lease found gone
 *   (the node was away longer than its TTL) means its leaderships are gone:
 *   it registers again under a new lease, and claims again like any node.
 *
 * One loop does the renewing, the resync and the claims, one step after the
 * other, so no two etcd requests of the loop race each other.
 *
 * @module
 */
import {
  CLUSTER_CLAIM_INTERVAL_MS,
  CLUSTER_CLAIMS_PER_SWEEP_MAX,
  CLUSTER_LEADERS_MAX,
  CLUSTER_MEMBERS_MAX,
  CLUSTER_RETRY_MS_MAX,
  STATS_LIMIT_DEFAULT,
} from "../config/mod.ts";
import type { LinkStats, LinkTotals } from "./interconnect.ts";
import type { LinkAuthStats } from "./link_auth.ts";
import type { LinkTlsStats } from "./link_tls.ts";
import type { ClusterMeta, KeyValue, Watch, WatchEvent } from "./meta.ts";
import type { ReplicationStats } from "./replication.ts";

/** Where the cluster keeps its keys in etcd. */
export const CLUSTER_PREFIX = "relayr/";
const MEMBERS = `${CLUSTER_PREFIX}members/`;
const LEADERS = `${CLUSTER_PREFIX}leaders/`;

/** A node of the cluster, as its member key says. */
export interface MemberInfo {
  readonly id: string;
  /** The address other nodes reach it at (`--cluster-advertise`). */
  readonly advertise: string;
  /** When it joined (ms since the epoch, its own clock). */
  readonly since: number;
}

/** A queue's leader. */
export interface LeaderInfo {
  readonly node: string;
  /** The create revision of its leader key: larger for every later leader. */
  readonly epoch: number;
}

/** `/api/cluster`: the node's view of the cluster. */
export interface ClusterStats {
  node_id: string;
  advertise: string;
  etcd: string;
  etcd_reachable: boolean;
  lease_ttl_s: number;
  members: (MemberInfo & { self: boolean })[];
  /** A page of the queue leaders, by queue name (`?offset=&limit=` of `/api/cluster`). */
  leaders: { queue: string; node: string; epoch: number }[];
  /** Queues with a leader, in all. */
  leaders_total: number;
  /** The inter-node links to the other members (topics across nodes). */
  links: LinkStats[];
  /** Topic messages this node forwarded to peers, one per interested peer, since it started. */
  forwarded_msgs: number;
  /** Topic messages peers forwarded to this node since it started. */
  received_msgs: number;
  /** Queue commands (PUB, SUB, ACK, NACK, UNSUB, DECLARE) forwarded to their leader since the start. */
  forwarded_commands: number;
  /** Whether the inter-node link is authenticated (a cluster secret is set, link_auth.ts). */
  link_authenticated: boolean;
  /** Connections on the cluster port whose handshake failed since the start. */
  auth_failures: number;
  /**
   * Connections on the cluster port closed on arrival because `CLUSTER_INBOUND_PENDING_MAX` others
   * had not yet sent their first line.
   */
  inbound_refused: number;
  /** Connections on the cluster port refused for their first bytes (not a cluster line: TLS, say). */
  first_line_refused: number;
  /** Our dials to peers whose handshake failed since the start. */
  auth_dial_failures: number;
  /** Whether the inter-node link is mutual TLS (`--cluster-tls-*`, link_tls.ts). */
  link_tls: boolean;
  /** Connections on the cluster port whose TLS handshake failed since the start. */
  tls_failures: number;
  /** Our dials to peers whose TLS handshake failed since the start. */
  tls_dial_failures: number;
  /** Leaderships this node holds now. */
  leading: number;
  /** Elections this node won (claims that created a leader key). */
  elections_won: number;
  /** Leader keys created anywhere in the cluster, as this node saw them. */
  leader_changes: number;
  /** etcd requests that failed (unreachable, timed out, refused). */
  etcd_errors: number;
  /** Times the node found its lease gone and registered again. */
  lease_losses: number;
  /** Leaderships handed back because the node no longer holds the queue. */
  resigned: number;
  /** Replication of the queues this node leads or copies (replication.ts). */
  replication?: ReplicationStats;
}

/** A start-up refusal (etcd unreachable, node id taken); `serve` prints it and exits 2. */
export class ClusterStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClusterStartError";
  }
}

/** What a `ClusterNode` is made of. */
export interface ClusterNodeOptions {
  readonly meta: ClusterMeta;
  readonly nodeId: string;
  readonly advertise: string;
  readonly leaseTtlS: number;
  /** The etcd endpoint, for stats and messages. */
  readonly endpoint: string;
  /** The names of the queues this node holds, read at each claim sweep. */
  readonly queues: () => Iterable<string>;
  /** Whether this node still holds `queue` (a forgotten idle queue's leadership is handed back). */
  readonly holds: (queue: string) => boolean;
  readonly log: (level: "info" | "warn" | "error", message: string) => void;
  /** Told the members whenever they change (the inter-node link dials them). */
  readonly onMembers?: (members: readonly MemberInfo[]) => void;
  /** The inter-node links, for the stats. */
  readonly links?: () => LinkStats[];
  /** The link's message counters, for the stats. */
  readonly linkTotals?: () => LinkTotals;
  /** Queue commands forwarded to other nodes' leaders, for the stats. */
  readonly forwardedCommands?: () => number;
  /** The link handshake's failures, for the stats (absent: no cluster secret). */
  readonly auth?: () => LinkAuthStats;
  /** The link's TLS handshake failures, for the stats (absent: plain TCP). */
  readonly tls?: () => LinkTlsStats;
  /** Replication's figures, for the stats. */
  readonly replication?: () => ReplicationStats;
  /** Whether this node may claim a leaderless queue (replication: replicas only); absent: yes. */
  readonly mayClaim?: (queue: string) => boolean;
  /** Told every change of a queue's leader as etcd has it (undefined: none now). */
  readonly onLeader?: (queue: string, leader: LeaderInfo | undefined) => void;
  /** Told the changes of other keys under `relayr/` (replication's replica sets, bindings). */
  readonly onOther?: (e: WatchEvent) => void;
  /** Told every key under `relayr/` whenever it is read again (start, etcd back): the whole state. */
  readonly onList?: (kvs: readonly KeyValue[]) => void;
}

/** One broker's membership and leaderships (see the module comment). */
export class ClusterNode {
  readonly #o: ClusterNodeOptions;
  #lease = "0";
  /** Until when (ms, `Date.now()`) the lease surely lives: the last renewal sent plus its TTL. */
  #validUntil = 0;
  #renewedAt = 0;
  #members = new Map<string, MemberInfo>();
  #leaders = new Map<string, LeaderInfo>();
  #watch: Watch | undefined;
  #reachable = true;
  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #loop: Promise<void> = Promise.resolve();
  /** The loop waits for its timer (not inside a pass). */
  #waiting = false;
  #wokenAt = 0;
  #electionsWon = 0;
  #leaderChanges = 0;
  #etcdErrors = 0;
  #leaseLosses = 0;
  #resigned = 0;
  /** Queues whose leadership this node is handing back now (its delete is on its way to etcd). */
  readonly #resigning = new Set<string>();
  /** Leaderships (queue to epoch) the last pass found this node leading but not holding. */
  #unheld = new Map<string, number>();
  /** Grows with every change of the leaders or members seen: forwarding caches compare it. */
  #version = 0;

  constructor(options: ClusterNodeOptions) {
    this.#o = options;
  }

  /** Registers the node and starts its loop; throws `ClusterStartError`. */
  async start(): Promise<void> {
    const o = this.#o;
    try {
      await this.#register();
      await this.#resync();
    } catch (e) {
      if (this.#lease !== "0") await o.meta.revoke(this.#lease).catch(() => {});
      throw e instanceof ClusterStartError ? e : new ClusterStartError((e as Error).message);
    }
    this.#schedule(0);
  }

  /** Stops the loop and the watch, and revokes the lease: the node's keys go at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#loop;
    await this.#watch?.close();
    await this.#o.meta.revoke(this.#lease).catch(() => {});
  }

  /** The queue's leader as last seen in etcd; undefined: none. */
  leader(queue: string): LeaderInfo | undefined {
    return this.#leaders.get(queue);
  }

  /**
   * Whether this node leads `queue` now, as far as it can know without asking
   * etcd: the key is its own and its lease cannot have run out.
   */
  leads(queue: string): boolean {
    return this.#leaders.get(queue)?.node === this.#o.nodeId && Date.now() < this.#validUntil;
  }

  /**
   * Whether this node is handing `queue`'s leadership back now (its delete is
   * on its way to etcd): replication stores nothing under that epoch then, it
   * holds a publish for the node's next claim (join.ts).
   */
  resigning(queue: string): boolean {
    return this.#resigning.has(queue);
  }

  /** This node's id (`--node-id`). */
  get id(): string {
    return this.#o.nodeId;
  }

  /**
   * A number that changes whenever a queue's leader or a member changes in
   * this node's view: a cached routing decision is good while it is the same.
   */
  get version(): number {
    return this.#version;
  }

  /** The queue's leader in this node's view (etcd's watch); undefined: nobody leads it. */
  leaderOf(queue: string): LeaderInfo | undefined {
    return this.#leaders.get(queue);
  }

  /**
   * Claims a queue nobody leads, now (create-if-absent in one etcd
   * transaction: of nodes claiming at once exactly one wins), and returns its
   * leader: this node, or whoever won. Rejects when etcd cannot be reached.
   */
  async claim(queue: string): Promise<LeaderInfo> {
    const o = this.#o;
    const r = await o.meta.create(LEADERS + queue, o.nodeId, this.#lease);
    this.#setLeader(queue, r.kv, true);
    if (r.created) {
      this.#electionsWon++;
      o.log(
        "info",
        `leader of queue ${queue} (epoch ${r.kv.createRevision}, claimed for a command)`,
      );
    }
    return { node: r.kv.value, epoch: r.kv.createRevision };
  }

  /** The cluster address (`--cluster-advertise`) of a live member; undefined: not a member now. */
  addressOf(nodeId: string): string | undefined {
    return this.#members.get(nodeId)?.advertise;
  }

  /**
   * Writes `key` (no lease: it outlives the node) only while `epoch` is still
   * the queue's leadership; false when it is not (a deposed leader's write).
   */
  putFenced(queue: string, epoch: number, key: string, value: string): Promise<boolean> {
    return this.#o.meta.putIf(CLUSTER_PREFIX + key, value, LEADERS + queue, epoch);
  }

  /** Asks etcd whether `epoch` is still the queue's leadership: false for a deposed leader. */
  fence(queue: string, epoch: number): Promise<boolean> {
    return this.#o.meta.holds(LEADERS + queue, epoch);
  }

  /** The node's view, for `/api/cluster` (a page of the leaders, by queue name) and the metrics. */
  stats(
    page: { offset: number; limit: number } = { offset: 0, limit: STATS_LIMIT_DEFAULT },
  ): ClusterStats {
    const o = this.#o;
    let leading = 0;
    for (const l of this.#leaders.values()) if (l.node === o.nodeId) leading++;
    const lt = o.linkTotals?.();
    // Sorted only when a page of them is asked for (the metrics ask for none).
    const leaders = page.limit === 0
      ? []
      : [...this.#leaders].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
        .slice(page.offset, page.offset + page.limit);
    return {
      node_id: o.nodeId,
      advertise: o.advertise,
      etcd: o.endpoint,
      etcd_reachable: this.#reachable,
      lease_ttl_s: o.leaseTtlS,
      members: [...this.#members.values()].sort((a, b) => a.id < b.id ? -1 : 1)
        .map((m) => ({ ...m, self: m.id === o.nodeId })),
      leaders: leaders.map(([queue, l]) => ({ queue, node: l.node, epoch: l.epoch })),
      leaders_total: this.#leaders.size,
      links: o.links?.() ?? [],
      forwarded_msgs: lt?.forwarded ?? 0,
      received_msgs: lt?.received ?? 0,
      inbound_refused: lt?.inboundRefused ?? 0,
      first_line_refused: lt?.firstLineRefused ?? 0,
      forwarded_commands: o.forwardedCommands?.() ?? 0,
      link_authenticated: o.auth !== undefined,
      ...(o.auth?.() ?? { auth_failures: 0, auth_dial_failures: 0 }),
      link_tls: o.tls !== undefined,
      ...(o.tls?.() ?? { tls_failures: 0, tls_dial_failures: 0 }),
      leading,
      elections_won: this.#electionsWon,
      leader_changes: this.#leaderChanges,
      etcd_errors: this.#etcdErrors,
      lease_losses: this.#leaseLosses,
      resigned: this.#resigned,
      ...(o.replication === undefined ? {} : { replication: o.replication() }),
    };
  }

  async #register(): Promise<void> {
    const o = this.#o;
    const sent = Date.now();
    this.#lease = await o.meta.grant(o.leaseTtlS);
    this.#validUntil = sent + o.leaseTtlS * 1000;
    this.#renewedAt = sent;
    const me: MemberInfo = { id: o.nodeId, advertise: o.advertise, since: Date.now() };
    const r = await o.meta.create(MEMBERS + o.nodeId, JSON.stringify(me), this.#lease);
    if (!r.created) {
      const holder = parseMember(r.kv);
      throw new ClusterStartError(
        `--node-id ${JSON.stringify(o.nodeId)} is taken by a live node` +
          `${holder ? ` advertising ${holder.advertise}` : ""}; its key lasts until its lease ` +
          `ends (up to ${o.leaseTtlS} s after it stops)`,
      );
    }
  }

  /** Reads both prefixes and watches from there (the start, and after etcd came back). */
  async #resync(): Promise<void> {
    await this.#watch?.close();
    this.#watch = undefined;
    const { kvs, revision } = await this.#o.meta.list(CLUSTER_PREFIX);
    this.#members.clear();
    this.#leaders.clear();
    this.#version++;
    this.#o.onList?.(kvs);
    for (const kv of kvs) this.#apply({ type: "put", key: kv.key, kv }, false);
    this.#o.onMembers?.([...this.#members.values()]);
    this.#watch = await this.#o.meta.watch(
      CLUSTER_PREFIX,
      revision + 1,
      (events) => {
        let members = false;
        for (const e of events) members = this.#apply(e, true) || members;
        if (members) this.#o.onMembers?.([...this.#members.values()]);
      },
      (error) => {
        this.#watch = undefined;
        this.#failed(error);
      },
    );
  }

  /** Applies one change; returns whether it was a member's. */
  #apply(e: WatchEvent, live: boolean): boolean {
    if (e.key.startsWith(MEMBERS)) {
      const id = e.key.slice(MEMBERS.length);
      const m = e.kv && parseMember(e.kv);
      this.#version++;
      if (m === undefined) this.#members.delete(id);
      else if (this.#members.has(id) || this.#members.size < CLUSTER_MEMBERS_MAX) {
        this.#members.set(id, m);
      }
      return true;
    } else if (e.key.startsWith(LEADERS)) {
      const queue = e.key.slice(LEADERS.length);
      this.#version++;
      if (e.kv === undefined) {
        if (this.#leaders.delete(queue)) this.#o.onLeader?.(queue, undefined);
      } else if (this.#leaders.has(queue) || this.#leaders.size < CLUSTER_LEADERS_MAX) {
        this.#setLeader(queue, e.kv, live);
      }
    } else this.#o.onOther?.(e);
    return false;
  }

  /** Records a leader key; a new epoch is a leader change (counted once, whichever path saw it first). */
  #setLeader(queue: string, kv: KeyValue, live: boolean): void {
    const before = this.#leaders.get(queue);
    if (before?.epoch === kv.createRevision) return;
    this.#version++;
    const leader = { node: kv.value, epoch: kv.createRevision };
    this.#leaders.set(queue, leader);
    if (live) this.#leaderChanges++;
    this.#o.onLeader?.(queue, leader);
  }

  #failed(error: unknown): void {
    this.#etcdErrors++;
    if (this.#reachable) {
      this.#o.log(
        "warn",
        `etcd unreachable, leadership changes paused: ${message(error)}`,
      );
    }
    this.#reachable = false;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#waiting = true;
    this.#timer = setTimeout(() => {
      this.#waiting = false;
      this.#loop = this.#step().then((next) => this.#schedule(next));
    }, ms);
  }

  /**
   * Runs the loop's next pass now rather than at its interval (a command for a
   * queue nobody leads is waiting for this node to claim it). Bounded: one
   * pass at a time, and passes are what the interval allows at most twice over.
   */
  claimSoon(): void {
    if (
      !this.#waiting || this.#stopped || Date.now() - this.#wokenAt < CLUSTER_CLAIM_INTERVAL_MS / 2
    ) {
      return;
    }
    this.#wokenAt = Date.now();
    clearTimeout(this.#timer);
    this.#schedule(0);
  }

  /** One pass of the loop; returns the wait before the next. */
  async #step(): Promise<number> {
    try {
      await this.#renew();
      if (this.#watch === undefined) await this.#resync();
      if (!this.#reachable) {
        this.#reachable = true;
        this.#o.log("info", "etcd reachable again, leadership changes resume");
      }
      await this.#claim();
      return CLUSTER_CLAIM_INTERVAL_MS;
    } catch (e) {
      this.#failed(e);
      return Math.min(CLUSTER_CLAIM_INTERVAL_MS, CLUSTER_RETRY_MS_MAX);
    }
  }

  async #renew(): Promise<void> {
    const o = this.#o;
    const dueMs = (o.leaseTtlS * 1000) / 3;
    if (this.#reachable && Date.now() - this.#renewedAt < dueMs) return;
    const sent = Date.now();
    const ttl = await o.meta.keepAlive(this.#lease);
    if (ttl > 0) {
      this.#renewedAt = sent;
      this.#validUntil = sent + ttl * 1000;
      return;
    }
    this.#leaseLosses++;
    this.#validUntil = 0;
    o.log("warn", "the lease ran out (etcd was away too long): registering again");
    await this.#register();
  }

  /**
   * Hands back the leaderships of queues this node no longer holds (an idle
   * empty queue is forgotten by the sweep): leader keys do not pile up in etcd
   * for every queue ever used. Then claims the held queues that have no
   * leader. Both bounded per pass.
   *
   * A leadership is handed back only when the previous pass found it not held
   * too, under the same epoch: a queue just claimed for a command is not held
   * until that command lands in it, and a pass between the two handed the new
   * leadership back, so the command was refused (seen as replication_test's
   * two first PUBs of a new queue answered `ERR ... has not been renewed` and
   * `ERR NOT_LEADER`, under load).
   */
  async #claim(): Promise<void> {
    const o = this.#o;
    let tried = 0;
    const gone: [string, number][] = [];
    const unheld = new Map<string, number>();
    for (const [queue, l] of this.#leaders) {
      if (gone.length >= CLUSTER_CLAIMS_PER_SWEEP_MAX) break;
      if (l.node !== o.nodeId || o.holds(queue)) continue;
      if (this.#unheld.get(queue) === l.epoch) gone.push([queue, l.epoch]);
      else unheld.set(queue, l.epoch);
    }
    this.#unheld = unheld;
    for (const [queue, epoch] of gone) {
      if (this.#stopped) return;
      await this.#resign(queue, epoch);
    }
    for (const queue of o.queues()) {
      if (this.#leaders.has(queue) || o.mayClaim?.(queue) === false) continue;
      if (tried++ >= CLUSTER_CLAIMS_PER_SWEEP_MAX || this.#stopped) return;
      const r = await o.meta.create(LEADERS + queue, o.nodeId, this.#lease);
      // The watch says so too (before or after); set it now so the next pass does not claim again.
      this.#setLeader(queue, r.kv, true);
      if (r.created) {
        this.#electionsWon++;
        o.log("info", `leader of queue ${queue} (epoch ${r.kv.createRevision})`);
      }
    }
  }

  /**
   * Hands back `queue`'s leadership (epoch `epoch`) unless it is held again.
   * While etcd deletes the key the node is `resigning` it: a publish arriving
   * then is held for the node's next claim (replication.ts `hold`), not stored
   * under an epoch about to end and then answered "outcome unknown" when the
   * delete comes back. The delete is applied here at once, so the queue is not
   * served again under the ended epoch while the watch's copy of it is on its
   * way.
   */
  async #resign(queue: string, epoch: number): Promise<void> {
    const o = this.#o;
    if (o.holds(queue)) return; // a publish came while the earlier deletes were answered
    this.#resigning.add(queue);
    try {
      if (!(await o.meta.deleteIf(LEADERS + queue, epoch))) return;
    } finally {
      this.#resigning.delete(queue);
    }
    this.#resigned++;
    if (this.#leaders.get(queue)?.epoch === epoch && this.#leaders.delete(queue)) {
      this.#version++;
      o.onLeader?.(queue, undefined);
    }
  }
}

function parseMember(kv: KeyValue): MemberInfo | undefined {
  try {
    const m = JSON.parse(kv.value) as MemberInfo;
    return typeof m.id === "string" && typeof m.advertise === "string" ? m : undefined;
  } catch {
    return undefined;
  }
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
