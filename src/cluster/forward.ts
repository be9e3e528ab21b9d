/**
 * Forwarding of queue commands to the queue's leader (docs/CLUSTERING.md,
 * "Queues across nodes"). Every client connection of a cluster node gets a
 * `Router`; per command on a queue it decides where the queue is led:
 *
 * - **here** (`ClusterNode.leads`): the connection runs it as on one broker;
 * - **another node**: it goes over one upstream proxy connection per
 *   (client connection, leader node), opened on first use, closed with the
 *   client (upstream.ts); the client never needs to know;
 * - **nobody**: this node claims the queue first (`ClusterNode.claim`,
 *   create-if-absent in etcd: one winner), while the connection's reading
 *   waits, once per queue; then one of the two above.
 *
 * A proxy connection from another node (`PROXY <node-id>`) also gets a
 * router, which never forwards again: a queue another node leads is
 * answered `ERR NOT_LEADER <leader-or-?>` before anything is done (a queue
 * nobody leads is claimed, as above).
 *
 * The decision is cached per destination and checked, for a run of PUBs to
 * one destination, by string identity (as permissions are); the cache holds
 * while the node's view of leaders and members (`ClusterNode.version`) is the
 * same. No promise or closure per message.
 *
 * @module
 */
import { BrokerError, type Subscription } from "../broker/mod.ts";
import {
  CLUSTER_ADMIN_POLL_MS,
  CLUSTER_COMMIT_MS_MAX,
  CLUSTER_PROXY_PENDING_MAX,
  CLUSTER_PROXY_ROUTES_MAX,
  CLUSTER_PROXY_UPSTREAMS_MAX,
  CLUSTER_RESUBSCRIBE_MS_MAX,
  CLUSTER_RESUBSCRIBE_RETRY_MS,
  CONTROL_LINE_BYTES_MAX,
} from "../config/mod.ts";
import {
  type DeclareFrame,
  destinationError,
  errFrame,
  type Frame,
  type PubFrame,
  type SubFrame,
  type SubOptions,
} from "../protocol/mod.ts";
import type { Conn } from "../runtime/mod.ts";
import type { Elsewhere, Held, QueueRouter, RoutedConnection, Routing } from "../server/mod.ts";
import { splitHostPort } from "./interconnect.ts";
import { subLine } from "./proxy_wire.ts";
import type { ClusterNode } from "./node.ts";
import type { TopicLeaders } from "./topic_leader.ts";
import { type IdSource, RemoteSubscription } from "./remote_subscription.ts";
import { Upstream, type UpstreamOwner } from "./upstream.ts";

/** What forwarding asks of the cluster node. */
export type LeaderView = Pick<
  ClusterNode,
  "id" | "version" | "leads" | "leaderOf" | "claim" | "addressOf"
>;

/** What `Forwarding` is made of. */
export interface ForwardingOptions {
  readonly node: LeaderView;
  readonly dial: (hostname: string, port: number) => Promise<Conn>;
  readonly log: (level: "info" | "warn", message: string) => void;
  /** Declared topics, led like queues (topic_leader.ts); absent: topics are never forwarded. */
  readonly topics?: TopicRoutes;
  /** Whether this node serves a queue it leads (its copy recovered); absent: leading is serving. */
  readonly serves?: (queue: string) => boolean;
}

/** What forwarding asks of the declared topics (`TopicLeaders`). */
export type TopicRoutes = Pick<
  TopicLeaders,
  "declared" | "adopted" | "led" | "whenAdopted" | "declare"
>;

/** The node's forwarding: makes a `Router` per connection, and counts what was forwarded. */
export class Forwarding implements Routing {
  readonly o: ForwardingOptions;
  /** Commands sent to other nodes' leaders since the start (`relayr_cluster_forwarded_commands_total`). */
  forwarded = 0;
  /** The open routers (to cut their upstreams to a node that left). */
  readonly routers = new Set<Router>();

  constructor(options: ForwardingOptions) {
    this.o = options;
  }

  open(c: RoutedConnection, proxyFrom: string | undefined): QueueRouter {
    const r = new Router(this, c, proxyFrom);
    this.routers.add(r);
    return r;
  }

