/**
 * The commands that configure and subscribe, apart from the hot PUB/ACK
 * path: SUB and UNSUB (a connection's subscriptions by sub id), DECLARE,
 * BIND and UNBIND. Each checks its user's permissions first, then asks the
 * broker, and answers through the connection's ordered replies.
 *
 * @module
 */
import { Action, type AuthzCounters } from "../auth/mod.ts";
import type { Broker, Client, Subscription } from "../broker/mod.ts";
import type {
  BindFrame,
  DeclareFrame,
  SubFrame,
  UnbindFrame,
  UnsubFrame,
} from "../protocol/mod.ts";
import type { Access } from "./access.ts";
import type { Replies } from "./replies.ts";
import type { QueueRouter } from "./routing.ts";

/**
 * What a command handler works with: one connection's parts. A class, not an
 * object of closures over the connection: its methods are on the prototype
 * (the closures were part of ~0.7 KiB a connection made in its constructor).
 */
export class CommandContext {
  readonly broker: Broker;
  readonly replies: Replies;
  readonly access: Access;
  readonly #authz: AuthzCounters;
  /** Cluster mode: sends queue commands to their leader (set once, after the context is made). */
  router: QueueRouter | undefined = undefined;

  constructor(broker: Broker, replies: Replies, access: Access, authz: AuthzCounters) {
    this.broker = broker;
    this.replies = replies;
    this.access = access;
    this.#authz = authz;
  }

  /** Whether its user may do `action` to `dest`; if not, answers `ERR PERMISSION_DENIED`. */
  may(action: Action, dest: string): boolean {
    if (this.access.may(action, dest)) return true;
    this.denied(dest);
    return false;
  }

  /** Answers `ERR PERMISSION_DENIED` (and counts it). */
  denied(dest: string): void {
    this.#authz.permission_denied++;
    this.replies.error("PERMISSION_DENIED", dest);
  }
}

/** SUB and UNSUB of one connection, over its subscriptions by sub id. */
export class Subscribing {
  readonly #c: CommandContext;
  readonly #client: Client;
  readonly #subs: Map<string, Subscription>;
  #nextSid = 1;

  constructor(c: CommandContext, client: Client, subs: Map<string, Subscription>) {
    this.#c = c;
    this.#client = client;
    this.#subs = subs;
  }

  /**
   * SUB; `user` is its users-file user, if any (a durable name is kept under
   * it). `proxy`: a cluster node's trusted proxy connection, whose SUB names
   * the user a forwarded durable is kept under (`durable_user`, checked on
   * the front node); any other connection sending that is refused.
   */
  sub(f: SubFrame, user: string | undefined, proxy = false): void {
    const c = this.#c;
    const subs = this.#subs;
    if (f.options.durableUser !== undefined) {
      if (!proxy) {
        return c.replies.error("BAD_ARGUMENT", "durable_user is sent by cluster nodes only");
      }
      user = f.options.durableUser;
    }
    if (!c.access.maySubscribe(f.dest)) return c.denied(f.dest);
    const max = c.access.limits.subscriptions;
    if (subs.size >= max) {
      return c.replies.error("LIMIT", `at most ${max} subscriptions per connection`);
    }
    let sid = f.options.sid;
    const chosen = sid === undefined;
    if (sid === undefined) {
      do sid = String(this.#nextSid++); while (subs.has(sid));
    } else if (subs.has(sid)) {
      return c.replies.error(
        "DUPLICATE_SUB_ID",
        `sub_id ${JSON.stringify(sid)} is in use on this connection`,
      );
    }
    // A durable is its user's: under a users-file user its name is kept as
    // `<user>/<name>` (a name of the wire has no `/`, so none can reach
    // another user's), or any reader of the topic could take over another
    // user's durable while it is away, and its backlog with it.
    const durable = f.options.durable;
    let options = f.options;
    if (user !== undefined && durable !== undefined) {
      options = { ...options, durable: userDurable(user, durable) };
      delete options.durableUser;
    }
    // Made at the queue's leader: the router answers it when the leader does.
    const remote = c.router?.sub(f.dest, sid, options, chosen);
    if (remote === null) return;
    if (remote !== undefined) return void subs.set(sid, remote);
    let sub: Subscription;
    try {
      sub = c.broker.subscribe(this.#client, f.dest, sid, options);
    } catch (e) {
      return c.replies.brokerError(e);
    }
    subs.set(sid, sub);
    if (chosen) c.replies.ascii(`OK sub_id:${sid}\r\n`);
    else c.replies.ok();
    sub.activate();
  }

  /** UNSUB (with `forget`, a durable's stored position goes too: `admin` on it). */
  unsub(f: UnsubFrame): void {
    const c = this.#c;
    const sub = this.#subs.get(f.sid);
    if (sub === undefined) {
      return c.replies.error("UNKNOWN_SUB_ID", `no subscription ${JSON.stringify(f.sid)}`);
    }
    if (f.forget && !sub.durable) {
      return c.replies.error("BAD_ARGUMENT", `${JSON.stringify(f.sid)} is not durable: no forget`);
    }
    if (f.forget && !c.may(Action.ADMIN, sub.destination)) return;
    this.#subs.delete(f.sid);
    sub.close(f.forget === true);
    c.replies.ok();
  }
}

/**
 * BIND/UNBIND: answered once the bindings record is stored, as a DECLARE is.
 * A binding is the queue's configuration (`admin` on the queue) and copies
 * every message of the topics it matches, so its user must be allowed to
 * read all of them (`subscribe` on every topic of the pattern), or it would
 * move messages the user may not read into a queue it may consume.
 */
export function bind(c: CommandContext, f: BindFrame | UnbindFrame): void {
  if (!c.may(Action.ADMIN, f.queue)) return;
  if (!c.access.mayAll(Action.SUBSCRIBE, f.pattern)) return c.denied(f.pattern);
  let stored: Promise<void>;
  try {
    stored = f.op === "BIND"
      ? c.broker.bind(f.pattern, f.queue, f.filter)
      : c.broker.unbind(f.pattern, f.queue);
  } catch (e) {
    return c.replies.brokerError(e);
  }
  c.replies.okWhen(stored, undefined);
}

/** DECLARE of a topic's retention or a queue's settings: answered once stored. */
export function declare(c: CommandContext, f: DeclareFrame): void {
  if (!c.may(Action.ADMIN, f.dest)) return;
  if (c.router?.declare(f) === true) return; // a queue's settings are its leader's
  let stored: Promise<void>;
  try {
    stored = f.queue === undefined
      ? c.broker.declare(f.dest, f.options)
      : c.broker.declareQueue(f.dest, f.queue);
  } catch (e) {
    return c.replies.brokerError(e);
  }
  c.replies.okWhen(stored, undefined);
}

/**
 * The name a users-file user's durable is kept under: `<user>/<name>` (a
 * name of the wire has no `/`, so none can reach another user's). One place
 * for every front end (TCP, WebSocket, gRPC), so they cannot drift apart.
 */
export function userDurable(user: string, durable: string): string {
  return `${user}/${durable}`;
}