  /**
   * Where an admin action on `dest` runs (`Routing.placeOf`): here when this
   * node serves it; a queue or declared topic another node leads is refused
   * `NOT_LEADER` naming that node (the HTTP API has no proxy path: the
   * action is not a wire command), one that is recovering here `UNAVAILABLE`.
   * One nobody leads is claimed first, as a command for it would be, so that
   * an action never runs on a node's stale or partial copy while answering
   * success.
   */
  async placeOf(dest: string): Promise<Elsewhere | undefined> {
    const topics = this.o.topics;
    if (!dest.startsWith("queue:") && !(topics?.declared(dest) ?? false)) return undefined;
    // A name no command could give (from a URL) claims nothing: run here, where it is not found.
    if (destinationError(dest, false) !== undefined) return undefined;
    const node = this.o.node;
    if (node.leaderOf(dest) === undefined) {
      try {
        await node.claim(dest);
      } catch (e) {
        return unavailable(
          `nobody leads ${dest} and it cannot be claimed: ${(e as Error).message}`,
        );
      }
    }
    if (node.leads(dest)) {
      if (await this.#served(dest)) return undefined;
      return unavailable(`${dest} is recovering on its new leader; retry`);
    }
    const l = node.leaderOf(dest);
    if (l === undefined || l.node === node.id) {
      return unavailable(`nobody serves ${dest} now (between leaders); retry`);
    }
    return {
      code: "NOT_LEADER",
      leader: l.node,
      message: `${dest} is led by node ${l.node}: send this to its HTTP port ` +
        `(relayr cluster status lists the leaders)`,
    };
  }

  /**
   * Whether this node serves `dest`, which it leads: a leader just claimed
   * recovers the copies first, so this waits for that (bounded by
   * `CLUSTER_COMMIT_MS_MAX`, as a PUB held meanwhile is).
   */
  async #served(dest: string): Promise<boolean> {
    if (!dest.startsWith("queue:")) {
      await this.o.topics!.whenAdopted(dest);
      return this.o.topics!.adopted(dest);
    }
    const serves = this.o.serves;
    if (serves === undefined) return true;
    const deadline = Date.now() + CLUSTER_COMMIT_MS_MAX;
    while (!serves(dest) && this.o.node.leads(dest) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, CLUSTER_ADMIN_POLL_MS));
    }
    return serves(dest) && this.o.node.leads(dest);
  }

  /**
   * The members changed: upstreams to a node that is no longer one are cut
   * (a stopped or cut-off leader answers nothing; its lease lapsing is the
   * failure detector), so what waits on them is answered `UNAVAILABLE` and
   * their subscriptions are re-made at the queues' next leaders.
   */
  membersChanged(members: readonly { id: string }[]): void {
    const live = new Set(members.map((m) => m.id));
    for (const r of this.routers) r.cut(live);
  }
}

function unavailable(message: string): Elsewhere {
  return { code: "UNAVAILABLE", message };
}

/** Whether `line` (ending in CRLF) is within the control-line limit of the node it goes to. */
function fits(line: string): boolean {
  return new TextEncoder().encode(line).length - 2 <= CONTROL_LINE_BYTES_MAX;
}

/** Run it here. */
const LOCAL = 0;
/** Where a destination's commands go: here, an upstream, or the `ERR` line that refuses them. */
type Route = typeof LOCAL | Upstream | Uint8Array;

/** One connection's router (see the module comment). */
class Router implements QueueRouter, UpstreamOwner, IdSource {
  readonly connection: RoutedConnection;
  readonly #f: Forwarding;
  readonly #node: LeaderView;
  readonly #proxyFrom: string | undefined;
  #upstreams = new Map<string, Upstream>();
  #routes = new Map<string, typeof LOCAL | Upstream>();
  /** The node's `version` the routes were decided under. */
  #version = -1;
  #lastDest: string | undefined = undefined;
  #lastRoute: typeof LOCAL | Upstream = LOCAL;
  /** Fresh client-visible ids, counted down from far above any clock-made id. */
  #nextId = Number.MAX_SAFE_INTEGER;
  #timers = new Map<ReturnType<typeof setTimeout>, () => void>();
  #closed = false;

  constructor(f: Forwarding, c: RoutedConnection, proxyFrom: string | undefined) {
    this.#f = f;
    this.#node = f.o.node;
    this.connection = c;
    this.#proxyFrom = proxyFrom;
  }

  ready(f: Frame): Promise<void> | undefined {
    // A proxy connection claims too: its front node found no leader either, or the one it knew
    // handed the queue back meanwhile (an idle queue's leadership is given back by the sweep).
    const dest = f.op === "PUB" || f.op === "SUB" || f.op === "DECLARE" ? f.dest : undefined;
    if (dest === undefined) return undefined;
    // A DECLARE is asked every time: a topic published to here as a plain one gets a leader by it.
    if (dest === this.#lastDest && this.#node.version === this.#version && f.op !== "DECLARE") {
      return undefined;
    }
    if (!dest.startsWith("queue:")) {
      return this.#readyTopic(f as PubFrame | SubFrame | DeclareFrame);
    }
    if (this.#node.leaderOf(dest) !== undefined) return undefined;
    // Refused anyway (PERMISSION_DENIED): nothing is claimed for it.
    if (!this.connection.mayClaim(f as PubFrame | SubFrame | DeclareFrame)) return undefined;
    return this.#claim(dest);
  }

  /**
   * A command for a declared topic's leader (or any topic DECLARE): claims
   * the topic when nobody leads it, and waits while this node leads it but
   * does not serve it yet (its log recovering), so the command is run on the
   * recovered log rather than refused.
   */
  #readyTopic(f: PubFrame | SubFrame | DeclareFrame): Promise<void> | undefined {
    const topics = this.#f.o.topics;
    if (topics === undefined || !topics.led(f)) return undefined;
    const node = this.#node;
    const waits = f.op !== "DECLARE" && !topics.adopted(f.dest);
    if (node.leaderOf(f.dest) !== undefined && !(waits && node.leads(f.dest))) return undefined;
    if (!this.connection.mayClaim(f)) return undefined;
    return this.#claimTopic(f.dest, waits);
  }

  async #claimTopic(dest: string, waits: boolean): Promise<void> {
    if (this.#node.leaderOf(dest) === undefined) await this.#claim(dest);
    if (waits && this.#node.leads(dest)) await this.#f.o.topics!.whenAdopted(dest);
  }

  async #claim(dest: string): Promise<void> {
    try {
      await this.#node.claim(dest);
    } catch (e) {
      // Then nobody leads it: its command is answered UNAVAILABLE (#decide).
      this.#f.o.log("warn", `cannot claim ${dest}: ${(e as Error).message}`);
    }
  }

  pub(f: PubFrame): boolean {
    const r = this.#route(f.dest);
    if (r === LOCAL) return false;
    const replies = this.connection.replies;
    if (r instanceof Uint8Array) replies.bytes(r);
    else if (this.#full(r)) return true;
    else {
      r.pub(f, replies.hold());
    }
    return true;
  }

  sub(
    dest: string,
    sid: string,
    options: SubOptions,
    chosen: boolean,
  ): Subscription | null | undefined {
    // A queue takes no `durable`/`start`: refused here, as one broker does, before anything is made.
    // A topic's live SUB stays here (the link brings it the messages); a replay or a durable goes
    // to a declared topic's leader.
    const replay = options.durable !== undefined || options.start !== undefined;
    if (dest.startsWith("queue:") ? replay : !replay) return undefined;
    const r = this.#route(dest);
    if (r === LOCAL) return undefined;
    if (r instanceof Uint8Array) {
      this.connection.replies.bytes(r);
      return null;
    }
    if (this.#full(r)) return null;
    if (options.durable?.includes("/") && !fits(subLine(dest, sid, options))) {
      // A user's durable goes with its user (`durable_user`), which can make the line longer
      // than the client's: past the leader's limit it would be a framing error there.
      this.connection.replies.error(
        "BAD_ARGUMENT",
        `this SUB with its user is over ${CONTROL_LINE_BYTES_MAX} bytes for the leader of ${dest}`,
      );
      return null;
    }
    const s = new RemoteSubscription(this.connection.client, dest, sid, options, this);
    s.chosen = chosen;
    r.sub(s, this.connection.replies.hold());
    return s;
  }

  declare(f: DeclareFrame): boolean {
    const topics = this.#f.o.topics;
    if (f.queue === undefined && topics === undefined) return false;
    // A topic DECLARE always goes to the topic's leader (the first one makes it declared).
    const r = f.queue === undefined ? this.#leaderRoute(f.dest, true) : this.#route(f.dest);
    if (r === LOCAL) {
      if (f.queue !== undefined) return false;
      const replies = this.connection.replies;
      const slot = replies.hold();
      topics!.declare(f.dest, f.options).then(
        () => replies.fillOk(slot, ""),
        (e) =>
          replies.fill(
            slot,
            e instanceof BrokerError
              ? errFrame(e.code, e.message)
              : errFrame("UNAVAILABLE", `${f.dest} not declared: ${(e as Error).message}`),
          ),
      );
      return true;
    }
    if (r instanceof Uint8Array) this.connection.replies.bytes(r);
    else if (!this.#full(r)) {
      r.declare(f, this.connection.replies.hold());
    }
    return true;
  }

  /** Cuts the upstreams to nodes not in `live`. */
  cut(live: ReadonlySet<string>): void {
    for (const up of [...this.#upstreams.values()]) {
      if (!live.has(up.node)) up.cut(`${up.leader} left the cluster`);
    }
  }

  close(): void {
    this.#f.routers.delete(this);
    this.#closed = true;
    for (const [t, wake] of this.#timers) {
      clearTimeout(t);
      wake();
    }
    this.#timers.clear();
    for (const up of this.#upstreams.values()) up.close();
    this.#upstreams.clear();
  }

  freshId(): number {
    let id: number;
    do id = this.#nextId--; while (this.connection.inflight.has(id));
    return id;
  }

  /** Over `CLUSTER_PROXY_PENDING_MAX` commands waiting for that leader: answered `ERR LIMIT`. */
  #full(up: Upstream): boolean {
    if (up.pending < CLUSTER_PROXY_PENDING_MAX) return false;
    this.connection.replies.error(
      "LIMIT",
      `${CLUSTER_PROXY_PENDING_MAX} commands wait for ${up.leader}`,
    );
    return true;
  }

  #route(dest: string): Route {
    const node = this.#node;
    if (node.version !== this.#version) {
      this.#routes.clear();
      this.#version = node.version;
      this.#lastDest = undefined;
    }
    if (dest === this.#lastDest) return this.#lastRoute;
    let r = this.#routes.get(dest);
    if (r === undefined) {
      const d = this.#decide(dest);
      if (d instanceof Uint8Array) return d; // refusals are not cached: the next command asks again
      if (this.#routes.size >= CLUSTER_PROXY_ROUTES_MAX) this.#routes.clear();
      this.#routes.set(dest, r = d);
    }
    this.#lastDest = dest;
    this.#lastRoute = r;
    return r;
  }

  #decide(dest: string): Route {
    if (!dest.startsWith("queue:") && !(this.#f.o.topics?.declared(dest) ?? false)) return LOCAL;
    return this.#leaderRoute(dest, false);
  }

  /** Where the commands of a queue or a declared topic go: its leader (`declaring`: a topic DECLARE). */
  #leaderRoute(dest: string, declaring: boolean): Route {
    const node = this.#node;
    if (node.leads(dest)) {
      // A declared topic is run here once served here (its log recovered); a DECLARE waits for none.
      if (declaring || dest.startsWith("queue:") || this.#f.o.topics!.adopted(dest)) return LOCAL;
      return errFrame("UNAVAILABLE", `${dest} is recovering on its new leader; retry`);
    }
    const l = node.leaderOf(dest);
    if (this.#proxyFrom !== undefined) {
      // Never forwarded twice: the front node resolves the leader again and retries.
      return errFrame("NOT_LEADER", `${l?.node ?? "?"} ${dest}`);
    }
    if (l === undefined) return errFrame("UNAVAILABLE", `nobody leads ${dest} (etcd unreachable?)`);
    if (l.node === node.id) {
      return errFrame("UNAVAILABLE", `this node's leadership of ${dest} has not been renewed`);
    }
    return this.#upstream(l.node) ??
      errFrame("UNAVAILABLE", `the leader of ${dest}, ${l.node}, cannot be reached`);
  }

  #upstream(nodeId: string): Upstream | undefined {
    const up = this.#upstreams.get(nodeId);
    if (up !== undefined && !up.dead) return up;
    const address = this.#node.addressOf(nodeId);
    if (address === undefined || this.#upstreams.size >= CLUSTER_PROXY_UPSTREAMS_MAX) {
      return undefined;
    }
    const [hostname, port] = splitHostPort(address);
    const made = new Upstream(
      this,
      nodeId,
      this.#node.id,
      () => this.#f.o.dial(hostname, port),
      this.#f,
    );
    this.#upstreams.set(nodeId, made);
    return made;
  }

  // --- UpstreamOwner ---

  broken(up: Upstream, subs: RemoteSubscription[]): void {
    if (this.#upstreams.get(up.node) === up) this.#upstreams.delete(up.node);
    this.#version = -1; // routes through it are gone
    for (const s of subs) this.resubscribe(s, undefined);
  }

  stale(): void {
    this.#version = -1;
  }

  refused(s: RemoteSubscription): void {
    const subs = this.connection.subs;
    if (subs.get(s.sid) === s) subs.delete(s.sid);
  }

  resubscribe(s: RemoteSubscription, slot: Held | undefined): void {
    if (s.closed || this.#closed || this.connection.isClosed()) return;
    if (s.remaking) return;
    s.remaking = true;
    if (s.giveUpAt === 0) s.giveUpAt = Date.now() + CLUSTER_RESUBSCRIBE_MS_MAX;
    void this.#remake(s, slot);
  }

  /**
   * Re-makes a subscription whose leader went, at the queue's next leader
   * (claiming the queue when nobody leads it), keeping its sub id; gives up
   * after `CLUSTER_RESUBSCRIBE_MS_MAX` (a SUB not yet answered is then
   * answered `ERR UNAVAILABLE`).
   */
  async #remake(s: RemoteSubscription, slot: Held | undefined): Promise<void> {
    const node = this.#node;
    const dest = s.destination;
    const c = this.connection;
    while (!s.closed && !this.#closed && Date.now() < s.giveUpAt) {
      await this.#sleep(CLUSTER_RESUBSCRIBE_RETRY_MS);
      if (s.closed || this.#closed || c.subs.get(s.sid) !== s) return;
      const l = node.leaderOf(dest);
      if (l === undefined) {
        await node.claim(dest).catch(() => {});
        continue;
      }
      if (node.leads(dest)) {
        // A declared topic's replay is made here once this node serves the topic.
        if (dest.startsWith("queue:") || this.#f.o.topics?.adopted(dest) === true) {
          return this.#makeLocal(s, slot);
        }
        continue;
      }
      if (l.node === node.id) continue;
      const up = this.#upstream(l.node);
      if (up === undefined) continue;
      s.remaking = false;
      return up.sub(s, slot);
    }
    s.remaking = false;
    if (s.closed || this.#closed) return;
    this.#f.o.log(
      "warn",
      `gave up re-making subscription ${s.sid} of ${dest}: no leader reachable`,
    );
    if (slot !== undefined) {
      c.replies.fill(slot, errFrame("UNAVAILABLE", `no leader of ${dest} reachable`));
      this.refused(s);
    } else c.lost?.(s.sid, `no leader of ${dest} reachable`);
  }

  /** This node leads the queue now: the subscription is made here, under the same sub id. */
  #makeLocal(s: RemoteSubscription, slot: Held | undefined): void {
    const c = this.connection;
    s.remaking = false;
    s.closed = true;
    let local: Subscription;
    try {
      local = c.broker.subscribe(c.client, s.destination, s.sid, s.options);
    } catch (e) {
      c.subs.delete(s.sid);
      const err = e as { code?: string; message: string };
      if (slot !== undefined) c.replies.fill(slot, errFrame("UNAVAILABLE", err.message));
      else c.lost?.(s.sid, err.message);
      return;
    }
    c.subs.set(s.sid, local);
    if (slot !== undefined) c.replies.fillOk(slot, s.chosen ? `sub_id:${s.sid}` : "");
    local.activate();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((wake) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        wake();
      }, ms);
      this.#timers.set(t, wake);
    });
  }
}
